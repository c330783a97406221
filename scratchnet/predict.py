"""`python -m scratchnet.predict`: the MNIST prediction command (scratchnet/mnist/predict.py)."""

import sys

from scratchnet.mnist.predict import main

if __name__ == "__main__":
    sys.exit(main())
