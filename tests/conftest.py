"""Shared fixtures. MNIST comes through the real download-and-verify path (see data.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last.

    Playwright's sync API keeps an asyncio event loop running in the main thread for as long as
    it is open (the whole session: one Playwright per session). Tests that start their own loop
    (Starlette's TestClient, Mangum) must therefore run before it starts.
    """
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The session's one headless Chromium (Debian's, never a downloaded build)."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: `make browser` installs Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST, downloaded into data/mnist (or $SCRATCHNET_DATA_DIR) when missing.

    `make test` points SCRATCHNET_MNIST_MIRRORS at the machine's local copy when it has one.
    """
    from scratchnet.mnist.data import MNISTError, load_mnist

    try:
        return load_mnist(progress=False)
    except MNISTError as exc:
        pytest.skip(f"MNIST is not available: {exc}")
