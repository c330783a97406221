"""The drawing page (frontend/) in a real headless Chromium against the real server.

Run with `pytest tests/browser -m browser`. Every test opens fresh browser contexts; the console
of every page is watched, and any error there fails the test (see conftest.ConsoleErrors).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import get_json
from tests.conftest import CHROMIUM

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is not installed (make browser)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# Digits as strokes in the canvas's 280x280 logical coordinates.
ONE = [[(146, 40), (136, 240)]]
SEVEN = [[(70, 55), (210, 55), (128, 240)]]
ZERO = [
    [
        (140 + 68 * math.sin(2 * math.pi * i / 40), 140 - 100 * math.cos(2 * math.pi * i / 40))
        for i in range(41)
    ]
]
DIGITS = {"1": ONE, "7": SEVEN, "0": ZERO}
PREDICT_PATH = "/predict/base64"
NO_VALUE = "\u2013"  # the en dash the page shows when it has no answer
# new_page's options for a phone; without motion, so that screenshots show the bars at rest.
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "reduced_motion": "reduce",
}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def open_page(page: Any, base: str, query: str = "") -> Any:
    page.goto(f"{base}/{query}")
    page.wait_for_selector("[data-testid=api-status][data-state=online]", state="attached")
    return page


def canvas_box(page: Any) -> dict[str, float]:
    """The canvas's content box (inside its border), in viewport pixels."""
    return page.evaluate(
        """() => {
            const c = document.querySelector('[data-testid=canvas]');
            const r = c.getBoundingClientRect();
            return {x: r.left + c.clientLeft, y: r.top + c.clientTop, size: c.clientWidth};
        }"""
    )


def to_viewport(box: dict[str, float], x: float, y: float) -> tuple[float, float]:
    scale = box["size"] / 280
    return box["x"] + x * scale, box["y"] + y * scale


def draw(page: Any, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw strokes with the mouse (the page sees pointer events of type mouse)."""
    box = canvas_box(page)
    for stroke in strokes:
        page.mouse.move(*to_viewport(box, *stroke[0]))
        page.mouse.down()
        for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
            steps = max(1, round(math.hypot(x1 - x0, y1 - y0) / 25))  # a move per ~25 px
            page.mouse.move(*to_viewport(box, x1, y1), steps=steps)
        page.mouse.up()


def interpolate(stroke: list[tuple[float, float]], step: float = 12.0) -> list[tuple[float, float]]:
    points = [stroke[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step))
        points += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(1, n + 1)]
    return points


def touch_draw(page: Any, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw with a finger through CDP touch events (pointer events of type touch)."""
    cdp = page.context.new_cdp_session(page)
    box = canvas_box(page)
    for stroke in strokes:
        points = [to_viewport(box, x, y) for x, y in interpolate(stroke)]
        x, y = points[0]
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]}
        )
        for x, y in points[1:]:
            cdp.send(
                "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
            )
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def ink_pixels(page: Any) -> int:
    """Canvas pixels that differ clearly from the paper colour (read at the top-left corner)."""
    return page.evaluate(
        """() => {
            const c = document.querySelector('[data-testid=canvas]');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const [r, g, b] = [d[0], d[1], d[2]];
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) > 96) n++;
            }
            return n;
        }"""
    )


def wait_for_result(page: Any, timeout: float = 10_000) -> None:
    """Until the selected model has answered for the current drawing."""
    page.wait_for_selector(
        "[data-testid=result][data-status=done]", state="attached", timeout=timeout
    )


def themed_page_with_a_seven(new_page: Any, base: str, scheme: str, height: int) -> Any:
    """A 1280-wide page in colour scheme `scheme`, without motion, showing a drawn 7's result."""
    page = new_page(
        color_scheme=scheme, viewport={"width": 1280, "height": height}, reduced_motion="reduce"
    )
    open_page(page, base)
    draw(page, SEVEN)
    wait_for_result(page)
    return page


def prediction(page: Any) -> str:
    return page.get_by_test_id("prediction").text_content().strip()


def record_predict_requests(page: Any) -> list[dict[str, Any]]:
    """Every POST /predict/base64 body the page sends from now on, in order."""
    bodies: list[dict[str, Any]] = []

    def on_request(request: Any) -> None:
        if request.method == "POST" and request.url.endswith(PREDICT_PATH):
            body = request.post_data_json
            bodies.append({**body, "url": request.url, "image": body["image"][:30]})

    page.on("request", on_request)
    return bodies


def is_predict(response: Any, model_type: str) -> bool:
    """A response to POST /predict/base64 for the given model."""
    request = response.request
    return (
        request.method == "POST"
        and response.url.endswith(PREDICT_PATH)
        and request.post_data_json["model_type"] == model_type
    )


def blank_png_data_url() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (280, 280), 255).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def set_brush(page: Any, key: str) -> None:
    """Move the brush slider with the keyboard (Home = 1, End = 5)."""
    page.get_by_test_id("brush-size").focus()
    page.keyboard.press(key)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_page_loads_with_status_and_model_accuracy(server, new_page):
    page = open_page(new_page(), server.url)
    expect(page).to_have_title("scratchnet · digit recognizer")
    status, models = get_json(f"{server.url}/models")
    assert status == 200
    for info in models["models"]:
        accuracy = f"{info['test_accuracy'] * 100:.2f}% test\u00a0accuracy"
        meta = page.locator(f"[data-accuracy-for={info['name']}]")
        expect(meta).to_contain_text(accuracy)
    # Nothing drawn yet: no prediction, the buttons that need ink are disabled.
    assert prediction(page) in ("", NO_VALUE)
    expect(page.get_by_test_id("result")).to_have_attribute("data-status", "empty")
    for testid in ("undo", "clear", "predict"):
        expect(page.get_by_test_id(testid)).to_be_disabled()
    expect(page.get_by_test_id("canvas")).to_have_css("touch-action", "none")


@pytest.mark.parametrize("digit", list(DIGITS))
def test_recognises_mouse_drawn_digit(server, trained_models, new_page, digit):
    page = open_page(new_page(), server.url)
    requests = record_predict_requests(page)
    draw(page, DIGITS[digit])
    wait_for_result(page)  # live prediction: no click on Predict
    assert prediction(page) == digit, page.get_by_test_id("probabilities").inner_text()
    expect(page.get_by_test_id("confidence")).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
    # Batches of two: the selected model first (with the preview), then the other. Debounced:
    # one batch when the pointer lifts (another only if the pointer paused >250 ms mid-stroke
    # on a busy machine), never one per pointer move.
    sent = [(r["model_type"], r["preview"]) for r in requests]
    assert sent == [("cnn", True), ("linear", False)] * (len(sent) // 2), sent
    assert 2 <= len(sent) <= 6, sent
    assert requests[0]["image"].startswith("data:image/png;base64,")
    expect(page.get_by_test_id("preview")).to_have_attribute(
        "src", re.compile(r"^data:image/png;base64,")
    )
    expect(page.get_by_test_id("compare-linear").locator(".compare-digit")).to_have_text(
        re.compile(r"^\d$")
    )
    expect(page.locator("#announcer")).to_contain_text(f"predicts {digit}")


def test_result_shows_a_digit_and_all_ten_probabilities(server, new_page):
    """Works with untrained models too: the page shows whatever the server answers."""
    page = open_page(new_page(), server.url)
    with page.expect_response(lambda r: is_predict(r, "cnn")) as response:
        draw(page, SEVEN)
    body = response.value.json()
    wait_for_result(page)
    assert prediction(page) == str(body["predicted_class"])
    expect(page.get_by_test_id("confidence")).to_have_text(f"{body['confidence'] * 100:.1f}%")
    bars = page.get_by_test_id("probabilities").locator("li")
    expect(bars).to_have_count(10)
    shown = [float(bars.nth(d).get_attribute("data-probability")) for d in range(10)]
    assert shown == pytest.approx(body["probabilities"], abs=1e-4)
    expect(bars.nth(body["predicted_class"])).to_have_class(re.compile(r"\btop\b"))
    preview = page.get_by_test_id("preview")
    expect(preview).to_be_visible()
    expect(preview).to_have_css("image-rendering", "pixelated")
    size = preview.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [28, 28]


def test_brush_size_changes_stroke_width(server, new_page):
    page = open_page(new_page(), server.url)
    line = [[(60, 140), (220, 140)]]
    set_brush(page, "Home")
    expect(page.get_by_test_id("brush-size")).to_have_value("1")
    draw(page, line)
    thin = ink_pixels(page)
    page.get_by_test_id("clear").click()
    assert ink_pixels(page) == 0
    set_brush(page, "End")
    expect(page.get_by_test_id("brush-size")).to_have_value("5")
    draw(page, line)
    thick = ink_pixels(page)
    # Widths 10 and 34 px (size * 6 + 4): about 3.4 times the ink, minus the round caps' share.
    assert thin > 0
    assert 2.5 < thick / thin < 4.5, (thin, thick)

    # A single click (a tap) draws a dot as wide as the brush.
    page.get_by_test_id("clear").click()
    page.mouse.click(*to_viewport(canvas_box(page), 140, 140))
    dot = ink_pixels(page)
    scale = page.evaluate("() => document.querySelector('[data-testid=canvas]').width / 280")
    assert dot == pytest.approx(math.pi * (34 * scale / 2) ** 2, rel=0.1)


def test_undo_and_clear(server, new_page):
    page = open_page(new_page(), server.url)
    draw(page, [SEVEN[0][:2]])  # the bar of the 7
    one_stroke = ink_pixels(page)
    draw(page, [SEVEN[0][1:]])  # its leg
    two_strokes = ink_pixels(page)
    assert 0 < one_stroke < two_strokes
    wait_for_result(page)

    page.get_by_test_id("undo").click()
    # Undo repaints the remaining strokes in one go: anti-aliasing may differ by a few pixels.
    assert ink_pixels(page) == pytest.approx(one_stroke, rel=0.02)
    page.keyboard.press("Control+z")  # the keyboard shortcut undoes too
    assert ink_pixels(page) == 0
    expect(page.get_by_test_id("undo")).to_be_disabled()

    draw(page, SEVEN)
    wait_for_result(page)
    assert prediction(page) not in ("", NO_VALUE)
    page.get_by_test_id("clear").click()
    assert ink_pixels(page) == 0
    expect(page.get_by_test_id("prediction")).to_have_text(NO_VALUE)
    expect(page.get_by_test_id("confidence")).to_have_text(NO_VALUE)
    expect(page.get_by_test_id("result")).to_have_attribute("data-status", "empty")
    expect(page.get_by_test_id("preview")).to_be_hidden()


def test_predict_button_when_live_prediction_is_off(server, new_page):
    page = open_page(new_page(), server.url)
    requests = record_predict_requests(page)
    page.get_by_test_id("live").uncheck(force=True)
    draw(page, ONE)
    page.wait_for_timeout(500)  # twice the live debounce
    assert requests == []
    expect(page.get_by_test_id("result")).to_have_attribute("data-status", "stale")
    page.get_by_test_id("predict").click()
    wait_for_result(page)
    assert [r["model_type"] for r in requests] == ["cnn", "linear"]


def test_switching_model_changes_request_and_result(server, new_page):
    page = open_page(new_page(), server.url)
    draw(page, SEVEN)
    wait_for_result(page)
    result = page.get_by_test_id("result")
    expect(result).to_have_attribute("data-model", "cnn")
    expect(page.get_by_test_id("result-meta")).to_contain_text("CNN")

    requests = record_predict_requests(page)
    model_select = page.get_by_test_id("model-select")
    with page.expect_response(lambda r: is_predict(r, "linear")) as response:
        model_select.get_by_role("radio", name="Linear").check()
    body = response.value.json()
    assert body["model_type"] == "linear"
    expect(result).to_have_attribute("data-model", "linear")
    wait_for_result(page)
    # The selected model's request goes first and carries the preview request.
    assert (requests[0]["model_type"], requests[0]["preview"]) == ("linear", True)
    assert prediction(page) == str(body["predicted_class"])
    expect(page.get_by_test_id("confidence")).to_have_text(f"{body['confidence'] * 100:.1f}%")
    expect(page.get_by_test_id("result-meta")).to_contain_text("Linear")
    expect(page.get_by_test_id("compare-linear")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("compare-cnn")).to_have_attribute("aria-pressed", "false")

    # The choice survives a reload, and the other model's card switches back.
    page.reload()
    expect(model_select.get_by_role("radio", name="Linear")).to_be_checked()
    requests.clear()
    page.get_by_test_id("compare-cnn").click()
    expect(model_select.get_by_role("radio", name="CNN")).to_be_checked()
    expect(result).to_have_attribute("data-model", "cnn")


def test_refused_drawing_shows_the_servers_reason(server, new_page, console_errors):
    """A drawing the server refuses (422, no ink) gets a clear message, not a stale answer."""
    console_errors.allow(r"status of 422")
    page = open_page(new_page(), server.url)
    blank = blank_png_data_url()

    def blank_out(route: Any) -> None:
        body = route.request.post_data_json
        route.continue_(post_data=json.dumps({**body, "image": blank}))

    page.route(f"**{PREDICT_PATH}", blank_out)
    with page.expect_response(lambda r: is_predict(r, "cnn")) as response:
        draw(page, ONE)
    assert response.value.status == 422
    assert response.value.json()["error"] == "no_ink"
    expect(page.get_by_test_id("result")).to_have_attribute("data-status", "error")
    message = page.get_by_test_id("message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("no ink")
    expect(message).to_have_attribute("data-kind", "warning")
    assert prediction(page) == NO_VALUE
    # The API itself is fine.
    expect(page.get_by_test_id("api-status")).to_have_attribute("data-state", "online")


def test_api_base_url_from_another_origin(server, new_page):
    """The page served from one origin talks to the API on another (?api=, then the setting)."""
    page = new_page()
    requests = record_predict_requests(page)
    open_page(page, server.other_origin, f"?api={server.url}")
    draw(page, ONE)
    wait_for_result(page)
    assert requests and all(r["url"] == f"{server.url}{PREDICT_PATH}" for r in requests)

    # The settings field stores the base URL for later visits.
    page.get_by_text("Settings").click()
    page.get_by_label("API base URL").fill(f"{server.url}/")
    page.get_by_role("button", name="Save").click()
    stored = page.evaluate("() => localStorage.getItem('scratchnet.api')")
    assert stored == server.url
    open_page(page, server.other_origin)
    requests.clear()
    draw(page, SEVEN)
    wait_for_result(page)
    assert requests and all(r["url"] == f"{server.url}{PREDICT_PATH}" for r in requests)


FOCUSED_JS = "() => document.activeElement.dataset.testid || document.activeElement.name || ''"


def test_accessible_controls_and_announcements(server, new_page):
    page = open_page(new_page(), server.url)
    for name in ("Undo", "Clear", "Predict"):
        expect(page.get_by_role("button", name=name)).to_be_attached()
    expect(page.get_by_label("Brush size")).to_have_attribute("type", "range")
    expect(page.get_by_role("radio", name="CNN")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Live")).to_be_checked()
    expect(page.get_by_role("img", name="Drawing area")).to_be_visible()
    expect(page.locator("[aria-live=polite]#announcer")).to_be_attached()

    draw(page, ONE)
    wait_for_result(page)
    expect(page.locator("#announcer")).to_contain_text(f"predicts {prediction(page)}")

    # Every control is reachable with the Tab key.
    page.locator("body").focus()
    reached = set()
    for _ in range(25):
        page.keyboard.press("Tab")
        reached.add(page.evaluate(FOCUSED_JS))
    assert {"live", "brush-size", "undo", "clear", "predict", "model"} <= reached, reached


CONTRAST_JS = """
() => {
    const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
        const f = (v) => {
            v /= 255;
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
        for (let n = el; n; n = n.parentElement) {
            const c = parse(getComputedStyle(n).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
        }
        return parse(getComputedStyle(document.body).backgroundColor).slice(0, 3);
    };
    const out = [];
    const selectors = ['h1', '.tagline', 'h2', 'h3', '.model-name', '.model-meta', '.result-meta',
        '.confidence', '.bar-label', '.bar-value', '.compare-name', '.compare-conf', '.api-status',
        '[data-testid=undo]', '[data-testid=predict]', '.footnote', '.message', '.digit'];
    for (const sel of selectors) {
        for (const el of document.querySelectorAll(sel)) {
            if (!el.offsetParent || el.closest('[disabled]')) continue;
            const style = getComputedStyle(el);
            const fg = parse(style.color);
            const bg = background(el);
            const [a, b] = [lum(fg) + 0.05, lum(bg) + 0.05];
            const size = parseFloat(style.fontSize);
            const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
            out.push({sel, ratio: Math.max(a, b) / Math.min(a, b), need: large ? 3 : 4.5});
        }
    }
    return out;
}
"""


def test_touch_drawing_on_a_phone(server, new_page, artifacts: Path):
    page = open_page(new_page(**PHONE), server.url)
    # Crisp on HiDPI: the backing store has devicePixelRatio times the CSS pixels.
    width, css_width = page.evaluate(
        "() => { const c = document.querySelector('[data-testid=canvas]');"
        " return [c.width, c.clientWidth]; }"
    )
    assert width == 2 * css_width
    # Nothing sticks out sideways.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390

    touch_draw(page, SEVEN)
    wait_for_result(page)
    assert prediction(page).isdigit()
    if server.trained:
        assert prediction(page) == "7"
    assert page.evaluate("() => window.scrollY") == 0  # drawing did not scroll the page
    # The result badge over the canvas shows the answer without scrolling.
    expect(page.locator(".canvas-badge-digit")).to_have_text(prediction(page))
    page.screenshot(path=str(artifacts / "drawing-page-phone.png"), full_page=True)

    # A single tap draws a dot.
    page.get_by_test_id("clear").click()
    cdp = page.context.new_cdp_session(page)
    x, y = to_viewport(canvas_box(page), 140, 140)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert ink_pixels(page) > 0


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshot_and_text_contrast(server, new_page, artifacts: Path, scheme):
    """A screenshot per theme for the record, and WCAG AA contrast of the page's text in it."""
    page = themed_page_with_a_seven(new_page, server.url, scheme, height=860)
    page.wait_for_function("() => document.querySelector('[data-testid=preview]').complete")
    name = "drawing-page.png" if scheme == "light" else "drawing-page-dark.png"
    page.screenshot(path=str(artifacts / name), full_page=True)
    assert (artifacts / name).stat().st_size > 10_000

    checks = page.evaluate(CONTRAST_JS)
    assert len(checks) > 20
    failing = [c for c in checks if c["ratio"] < c["need"]]
    assert not failing, failing


def test_offline_and_recovery(server, new_page, console_errors):
    """Stopping the server turns the indicator offline; starting it again recovers."""
    console_errors.allow(r"net::ERR_")  # Chromium logs the refused connections
    page = open_page(new_page(), server.url, "?poll=300")
    status = page.get_by_test_id("api-status")
    draw(page, ONE)
    wait_for_result(page)

    server.stop()
    expect(status).to_have_attribute("data-state", "offline", timeout=5_000)
    page.get_by_test_id("clear").click()
    draw(page, SEVEN)
    message = page.get_by_test_id("message")
    expect(message).to_be_visible()
    expect(message).to_have_attribute("data-kind", "error")
    expect(page.get_by_test_id("result")).to_have_attribute("data-status", "error")

    server.start()  # the same port
    expect(status).to_have_attribute("data-state", "online", timeout=15_000)
    # The drawing made while offline gets its answer without another click.
    wait_for_result(page)
    expect(message).to_be_hidden()
    if server.trained:
        assert prediction(page) == "7"
