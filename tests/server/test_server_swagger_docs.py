"""Swagger UI at /docs: served from the swagger-ui-bundle package, offline, on a schema whose
examples look like what the server really sends.

The browser side (Try it out, Execute) is tests/browser/test_swagger_ui.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

from starlette.testclient import TestClient

from tests.server.conftest import draw_digit

# src="..." and href="..." in HTML, url(...) in CSS: every resource a page or a stylesheet loads.
HTML_REFERENCE = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""")
CSS_REFERENCE = re.compile(r"""url\(\s*["']?([^"')]*)""")
ABSOLUTE_URL = re.compile(r"\b(?:https?:)?//[\w.-]+")


def local(reference: str) -> bool:
    """A reference that stays on this server: a path, or data inlined in the page."""
    return reference.startswith("data:") or (
        reference.startswith("/") and not reference.startswith("//")
    )


def test_swagger_ui_and_its_assets_are_local(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert not ABSOLUTE_URL.search(page), "the page names another host"
    references = HTML_REFERENCE.findall(page)
    assert "/docs/swagger-ui/swagger-ui-bundle.js" in references
    assert "/docs/swagger-ui/swagger-ui.css" in references
    assert all(local(reference) for reference in references), references

    for reference in references:
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        text = asset.content.decode("utf-8", errors="replace")
        if reference.endswith(".css"):
            urls = CSS_REFERENCE.findall(text)
            assert all(local(url) or not ABSOLUTE_URL.match(url) for url in urls), urls
        elif reference.endswith("swagger-ui-bundle.js"):
            # The bundle's code holds link texts (licences, swagger.io): that it makes no
            # request elsewhere is what the browser test checks. Its source map is local.
            source_map = re.findall(r"sourceMappingURL=(\S+)", text)
            assert source_map and not ABSOLUTE_URL.match(source_map[-1])
        elif reference.endswith(".js"):  # our initialiser
            assert not ABSOLUTE_URL.search(text), reference
            assert '"/openapi.json"' in text
            assert "validatorUrl: null" in text  # no badge fetched from the public validator


def test_drawing_page_moved_to_docs_draw(client: TestClient) -> None:
    page = client.get("/docs/draw").text
    assert 'id="pad"' in page  # the drawing pad, what Swagger UI lacks
    assert client.get("/docs").text != page


def test_serving_imports_no_torch_onnx_or_onnxruntime() -> None:
    """Start the app with the bundled models, use it, and look at what it imported."""
    code = """
import sys, warnings
warnings.simplefilter("ignore")
from starlette.testclient import TestClient
from server.app import create_app
from server.config import ServerConfig
with TestClient(create_app(ServerConfig(warmup=False))) as client:
    for path in ("/models", "/model/cnn/info", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path
heavy = {"torch", "onnx", "onnxruntime", "safetensors"}
print(sorted(name for name in sys.modules if name.split(".")[0] in heavy))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- the schema's examples -----------------------------------------------------------------------


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


# Objects whose keys depend on the model or its checkpoint: only their kind is compared.
FREE_FORM = {"architecture", "metrics", "training_config", "parameter_shapes", "buffer_shapes"}


def assert_same_shape(example: Any, real: Any, where: str) -> None:
    """The example has the real response's fields, each of the same JSON kind (null aside)."""
    if example is None or real is None:
        return
    assert _json_kind(example) == _json_kind(real), where
    if isinstance(real, dict) and where.rsplit(".", 1)[-1] not in FREE_FORM:
        assert set(example) == set(real), f"{where}: {set(example) ^ set(real)}"
        for key in real:
            assert_same_shape(example[key], real[key], f"{where}.{key}")
    elif isinstance(real, list) and real and example and isinstance(real[0], dict):
        assert_same_shape(example[0], real[0], f"{where}[0]")


def test_examples_look_like_real_responses(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    png = draw_digit(7)
    prediction = client.post("/predict", files={"file": ("blob", png, "image/png")}).json()
    models = client.get("/models").json()
    real = {
        "Health": client.get("/health").json(),
        "Prediction": prediction,
        "ModelList": models,
        "ModelSummary": models["models"][0],
        "ModelInfo": client.get("/model/linear/info").json(),
        "Error": client.post("/predict/base64", json={"image": "!"}).json(),
    }
    for name, body in real.items():
        example = schemas[name].get("example") or _example_of(schemas, name)
        assert_same_shape(example, body, name)
        missing = set(schemas[name]["required"]) - set(example)
        assert not missing, f"{name}'s example lacks {missing}"


def _example_of(schemas: dict[str, Any], name: str) -> dict[str, Any]:
    """A component without an example of its own: the first one of its list's example."""
    for schema in schemas.values():
        for key, prop in schema.get("properties", {}).items():
            if prop.get("items") == {"$ref": f"#/components/schemas/{name}"}:
                return schema["example"][key][0]
    raise AssertionError(f"no example for {name}")


# /explain's answer: 28x28 maps and activations of thousands of numbers. An example that fits
# the schema would be as long; Swagger UI shows a sample generated from the schema instead.
TOO_LARGE_FOR_AN_EXAMPLE = {"Explanation"}


def _has_example(media: dict[str, Any], schemas: dict[str, Any]) -> bool:
    if "example" in media or "examples" in media:
        return True
    schema = media.get("schema", {})
    ref = schema.get("$ref", "")
    if ref:
        name = ref.rsplit("/", 1)[1]
        if name in TOO_LARGE_FOR_AN_EXAMPLE:
            return True
        schema = schemas[name]
    if "example" in schema or schema.get("type") == "string":  # HTML and text pages
        return True
    # Swagger UI fills "Try it out" from the properties' examples and defaults: every required
    # one needs one.
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    return bool(required) and all(
        "example" in properties[key] or "default" in properties[key] for key in required
    )


def test_every_json_body_has_an_example(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
            bodies += [
                (status, r.get("content", {})) for status, r in operation["responses"].items()
            ]
            for where, content in bodies:
                for media_type, media in content.items():
                    if media_type == "multipart/form-data":
                        continue  # a file picker: Swagger UI has nothing to fill in
                    assert _has_example(media, schemas), f"{method} {path} {where} {media_type}"


def test_upload_is_a_binary_file_field(client: TestClient) -> None:
    """Swagger UI's Try it out shows a file picker only for `format: binary`."""
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    upload = spec["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    assert upload["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": "The image file.",
    }
    assert upload["required"] == ["file"]
