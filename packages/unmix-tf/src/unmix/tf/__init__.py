"""unmix's Keras 3 / TensorFlow backend.

`unmix.tf.kit` is its public part: a model plugin registers a Keras network there and gets
training, checkpoints, resume, mixed precision, tf.distribute and separation for it; unmix's own
networks register through exactly that kit.

Importing this package imports nothing heavy: TensorFlow and Keras load only when a model is
built or a checkpoint is read, so `unmix --help` stays fast.
"""
