"""`python -m scratchnet.train`: the MNIST training command (scratchnet/mnist/train.py)."""

import sys

from scratchnet.mnist.train import main

if __name__ == "__main__":
    sys.exit(main())
