"""`python -m scratchnet.export`: models to ONNX or safetensors (scratchnet/mnist/export.py)."""

import sys

from scratchnet.mnist.export import main

if __name__ == "__main__":
    sys.exit(main())
