"""Shared fixtures. MNIST comes through the real download-and-verify path (see data.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST, downloaded into data/mnist (or $SCRATCHNET_DATA_DIR) when missing.

    `make test` points SCRATCHNET_MNIST_MIRRORS at the machine's local copy when it has one.
    """
    from scratchnet.data import MNISTError, load_mnist

    try:
        return load_mnist(progress=False)
    except MNISTError as exc:
        pytest.skip(f"MNIST is not available: {exc}")
