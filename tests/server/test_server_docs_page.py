"""The /docs/draw page in a real headless Chromium: every form works, and nothing leaves the server.

Marked `browser`; skipped when Debian's Chromium or Playwright is missing (`make browser`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_url(model_dir: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRATCHNET_")}
    with running_server("--model-dir", str(model_dir), env=env) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def page(live_url: str, browser):
    page = browser.new_page()
    page.requested_urls = []
    page.on("request", lambda request: page.requested_urls.append(request.url))
    page.goto(f"{live_url}/docs/draw")
    page.wait_for_function("document.getElementById('schema-info').textContent.includes('OpenAPI')")
    yield page
    page.close()


def send(page, endpoint: str) -> dict | str:
    section = page.locator(f'section[data-endpoint="{endpoint}"]')
    # Empty the previous answer first, so that the wait below is for the new one.
    section.locator(".result").evaluate("box => box.replaceChildren()")
    section.locator('button[type="submit"]').click()
    result = section.locator(".result pre").first
    result.wait_for(state="visible")
    text = result.text_content()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def test_docs_page_forms(page, live_url: str, default_model: str) -> None:
    health = send(page, "health")
    assert health["status"] == "healthy"

    models = send(page, "models")
    assert {m["name"] for m in models["models"]} == {"linear", "cnn"}

    page.fill('section[data-endpoint="model-info"] input[name="model_type"]', "linear")
    info = send(page, "model-info")
    assert info["total_parameters"] == 7850

    page.fill('section[data-endpoint="predict"] input[name="model_type"]', default_model)
    prediction = send(page, "predict")
    assert prediction["model_type"] == default_model
    assert len(prediction["probabilities"]) == 10
    preview = page.locator('section[data-endpoint="predict"] img.preview')
    assert preview.get_attribute("src").startswith("data:image/png;base64,")

    box = page.locator('textarea[name="__body"]')
    body = json.loads(box.input_value())
    body["model_type"] = default_model
    box.fill(json.dumps(body))
    encoded = send(page, "predict-base64")
    assert encoded["model_type"] == default_model

    box.fill('{"image": "not base64!"}')
    error = send(page, "predict-base64")
    assert error["error"] == "invalid_base64"
    status = page.locator('section[data-endpoint="predict-base64"] .status').text_content()
    assert status.startswith("400")

    metrics = send(page, "metrics")
    assert "scratchnet_predictions_total" in metrics

    # Everything the page loaded or sent stayed on this server: no CDN, no external font.
    assert page.requested_urls
    assert all(url.startswith(live_url) or url.startswith("data:") for url in page.requested_urls)
