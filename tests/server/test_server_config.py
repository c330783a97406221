"""Settings from defaults, SCRATCHNET_* variables and flags; `python -m server` for real."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.__main__ import parse_args
from server.config import DEFAULT_MAX_UPLOAD_BYTES, ConfigError, ServerConfig
from tests.processes import free_port, stop
from tests.server.conftest import draw_digit

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    from scratchnet.mnist.models import PRETRAINED_DIR

    config = ServerConfig.from_env({})
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 8000, 1)
    assert config.model_dir == PRETRAINED_DIR
    assert config.max_upload_bytes == DEFAULT_MAX_UPLOAD_BYTES == 2 * 1024 * 1024
    assert config.cors_origins == ()
    assert config.frontend_dir == REPO / "frontend"
    assert config.inference_mode == "auto"


def test_environment_then_overrides(tmp_path: Path) -> None:
    env = {
        "SCRATCHNET_HOST": "0.0.0.0",
        "SCRATCHNET_PORT": "9000",
        "SCRATCHNET_WORKERS": "3",
        "SCRATCHNET_MODEL_DIR": str(tmp_path),
        "SCRATCHNET_MAX_UPLOAD_BYTES": "1000",
        "SCRATCHNET_CORS_ORIGINS": "https://a.example, https://b.example,",
        "SCRATCHNET_WARMUP": "false",
        "SCRATCHNET_NUMBA_THREADS": "0",
        "SCRATCHNET_INFERENCE_MODE": "inline",
    }
    config = ServerConfig.from_env(env)
    assert config.host == "0.0.0.0"
    assert (config.port, config.workers, config.max_upload_bytes) == (9000, 3, 1000)
    assert config.model_dir == tmp_path
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert config.warmup is False
    assert (config.numba_threads, config.inference_mode) == (0, "inline")

    overridden = ServerConfig.from_env(env, port=9001, cors_origins=None)
    assert overridden.port == 9001
    assert overridden.cors_origins == ("https://a.example", "https://b.example")
    assert ServerConfig.from_env(overridden.to_env()) == overridden


@pytest.mark.parametrize(
    "env",
    [
        {"SCRATCHNET_PORT": "http"},
        {"SCRATCHNET_PORT": "70000"},
        {"SCRATCHNET_WORKERS": "0"},
        {"SCRATCHNET_MAX_UPLOAD_BYTES": "-1"},
        {"SCRATCHNET_INFERENCE_MODE": "gpu"},
        {"SCRATCHNET_WARMUP": "perhaps"},
        {"SCRATCHNET_NUMBA_THREADS": "-1"},
        {"SCRATCHNET_HTTP_PARSER": "picohttp"},
    ],
)
def test_bad_settings_are_reported(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ServerConfig.from_env(env)


def test_command_line_flags() -> None:
    args = parse_args(
        [
            "--host", "0.0.0.0", "--port", "8080", "--workers", "2", "--model-dir", "/m",
            "--max-upload-bytes", "4096", "--cors-origins", "https://a.example",
        ]
    )  # fmt: skip
    assert (args.host, args.port, args.workers, args.model_dir) == ("0.0.0.0", 8080, 2, "/m")
    assert (args.max_upload_bytes, args.cors_origins) == (4096, "https://a.example")


def test_http_parser_auto_prefers_httptools_and_names_a_missing_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from server import protocol
    from server.__main__ import main

    assert ServerConfig.from_env({}).http_parser == "auto"
    assert protocol.protocol_class("h11") is protocol.H11ProtocolWithHeaderTimeout
    if protocol.httptools_installed():
        assert protocol.protocol_class("auto") is protocol.HttpToolsProtocolWithLimits
    monkeypatch.setattr(protocol, "httptools_installed", lambda: False)
    assert protocol.protocol_class("auto") is protocol.H11ProtocolWithHeaderTimeout
    assert main(["--http", "httptools"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "python -m server: --http httptools: httptools is not installed (pip install httptools)"
    ]


def test_bad_flag_value_exits_with_2(tmp_path: Path) -> None:
    env = {**os.environ, "SCRATCHNET_WORKERS": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "server"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "workers" in result.stderr


def test_python_m_server_serves(model_dir: Path) -> None:
    """The real thing: uvicorn in a subprocess, flags and env vars, a prediction over TCP."""
    port = free_port()
    env = {**os.environ, "SCRATCHNET_MAX_UPLOAD_BYTES": "100000"}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "server", "--port", str(port), "--model-dir", str(model_dir),
            "--no-access-log", "--log-level", "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "server did not start within 60 s"
            time.sleep(0.05)
        assert health.status_code == 200, health.text

        response = httpx.post(
            f"{base}/predict",
            files={"file": ("d.png", draw_digit(7))},
            data={"model_type": "linear"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        too_big = httpx.post(
            f"{base}/predict", files={"file": ("d.png", b"\0" * 200_000)}, timeout=10
        )
        assert too_big.status_code == 413  # the env var reached the app
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    finally:
        stop(process)


@pytest.mark.parametrize("mode", ["auto", "inline", "threadpool"])
@pytest.mark.parametrize("numba_threads", [0, 1])
def test_inference_settings_all_predict(
    config: ServerConfig, mode: str, numba_threads: int, default_model: str
) -> None:
    from dataclasses import replace

    from starlette.testclient import TestClient

    from server.app import create_app

    app = create_app(replace(config, inference_mode=mode, numba_threads=numba_threads))
    with TestClient(app) as client:
        response = client.post(
            "/predict",
            files={"file": ("d.png", draw_digit(7))},
            data={"model_type": default_model},
        )
    assert response.status_code == 200, response.text
