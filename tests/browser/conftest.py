"""Fixtures for the browser tests: the real server in a subprocess, and one headless Chromium.

The server runs `python -m server` on a free port with the bundled models
(scratchnet/mnist/pretrained/{cnn,linear}.npz), or with the trained checkpoints in
$BROWSER_TEST_MODEL_DIR when that is set. When neither is there, it runs with freshly
initialised (untrained) checkpoints in a temporary folder, and the tests that check which digit
was recognised skip themselves.

Chromium is Debian's /usr/bin/chromium, driven by Playwright (never a downloaded browser).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import free_port, stop

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
BUNDLED_MODELS = REPO / "scratchnet" / "mnist" / "pretrained"
MODEL_NAMES = ("cnn", "linear")


def get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class LiveServer:
    """`python -m server` in a subprocess, which the tests may stop and start again."""

    def __init__(self, model_dir: Path, trained: bool, log_path: Path) -> None:
        self.model_dir = model_dir
        self.trained = trained
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The page is also opened from http://localhost:<port> to test a cross-origin API base.
        self.other_origin = f"http://localhost:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        assert self.process is None, "server already running"
        cmd = [
            sys.executable,
            "-m",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--model-dir",
            str(self.model_dir),
            "--cors-origins",
            self.other_origin,
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCRATCHNET_")}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                pytest.fail(f"the server exited at start-up:\n{self.log()}")
            with contextlib.suppress(OSError, ValueError):
                status, body = get_json(f"{self.url}/health", timeout=1.0)
                if status == 200 and body.get("status") == "healthy":
                    return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the server did not become healthy within {timeout:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        stop(self.process)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


def _untrained_checkpoints(folder: Path) -> None:
    from scratchnet.checkpoint import save_checkpoint
    from scratchnet.mnist.models import CNNClassifier, LinearClassifier

    for name, model, accuracy in (
        ("linear", LinearClassifier(), 0.9213),
        ("cnn", CNNClassifier(), 0.9917),
    ):
        save_checkpoint(
            folder / f"{name}.npz",
            model.state_dict(),
            {
                "architecture": {"name": name, "kwargs": {}},
                "metrics": {"test_accuracy": accuracy},
                "config": {},
            },
        )


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    model_dir = Path(os.environ.get("BROWSER_TEST_MODEL_DIR") or BUNDLED_MODELS)
    trained = all((model_dir / f"{name}.npz").is_file() for name in MODEL_NAMES)
    if not trained:
        model_dir = tmp_path_factory.mktemp("untrained-models")
        _untrained_checkpoints(model_dir)
    server = LiveServer(model_dir, trained, tmp_path_factory.mktemp("server") / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """The session's server, started again if a test left it stopped."""
    if not live_server.running:
        live_server.process = None
        live_server.start()
    return live_server


@pytest.fixture
def trained_models(server: LiveServer) -> None:
    if not server.trained:
        pytest.skip("the bundled models (scratchnet/mnist/pretrained/*.npz) are not there yet")


class ConsoleErrors:
    """Console errors and uncaught exceptions of every page a test opens.

    A test that provokes a failure on purpose (a 422, a stopped server) declares the message
    Chromium logs for it with `allow(pattern)`; anything else fails the test.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def attach(self, page: Any) -> None:
        page.on(
            "console",
            lambda msg: (
                self.messages.append(f"console.{msg.type}: {msg.text} @ {msg.location}")
                if msg.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [m for m in self.messages if not any(p.search(m) for p in self.allowed)]


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def new_page(browser: Any, console_errors: ConsoleErrors) -> Iterator[Any]:
    """new_page(**context_options) -> a page in a fresh context, its console watched."""
    contexts = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1280, "height": 900})
        options.setdefault("color_scheme", "light")
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        console_errors.attach(page)
        return page

    yield make
    for context in contexts:
        context.close()
    unexpected = console_errors.unexpected()
    assert not unexpected, "errors in the browser console:\n" + "\n".join(unexpected)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
