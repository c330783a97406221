"""Every bad request gets the right status and a JSON {"error", "detail"} body, and the server
answers the next good request as if nothing had happened."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from PIL import Image
from starlette.testclient import TestClient

from server.app import create_app
from server.config import ServerConfig
from tests.server.conftest import UPLOAD_LIMIT, blank_png, draw_digit

DIGIT = draw_digit(7)
DIGIT_B64 = base64.b64encode(DIGIT).decode()


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "detail"}
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    if error is not None:
        assert body["error"] == error
    return body


def assert_still_serving(client: TestClient) -> None:
    upload = client.post(
        "/predict", files={"file": ("d.png", DIGIT, "image/png")}, data={"model_type": "linear"}
    )
    assert upload.status_code == 200, upload.text
    encoded = client.post("/predict/base64", json={"image": DIGIT_B64, "model_type": "linear"})
    assert encoded.status_code == 200, encoded.text


def upload(client: TestClient, data: bytes, **fields: str):
    return client.post(
        "/predict",
        files={"file": ("x.png", data, "image/png")},
        data={"model_type": "linear", **fields},
    )


def png_with_header_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but whose pixel data is a few bytes."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 255).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then length + b"IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


# -- size limits -----------------------------------------------------------------------------


def test_upload_over_the_limit_is_413(client: TestClient) -> None:
    big = DIGIT + b"\0" * UPLOAD_LIMIT
    assert_error(upload(client, big), 413, "payload_too_large")
    assert_still_serving(client)


def test_base64_body_over_the_limit_is_413(client: TestClient) -> None:
    body = json.dumps({"image": "A" * (UPLOAD_LIMIT + 10)})
    response = client.post(
        "/predict/base64", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")
    assert_still_serving(client)


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"image": "'
        for _ in range(UPLOAD_LIMIT // 4096 + 2):
            yield b"A" * 4096
        yield b'"}'

    response = client.post(
        "/predict/base64", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers  # really streamed, chunked
    assert_error(response, 413, "payload_too_large")
    assert_still_serving(client)


async def _raw_request(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> dict:
    """Drive the ASGI app by hand, to send a body longer than its Content-Length says."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict/base64",
        "raw_path": b"/predict/base64",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {"status": start["status"], "body": json.loads(body)}


def test_body_longer_than_its_content_length_is_413(config: ServerConfig) -> None:
    app = create_app(config)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"20")]
    chunks = [b'{"image": "'] + [b"A" * 65536] * (UPLOAD_LIMIT // 65536 + 2)
    result = anyio.run(_raw_request, app, headers, chunks)
    assert result["status"] == 413
    assert result["body"]["error"] == "payload_too_large"


def test_invalid_content_length_is_400(config: ServerConfig) -> None:
    app = create_app(config)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"many")]
    result = anyio.run(_raw_request, app, headers, [b"{}"])
    assert result["status"] == 400


# -- bad images ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"this is not an image at all", id="text"),
        pytest.param(DIGIT[: len(DIGIT) // 2], id="truncated-png"),
        pytest.param(b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n", id="pdf"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', id="svg"),
        pytest.param(b"\x89PNG\r\n\x1a\n", id="png-signature-only"),
        pytest.param(b"", id="empty"),
    ],
)
def test_not_an_image_is_400(client: TestClient, data: bytes) -> None:
    assert_error(upload(client, data), 400, "invalid_image")
    assert_still_serving(client)


def test_not_an_image_in_base64_is_400(client: TestClient) -> None:
    encoded = base64.b64encode(b"hello, world").decode()
    response = client.post("/predict/base64", json={"image": encoded, "model_type": "linear"})
    assert_error(response, 400, "invalid_image")
    assert_still_serving(client)


@pytest.mark.parametrize("size", [(100_000, 100_000), (30_000, 30_000), (2_001, 2_000)])
def test_huge_dimensions_are_rejected_from_the_header(client: TestClient, size) -> None:
    bomb = png_with_header_size(*size)
    assert len(bomb) < 100  # no pixel data to speak of: rejected before decoding
    body = assert_error(upload(client, bomb), 413, "image_too_large")
    assert "too large" in body["detail"]
    assert_still_serving(client)


def test_compressed_bomb_is_rejected(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000), 255).save(buffer, format="PNG", optimize=True)
    assert len(buffer.getvalue()) < UPLOAD_LIMIT  # small on the wire, 16 MB decoded
    assert_error(upload(client, buffer.getvalue()), 413, "image_too_large")
    assert_still_serving(client)


def test_blank_image_is_422_no_ink(client: TestClient) -> None:
    body = assert_error(upload(client, blank_png()), 422, "no_ink")
    assert "ink" in body["detail"]
    encoded = base64.b64encode(blank_png()).decode()
    response = client.post("/predict/base64", json={"image": encoded, "model_type": "linear"})
    assert_error(response, 422, "no_ink")
    assert_still_serving(client)


# -- bad parameters --------------------------------------------------------------------------


def test_unknown_model_is_422_listing_available(client: TestClient) -> None:
    body = assert_error(upload(client, DIGIT, model_type="resnet"), 422, "validation_error")
    assert "linear" in body["available_models"]
    assert "linear" in body["detail"]
    response = client.post("/predict/base64", json={"image": DIGIT_B64, "model_type": "resnet"})
    assert_error(response, 422, "validation_error")
    assert_still_serving(client)


def test_unknown_model_info_is_404(client: TestClient) -> None:
    body = assert_error(client.get("/model/resnet/info"), 404, "unknown_model")
    assert "linear" in body["available_models"]
    assert_still_serving(client)


@pytest.mark.parametrize("top_k", ["0", "11", "-1", "abc", "3.5", "", "1e3", "99999999999"])
def test_bad_top_k_in_form_or_query_is_422(client: TestClient, top_k: str) -> None:
    body = assert_error(upload(client, DIGIT, top_k=top_k), 422, "validation_error")
    assert body["parameter"] == "top_k"
    response = client.post(
        "/predict", params={"top_k": top_k, "model_type": "linear"}, files={"file": ("d", DIGIT)}
    )
    assert_error(response, 422, "validation_error")
    assert_still_serving(client)


@pytest.mark.parametrize("top_k", [0, 11, "3", 2.5, True, None, [3]])
def test_bad_top_k_in_json_is_422(client: TestClient, top_k) -> None:
    response = client.post(
        "/predict/base64", json={"image": DIGIT_B64, "model_type": "linear", "top_k": top_k}
    )
    assert assert_error(response, 422, "validation_error")["parameter"] == "top_k"
    assert_still_serving(client)


def test_bad_preview_is_422(client: TestClient) -> None:
    assert_error(upload(client, DIGIT, preview="maybe"), 422, "validation_error")
    response = client.post(
        "/predict/base64", json={"image": DIGIT_B64, "model_type": "linear", "preview": "yes"}
    )
    assert_error(response, 422, "validation_error")
    assert_still_serving(client)


@pytest.mark.parametrize("model_type", [3, None, ["cnn"]])
def test_non_string_model_type_in_json_is_422(client: TestClient, model_type) -> None:
    response = client.post("/predict/base64", json={"image": DIGIT_B64, "model_type": model_type})
    assert assert_error(response, 422, "validation_error")["parameter"] == "model_type"
    assert_still_serving(client)


# -- bad bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    ["not base64 at all!", "data:image/png,iVBORw0KGgo", "data:image/png;base64", "QUJDRA=x"],
)
def test_malformed_base64_is_400(client: TestClient, image: str) -> None:
    response = client.post("/predict/base64", json={"image": image, "model_type": "linear"})
    assert_error(response, 400, "invalid_base64")
    assert_still_serving(client)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"image": "abc"',
        b"\xff\xfe\x00",
        b"",
        b"[" * 100_000 + b"]" * 100_000,  # nesting too deep for the decoder
        b'{"image": NaN}',
    ],
    ids=["broken", "unterminated", "not-utf8", "empty", "deep", "nan"],
)
def test_malformed_json_is_400(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/predict/base64", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")
    assert_still_serving(client)


@pytest.mark.parametrize(
    "payload", [[], "image", 42, {}, {"model_type": "linear"}, {"image": 42}, {"image": ""}]
)
def test_json_of_the_wrong_shape_is_422(client: TestClient, payload) -> None:
    response = client.post("/predict/base64", json=payload)
    assert_error(response, 422, "validation_error")
    assert_still_serving(client)


def test_missing_file_field_is_422(client: TestClient) -> None:
    response = client.post(
        "/predict", files={"image": ("d.png", DIGIT)}, data={"model_type": "linear"}
    )
    assert assert_error(response, 422, "validation_error")["parameter"] == "file"
    assert_still_serving(client)


def test_file_as_plain_text_field_is_422(client: TestClient) -> None:
    response = client.post(
        "/predict", files={"x": ("x.txt", b"x")}, data={"file": "hello", "model_type": "linear"}
    )
    assert assert_error(response, 422, "validation_error")["parameter"] == "file"
    assert_still_serving(client)


def test_parameter_sent_as_a_file_is_422(client: TestClient) -> None:
    response = client.post("/predict", files={"file": ("d.png", DIGIT), "top_k": ("k.txt", b"3")})
    assert assert_error(response, 422, "validation_error")["parameter"] == "top_k"
    assert_still_serving(client)


def test_broken_multipart_is_400(client: TestClient) -> None:
    for content_type in ("multipart/form-data", "multipart/form-data; boundary=xyz"):
        response = client.post(
            "/predict",
            content=b"--abc\r\nnot really multipart",
            headers={"Content-Type": content_type},
        )
        assert_error(response, 400)
    assert_still_serving(client)


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/predict", "text/plain", b"hello"),
        ("/predict", "image/png", DIGIT),
        ("/predict", "application/x-www-form-urlencoded", b"file=abc"),
        ("/predict", "application/json", b'{"image": "abc"}'),
        ("/predict", None, b"hello"),
        ("/predict/base64", "text/plain", b'{"image": "abc"}'),
        ("/predict/base64", "application/x-www-form-urlencoded", b"image=abc"),
        ("/predict/base64", "multipart/form-data; boundary=x", b"--x--\r\n"),
        ("/predict/base64", None, b'{"image": "abc"}'),
    ],
)
def test_wrong_content_type_is_415(
    client: TestClient, path: str, content_type: str | None, body: bytes
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post(path, content=body, headers=headers)
    assert_error(response, 415, "unsupported_media_type")
    assert_still_serving(client)


def test_json_with_charset_and_vendor_type_is_accepted(client: TestClient) -> None:
    body = json.dumps({"image": DIGIT_B64, "model_type": "linear"})
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = client.post(
            "/predict/base64", content=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 200, response.text


# -- routes and methods ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/model", "/model/linear", "/predict/nope"])
def test_unknown_route_is_json_404(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")
    assert_still_serving(client)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/predict"), ("PUT", "/predict"), ("POST", "/health"), ("DELETE", "/models")],
)
def test_wrong_method_is_json_405(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert "allow" in response.headers
    assert_still_serving(client)


# -- failures inside the server --------------------------------------------------------------


def test_unexpected_exception_is_500_json_without_traceback(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = client.app.state.registry

    def explode(*args, **kwargs):
        raise RuntimeError("secret internal state /etc/passwd")

    monkeypatch.setattr(registry, "predict", explode)
    body = assert_error(upload(client, DIGIT), 500, "internal_error")
    assert "secret" not in json.dumps(body)
    monkeypatch.undo()
    assert_still_serving(client)


def test_client_disconnect_is_not_an_error() -> None:
    from starlette.requests import ClientDisconnect

    from server.errors import CatchAllMiddleware

    async def disconnected(scope, receive, send):
        raise ClientDisconnect()

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    anyio.run(CatchAllMiddleware(disconnected), {"type": "http", "method": "POST"}, None, send)
    assert sent == []  # nothing to answer, and no 500 logged as a crash


def test_exception_in_middleware_is_500_json() -> None:
    from server.errors import CatchAllMiddleware

    async def broken_app(scope, receive, send):
        raise KeyError("boom")

    tc = TestClient(CatchAllMiddleware(broken_app), raise_server_exceptions=False)
    assert_error(tc.get("/"), 500, "internal_error")


def test_missing_model_is_503_and_others_still_serve(
    model_dir: Path, frontend_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "linear.npz").write_bytes((model_dir / "linear.npz").read_bytes())
    config = ServerConfig(model_dir=tmp_path, frontend_dir=frontend_dir)
    with TestClient(create_app(config), raise_server_exceptions=False) as tc:
        assert tc.get("/health").json()["models_loaded"] == ["linear"]
        body = assert_error(tc.post("/predict/base64", json={"image": DIGIT_B64}), 503)
        assert body["error"] == "model_not_loaded"
        assert body["available_models"] == ["linear"]
        assert_error(tc.get("/model/cnn/info"), 503, "model_not_loaded")
        models = {m["name"]: m for m in tc.get("/models").json()["models"]}
        assert models["cnn"]["loaded"] is False
        assert "cnn.npz" in models["cnn"]["error"]
        assert_still_serving(tc)


def test_corrupt_checkpoint_is_reported_not_fatal(
    model_dir: Path, frontend_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "linear.npz").write_bytes(b"garbage")
    config = ServerConfig(model_dir=tmp_path, frontend_dir=frontend_dir)
    with TestClient(create_app(config), raise_server_exceptions=False) as tc:
        health = tc.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert tc.get("/", headers={"Accept": "application/json"}).status_code == 503
        models = {m["name"]: m for m in tc.get("/models").json()["models"]}
        assert models["linear"]["loaded"] is False
        assert "not a zip (.npz) archive" in models["linear"]["error"]
        assert str(tmp_path) not in models["linear"]["error"]  # no server paths to clients
        response = tc.post("/predict/base64", json={"image": DIGIT_B64, "model_type": "linear"})
        assert_error(response, 503, "model_not_loaded")


def test_missing_frontend_gives_json_and_404_for_static(model_dir: Path, tmp_path: Path) -> None:
    config = ServerConfig(model_dir=model_dir, frontend_dir=tmp_path / "absent")
    with TestClient(create_app(config), raise_server_exceptions=False) as tc:
        response = tc.get("/", headers={"Accept": "text/html"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert_error(tc.get("/static/app.js"), 404, "not_found")


# -- CORS ------------------------------------------------------------------------------------


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/health", headers={"Origin": "https://example.com"})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/predict",
        headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_origins_enable_cors(config: ServerConfig) -> None:
    from dataclasses import replace

    cors = replace(config, cors_origins=("https://draw.example",))
    with TestClient(create_app(cors), raise_server_exceptions=False) as tc:
        origin = {"Origin": "https://draw.example"}
        response = tc.get("/health", headers=origin)
        assert response.headers["access-control-allow-origin"] == "https://draw.example"
        preflight = tc.options(
            "/predict/base64", headers={**origin, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]
        error = tc.post(
            "/predict/base64", content=b"{", headers={**origin, "Content-Type": "application/json"}
        )
        assert error.status_code == 400
        assert error.headers["access-control-allow-origin"] == "https://draw.example"
        other = tc.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
