"""The app behind AWS Lambda (Mangum), driven by synthetic Function URL events (payload 2.0)."""

from __future__ import annotations

import base64
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.server.conftest import draw_digit


def function_url_event(
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    base64_body: bool = False,
) -> dict[str, Any]:
    """An event as a Lambda Function URL delivers it (API Gateway HTTP API payload 2.0)."""
    domain = "abcdefghij.lambda-url.eu-west-1.on.aws"
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode() if base64_body else body.decode()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": domain, "user-agent": "pytest", **(headers or {})},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": domain,
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": "$default",
            "time": "27/Nov/2025:09:00:00 +0000",
            "timeEpoch": 1764234000000,
        },
        "body": body,
        "isBase64Encoded": base64_body,
    }


CONTEXT = SimpleNamespace(
    function_name="scratchnet", aws_request_id="test", memory_limit_in_mb=1024
)


@pytest.fixture
def lambda_module(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("SCRATCHNET_MODEL_DIR", str(model_dir))
    sys.modules.pop("server.lambda_handler", None)
    module = importlib.import_module("server.lambda_handler")
    yield module
    sys.modules.pop("server.lambda_handler", None)


def body_of(response: dict[str, Any]) -> Any:
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


def test_health_through_lambda(lambda_module: ModuleType) -> None:
    response = lambda_module.handler(function_url_event("GET", "/health"), CONTEXT)
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("application/json")
    body = body_of(response)
    assert body["status"] == "healthy"
    assert "linear" in body["models_loaded"]


def test_predict_base64_through_lambda(lambda_module: ModuleType) -> None:
    payload = {"image": base64.b64encode(draw_digit(7)).decode(), "model_type": "linear"}
    event = function_url_event(
        "POST",
        "/predict/base64",
        json.dumps(payload),
        headers={"content-type": "application/json"},
    )
    response = lambda_module.handler(event, CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["model_type"] == "linear"
    assert len(body["probabilities"]) == 10


def test_multipart_upload_through_lambda(lambda_module: ModuleType) -> None:
    boundary = "scratchnetboundary"
    png = draw_digit(1)
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="d.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    event = function_url_event(
        "POST",
        "/predict",
        body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        query="model_type=linear&top_k=2",
        base64_body=True,
    )
    response = lambda_module.handler(event, CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    assert len(body_of(response)["top_k_predictions"]) == 2


def test_errors_through_lambda_are_json(lambda_module: ModuleType) -> None:
    event = function_url_event(
        "POST", "/predict/base64", "{oops", headers={"content-type": "application/json"}
    )
    response = lambda_module.handler(event, CONTEXT)
    assert response["statusCode"] == 400
    assert body_of(response)["error"] == "invalid_json"
    missing = lambda_module.handler(function_url_event("GET", "/nope"), CONTEXT)
    assert missing["statusCode"] == 404
    assert body_of(missing)["error"] == "not_found"


def test_models_load_once_across_invocations(lambda_module: ModuleType) -> None:
    registry = lambda_module.app.state.registry
    lambda_module.handler(function_url_event("GET", "/health"), CONTEXT)
    first = registry.get("linear")
    lambda_module.handler(function_url_event("GET", "/health"), CONTEXT)
    assert registry.get("linear") is first
