"""An example unmix model plugin: one learned gain per frequency bin and channel.

Copy this package to start your own model plugin. See README.md and docs/plugins.md.
"""
