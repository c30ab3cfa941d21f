"""Configuration: jsonc files, `base` inheritance, value expressions, and the validated schema."""
