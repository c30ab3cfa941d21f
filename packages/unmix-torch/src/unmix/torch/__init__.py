"""unmix's PyTorch backend, written as a third-party plugin would be.

`unmix.torch.kit` is its public part: a model plugin registers a `torch.nn.Module` there and gets
training, checkpoints, resume, mixed precision, DDP and separation for it. unmix's own networks
(the hourglass and the band hourglass) register through exactly that kit, so a third party's
network gets what unmix's own get.

Importing this package imports nothing heavy: torch loads only when a model is built or a
checkpoint is read, so `unmix --help` stays fast.
"""
