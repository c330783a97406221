"""`python -m scratchnet.robustness`: accuracy under transformations (mnist/robustness.py)."""

import sys

from scratchnet.mnist.robustness import main

if __name__ == "__main__":
    sys.exit(main())
