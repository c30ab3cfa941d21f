"""What every backend shares about models: building one from a configuration, and checking options."""
