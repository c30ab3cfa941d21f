"""unmix-serve: `unmix serve`, a local web app to separate songs and to look at runs."""
