"""Bounded resources, in-process: closed metric labels, the decode budget and its semaphore,
the body deadline, and errors that are JSON and name the configured limit (issue 11)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import random
import re
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from scratchnet.runtime import allocator
from server.app import create_app
from server.config import ConfigError, ServerConfig
from server.errors import BodyLimitMiddleware
from server.resources import LARGE_DECODE, DecodeBudget, bytes_per_pixel
from tests.server.conftest import UPLOAD_LIMIT, draw_digit
from tests.server.test_server_errors import assert_error, png_with_header_size

DIGIT = draw_digit(7)
EXCEPTION_CLASS = re.compile(r"\b[A-Z]\w*(Error|Exception|Warning)\b")


@pytest.fixture
def fresh(config: ServerConfig) -> Iterator[TestClient]:
    """An app of its own, for tests that count its metrics or patch its registry."""
    with TestClient(create_app(config), raise_server_exceptions=False) as tc:
        yield tc


def upload(tc: TestClient, data: bytes, model_type: str = "linear"):
    return tc.post(
        "/predict", files={"file": ("x.png", data, "image/png")}, data={"model_type": model_type}
    )


def series_count(tc: TestClient) -> int:
    text = tc.get("/metrics").text
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def png(width: int, height: int, mode: str = "L") -> bytes:
    """A mostly blank image with a dark bar: a valid drawing, small on the wire."""
    img = Image.new(mode, (width, height), "white")
    img.paste("black", (width // 3, height // 4, width // 3 + max(2, width // 20), height * 3 // 4))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


# -- metrics ---------------------------------------------------------------------------------


def test_random_methods_paths_and_models_add_no_series(fresh: TestClient) -> None:
    rng = random.Random(11)

    def word(n: int) -> str:
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(n))

    def attack(count: int) -> None:
        for _ in range(count):
            fresh.request(word(6), "/health")
            fresh.get("/" + word(8).lower())
            fresh.get(f"/model/{word(5).lower()}/info")
            fresh.post("/predict/base64", json={"image": "AAAA", "model_type": word(4)})

    attack(1)  # the first of each kind creates its "other" series
    series_count(fresh)  # and the first scrape its own
    before = series_count(fresh)
    attack(1000)
    assert series_count(fresh) == before
    text = fresh.get("/metrics").text
    assert 'method="other"' in text and 'route="other"' in text


def test_repeated_requests_count_on_their_own_series(fresh: TestClient) -> None:
    """The labelled children are looked up once and kept (server/metrics.py): each label set
    must still count only its own requests."""
    for _ in range(3):
        assert upload(fresh, DIGIT).status_code == 200
    assert upload(fresh, b"not an image").status_code == 400
    text = fresh.get("/metrics").text
    assert 'requests_total{method="POST",route="/predict",status="200"} 3.0' in text
    assert 'requests_total{method="POST",route="/predict",status="400"} 1.0' in text
    predicted = re.findall(r'predictions_total\{model="linear",predicted_class="\d"\} (\S+)', text)
    assert sum(float(count) for count in predicted) == 3.0
    assert 'inference_duration_seconds_count{model="linear"} 3.0' in text


def test_metrics_are_rendered_off_the_event_loop(fresh: TestClient) -> None:
    metrics = fresh.app.state.metrics
    original = metrics.render
    on_loop = []

    def render() -> bytes:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # a worker thread has no running loop
            on_loop.append(False)
        return original()

    metrics.render = render
    assert fresh.get("/metrics").status_code == 200
    assert on_loop == [False]


# -- the decode budget -----------------------------------------------------------------------


def test_bytes_per_pixel_follows_pillows_layout() -> None:
    expected = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I": 4, "F": 4, "LA": 4, "RGB": 4, "RGBA": 4}
    assert {mode: bytes_per_pixel(mode) for mode in expected} == expected


def test_bomb_message_names_the_configured_pixel_limit(client: TestClient) -> None:
    for width, height in ((20000, 20000), (3000, 3000)):  # over Pillow's limit, and over ours
        response = upload(client, png_with_header_size(width, height))
        body = assert_error(response, 413, "image_too_large")
        assert "4,000,000 pixels" in body["detail"], body  # conftest's max_image_pixels
        assert "178,956,970" not in body["detail"]


def test_decoded_bytes_limit_is_checked_from_the_header(
    config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = dataclasses.replace(config, max_decode_bytes=1024 * 1024)
    with TestClient(create_app(limited), raise_server_exceptions=False) as tc:
        decoded = []
        predict = tc.app.state.registry.predict
        monkeypatch.setattr(
            tc.app.state.registry, "predict", lambda *a: decoded.append(1) or predict(*a)
        )
        # 600x600 is 360,000 pixels, far under max_image_pixels; in RGB it decodes to 1.44 MB.
        body = assert_error(upload(tc, png(600, 600, "RGB")), 413, "image_too_large")
        assert "1 MiB" in body["detail"] and "600x600" in body["detail"]
        assert decoded == []  # refused before decoding
        # The same size in L (1 byte per pixel) fits.
        assert upload(tc, png(600, 600, "L")).status_code == 200
        assert decoded == [1]


def test_the_header_is_parsed_once(fresh: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget's Image.open is the decode's: the same image goes on to be decoded."""
    opened = []
    original = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or original(*a, **k))
    assert upload(fresh, png(280, 280, "RGB")).status_code == 200
    assert opened == [1]
    # Bytes without a readable header still get decode_image's own message.
    body = assert_error(upload(fresh, b"GIF89a" + bytes(40)), 400, "invalid_image")
    assert body["detail"].startswith("cannot decode image")


def test_large_decodes_wait_for_a_slot_and_small_ones_do_not(
    config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    large = png(1200, 1200)  # 1.44 MB decoded: over LARGE_DECODE
    small = png(280, 280)
    assert 1200 * 1200 >= LARGE_DECODE > 280 * 280 * 4

    def peak_concurrency(concurrency: int) -> tuple[int, int]:
        settings = dataclasses.replace(config, decode_concurrency=concurrency)
        with TestClient(create_app(settings), raise_server_exceptions=False) as tc:
            registry = tc.app.state.registry
            predict = registry.predict
            lock = threading.Lock()
            running = {"large": 0, "small": 0}
            peak = {"large": 0, "small": 0}
            release = threading.Event()

            def tracked(image: Image.Image, *args):
                kind = "large" if image.size == (1200, 1200) else "small"
                with lock:
                    running[kind] += 1
                    peak[kind] = max(peak[kind], running[kind])
                if kind == "large":
                    release.wait(10)  # hold the slot until the small requests are through
                try:
                    return predict(image, *args)
                finally:
                    with lock:
                        running[kind] -= 1

            monkeypatch.setattr(registry, "predict", tracked)
            statuses = []
            threads = [
                threading.Thread(target=lambda: statuses.append(upload(tc, large).status_code))
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while peak["large"] < concurrency and time.monotonic() < deadline:
                time.sleep(0.01)
            # With every slot taken, small images still go straight through.
            assert upload(tc, small).status_code == 200
            assert upload(tc, small).status_code == 200
            release.set()
            for thread in threads:
                thread.join(30)
            assert statuses == [200] * 4
            assert tc.app.state.decode_budget.large_decodes == 0
            return peak["large"], peak["small"]

    assert peak_concurrency(1) == (1, 1)
    assert peak_concurrency(2) == (2, 1)


def test_memory_is_trimmed_after_large_decodes_only(
    fresh: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    monkeypatch.setattr(allocator, "release_free_memory", lambda: calls.append(1))
    assert upload(fresh, png(280, 280)).status_code == 200
    assert calls == []
    assert upload(fresh, png(1200, 1200)).status_code == 200
    assert calls == [1]


def test_decode_budget_semaphore_bounds_concurrent_holders() -> None:
    budget = DecodeBudget(max_pixels=10**6, max_decode_bytes=10**9, concurrency=2)
    inside = 0
    peak = 0

    async def hold(size: int) -> None:
        nonlocal inside, peak
        async with budget.slot(size):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    async def main() -> None:
        await asyncio.gather(*(hold(LARGE_DECODE) for _ in range(6)))

    asyncio.run(main())
    assert peak == 2


# -- the body deadline -----------------------------------------------------------------------


def test_body_that_never_completes_gets_408_json() -> None:
    async def app(scope, receive, send) -> None:
        from starlette.requests import Request

        await Request(scope, receive).body()
        raise AssertionError("the body cannot have arrived")

    middleware = BodyLimitMiddleware(app, max_bytes=1000, timeout=0.2)
    messages = [{"type": "http.request", "body": b"{", "more_body": True}]
    sent = []

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # a client that stopped sending
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict/base64", "headers": []}
    start = time.monotonic()
    asyncio.run(middleware(scope, receive, send))
    assert time.monotonic() - start < 5
    assert sent[0]["status"] == 408
    body = json.loads(sent[1]["body"])
    assert body["error"] == "request_timeout"
    assert "0.2 s" in body["detail"]


def test_config_reads_the_new_settings() -> None:
    env = {
        "SCRATCHNET_HEADER_TIMEOUT": "2.5",
        "SCRATCHNET_BODY_TIMEOUT": "7",
        "SCRATCHNET_KEEP_ALIVE_TIMEOUT": "3",
        "SCRATCHNET_MAX_CONNECTIONS": "50",
        "SCRATCHNET_MAX_HEADER_BYTES": "8192",
        "SCRATCHNET_MAX_DECODE_BYTES": "1000000",
        "SCRATCHNET_DECODE_CONCURRENCY": "3",
    }
    config = ServerConfig.from_env(env)
    assert (config.header_timeout, config.body_timeout, config.keep_alive_timeout) == (2.5, 7, 3)
    assert (config.max_connections, config.max_header_bytes) == (50, 8192)
    assert (config.max_decode_bytes, config.decode_concurrency) == (1_000_000, 3)
    assert ServerConfig.from_env(config.to_env()) == config
    for name, value in [
        ("SCRATCHNET_HEADER_TIMEOUT", "0"),
        ("SCRATCHNET_BODY_TIMEOUT", "nan"),
        ("SCRATCHNET_KEEP_ALIVE_TIMEOUT", "soon"),
        ("SCRATCHNET_MAX_CONNECTIONS", "0"),
        ("SCRATCHNET_DECODE_CONCURRENCY", "0"),
        ("SCRATCHNET_MAX_HEADER_BYTES", "10"),
    ]:
        with pytest.raises(ConfigError, match=f"(?i){name.removeprefix('SCRATCHNET_')}"):
            ServerConfig.from_env({name: value})


# -- errors are JSON -------------------------------------------------------------------------


def test_refused_cors_preflight_is_json(config: ServerConfig) -> None:
    allowed = "https://draw.example"
    with_cors = dataclasses.replace(config, cors_origins=(allowed,))
    with TestClient(create_app(with_cors), raise_server_exceptions=False) as tc:
        preflight = {"Access-Control-Request-Method": "POST"}
        refused = tc.options("/predict", headers={"Origin": "https://evil.example", **preflight})
        body = assert_error(refused, 400, "cors_refused")
        assert "origin" in body["detail"]
        accepted = tc.options("/predict", headers={"Origin": allowed, **preflight})
        assert accepted.status_code == 200
        assert accepted.headers["access-control-allow-origin"] == allowed


def test_static_file_with_a_trailing_slash_is_404(client: TestClient) -> None:
    assert client.get("/static/index.html").status_code == 200
    assert_error(client.get("/static/index.html/"), 404, "not_found")
    assert_error(client.get("/docs/assets/docs.html/"), 404, "not_found")


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_non_finite_model_output_is_a_json_error_not_500(fresh: TestClient, value: float) -> None:
    model = fresh.app.state.registry.get("linear").predictor  # what /predict runs
    bias = [param for name, param in model.named_parameters() if name.endswith("bias")][-1]
    saved = bias.data.copy()
    bias.data[...] = value
    body = assert_error(upload(fresh, DIGIT), 503, "invalid_model_output")
    assert "linear" in body["detail"]
    encoded = base64.b64encode(DIGIT).decode()
    response = fresh.post("/predict/base64", json={"image": encoded, "model_type": "linear"})
    assert_error(response, 503, "invalid_model_output")
    bias.data[...] = saved
    assert upload(fresh, DIGIT).status_code == 200


def test_models_shows_the_checkpoint_error_and_no_exception_class(
    model_dir: Path, frontend_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scratchnet.checkpoint import CheckpointError
    from scratchnet.mnist.models import load_model

    (tmp_path / "linear.npz").write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as refused:
        load_model(tmp_path / "linear.npz")
    reason = str(refused.value).replace(f"{tmp_path}/", "")

    # The CNN's model code fails in a way the loader did not foresee.
    def broken(path: Path, **kwargs: object):
        if path.name == "cnn.npz":
            raise TypeError("CNNClassifier.__init__() got an unexpected keyword argument 'x'")
        return load_model(path, **kwargs)

    monkeypatch.setattr("server.inference.load_model", broken)
    (tmp_path / "cnn.npz").write_bytes(b"not read")
    config = ServerConfig(model_dir=tmp_path, frontend_dir=frontend_dir)
    with TestClient(create_app(config), raise_server_exceptions=False) as tc:
        response = tc.get("/models")
        models = {m["name"]: m for m in response.json()["models"]}
        assert reason in models["linear"]["error"]
        assert str(tmp_path) not in response.text
        assert "cnn.npz could not be loaded" in models["cnn"]["error"]
        assert not EXCEPTION_CLASS.search(response.text), response.text
        assert not EXCEPTION_CLASS.search(tc.get("/model/cnn/info").text)


def test_upload_limit_message_names_the_configured_limit(client: TestClient) -> None:
    body = assert_error(upload(client, DIGIT + b"\0" * UPLOAD_LIMIT), 413, "payload_too_large")
    assert str(UPLOAD_LIMIT) in body["detail"]
