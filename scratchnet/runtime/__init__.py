"""How scratchnet runs on the machine, apart from what it computes.

allocator  glibc malloc thresholds, set once at import (scratchnet/__init__.py)
threads    scratchnet's worker threads, the chunking of work over them, and the BLAS's threads
"""
