"""The `unmix` command: parses options, calls unmix.core, prints results."""
