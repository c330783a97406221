"""How scratchnet runs on the machine, apart from what it computes.

startup    everything `import scratchnet` does to the process (malloc, BLAS and OpenMP threads,
           Numba's cache folder), applied once, first, by scratchnet/__init__.py
allocator  glibc malloc thresholds, and handing freed memory back to the system
threads    scratchnet's worker threads, the chunking of work over them, and the BLAS's threads
mode       reading mode: the NumPy twins, im2col and one chunk, for stepping through in a debugger
"""
