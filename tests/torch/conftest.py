"""Settings shared by the torch tests.

PyTorch uses one thread per core by default. On the shared 2-core test machine, where other
processes (TensorFlow tests, a second DDP rank) compete for the cores, OpenMP's spinning threads
made a tiny training step 20 times slower (56 ms with one thread, 1.3 s with two under load),
so the torch tests run PyTorch single-threaded, and start their subprocesses with
OMP_NUM_THREADS=1. The library itself leaves the thread count to the user.
"""

import torch

torch.set_num_threads(1)
