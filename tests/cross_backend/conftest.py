"""Settings shared by the cross-backend tests.

These tests run PyTorch next to TensorFlow, so they run PyTorch single-threaded for the reason
tests/torch/conftest.py gives: on the shared 2-core test machine, OpenMP's spinning threads made
tiny steps many times slower under load. The library itself leaves the thread count to the user.
"""

import torch

torch.set_num_threads(1)
