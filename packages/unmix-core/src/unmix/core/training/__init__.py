"""The training driver and the callbacks that run at the end of each epoch."""
