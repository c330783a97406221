"""CPU kernels: the loops that move and reduce numbers for the layers in scratchnet.nn.

- im2col.py: im2col / col2im, which turn a convolution into one BLAS matrix product;
- winograd.py: the tile transforms of Winograd's F(4x4, 3x3), the fast 3x3 convolution;
- pool.py: the max-pool scan (value and first argmax of each window) and its scatter;
- batchnorm.py: per-channel sums and the per-channel elementwise passes of batch norm;
- activation.py: ReLU's forward and backward passes.

Each kernel is a plain Python loop compiled by Numba (`njit(nogil=True, cache=True)`), and sits
beside a vectorised NumPy twin with the same signature that the tests use as the oracle. What
the numbers mean, the gradient algebra, stays in the layer files. Set NUMBA_DISABLE_JIT=1 to
run the loops as ordinary Python and step through them, or turn on reading mode
(scratchnet.set_reference_mode, scratchnet/runtime/mode.py): every wrapper then calls its NumPy
twin, on one chunk.

The kernels are serial. Their wrappers cut the work into one chunk per thread (a range of
samples, channels or elements) and run the chunks on scratchnet's threads
(scratchnet/runtime/threads.py); nogil lets the chunks run at the same time. The settings
these kernels rely on (the single-threaded BLAS, OpenMP's passive wait, where Numba caches
them) are applied by scratchnet/runtime/startup.py, before any kernel module is imported.

Import a kernel from its module (`from scratchnet.kernels.im2col import im2col`): re-exporting
the functions here would hide the modules of the same name.
"""
