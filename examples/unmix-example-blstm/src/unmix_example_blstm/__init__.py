"""An example unmix model plugin: Open-Unmix's bidirectional-LSTM network on unmix's PyTorch model kit.

The plugin supplies only the network (`model.py`) and its declared options (`plugin.py`);
`unmix.torch.kit` gives it training, checkpoints and resume, mixed precision and DDP. See README.md.
"""
