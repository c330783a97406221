"""Swagger UI at /docs in a real headless Chromium: one prediction sent from "Try it out".

Swagger UI's files come from the swagger-ui-bundle package through our server, so the page
must make no request to any other host (checked on every request the page makes).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conftest import CHROMIUM

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is not installed (make browser)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect

from tests.server.conftest import draw_digit

pytestmark = pytest.mark.browser


def test_try_it_out_predict_base64(server: Any, new_page: Any) -> None:
    page = new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/docs")

    operation = page.locator("#operations-default-predictBase64")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    # Raw base64, no data: prefix, as the published client sends it.
    image = base64.b64encode(draw_digit(7)).decode("ascii")
    body = {"image": image, "model_type": "cnn", "top_k": 5}
    operation.locator("textarea.body-param__text").fill(json.dumps(body))
    operation.locator("button.execute").click()

    live = operation.locator(".live-responses-table")
    expect(live.locator("tr.response .response-col_status")).to_have_text("200", timeout=15_000)
    answer = live.locator("tr.response .response-col_description .microlight").first
    expect(answer).to_contain_text("predicted_class")
    prediction = json.loads(answer.text_content())
    assert prediction["model_type"] == "cnn"
    assert len(prediction["top_k_predictions"]) == 5
    if server.trained:
        assert prediction["predicted_class"] == 7

    assert any(url.endswith("/openapi.json") for url in requested)
    assert any(url.endswith("/predict/base64") for url in requested)
    offsite = [u for u in requested if not u.startswith((server.url, "data:", "blob:"))]
    assert not offsite, offsite


def test_upload_has_a_file_picker(server: Any, new_page: Any) -> None:
    """POST /predict's `format: binary` field shows as a file input in Try it out."""
    page = new_page()
    page.goto(f"{server.url}/docs")
    operation = page.locator("#operations-default-predict")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    picker = operation.locator('input[type="file"]')
    expect(picker).to_have_count(1)
    png = draw_digit(7)
    picker.set_input_files({"name": "blob", "mimeType": "image/png", "buffer": png})
    operation.locator("button.execute").click()
    live = operation.locator(".live-responses-table")
    expect(live.locator("tr.response .response-col_status")).to_have_text("200", timeout=15_000)
    expect(live.locator("tr.response .response-col_description .microlight").first).to_contain_text(
        "predicted_class"
    )
