"""`python -m unmix.cli` runs the same command as `unmix`."""

from unmix.cli.main import main

main()
