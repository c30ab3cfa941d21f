"""An example unmix source plugin: `tone://<hz>` synthesises a test signal to separate.

Copy this package to start your own source plugin. See README.md and docs/plugins.md.
"""
