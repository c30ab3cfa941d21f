"""Songs as data: decoding (whole, or block by block through soundfile or ffmpeg, with streaming
resampling), collections and their splits, the training cache, windows, batches, augmentation, and
the transforms between audio and model tensors."""
