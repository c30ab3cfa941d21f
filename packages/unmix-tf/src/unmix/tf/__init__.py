"""unmix's Keras 3 / TensorFlow backend.

Importing this package imports nothing heavy: TensorFlow and Keras load only when a model is
built or a checkpoint is read, so `unmix --help` stays fast.
"""
