"""unmix's PyTorch backend, written as a third-party plugin would be.

It uses only unmix.core's public API (the `SeparationModel` protocol, the `register_models` and
`register_commands` hooks, the configuration classes), which is the point of it: whatever it
needed that core did not offer publicly had to become public API first.

Importing this package imports nothing heavy: torch loads only when a model is built or a
checkpoint is read, so `unmix --help` stays fast.
"""
