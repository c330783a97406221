"""The drawing page's "Inside the network" view, in headless Chromium against the real server.

The view asks POST /explain/base64 about the drawing beside the predictions, and paints the
saliency map, the feature maps, the first-layer filters and (for the linear model) the weight
templates and pixel contributions on canvases. These tests read those canvases' pixels.

`test_screenshot_of_the_view` also writes test-artifacts/inside-the-network.png, the README's
docs/inside-the-network.png (copy it there after a change to the view).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_drawing_page import (
    CONTRAST_JS,
    ONE,
    PHONE,
    SEVEN,
    ZERO,
    draw,
    open_page,
    themed_page_with_a_seven,
    touch_draw,
    wait_for_result,
)

# Importing test_drawing_page has skipped this module when Chromium or Playwright is missing.
expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.browser

EXPLAIN_PATH = "/explain/base64"
CNN_BLOCKS = {"block1": 32, "block2": 64, "block3": 128}


def wait_for_explanation(page: Any, model: str = "cnn") -> Any:
    """Until the view shows the model's explanation of the current drawing; returns the view."""
    view = page.get_by_test_id("explain")
    expect(view).to_have_attribute("data-model", model)
    expect(view).to_have_attribute("data-status", "done", timeout=15_000)
    return view


def pixels(canvas: Any) -> list[int]:
    """A canvas's RGBA bytes."""
    return canvas.evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
    )


def distance(a: list[int], b: list[int]) -> float:
    """The mean absolute difference of two canvases' bytes (0..255)."""
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def saliency_canvas(page: Any) -> Any:
    return page.get_by_test_id("saliency").locator("canvas")


def record_explain_requests(page: Any) -> list[dict[str, Any]]:
    """Every POST /explain/base64 body the page sends from now on, without the image."""
    bodies: list[dict[str, Any]] = []

    def on_request(request: Any) -> None:
        if request.method == "POST" and request.url.endswith(EXPLAIN_PATH):
            bodies.append({k: v for k, v in request.post_data_json.items() if k != "image"})

    page.on("request", on_request)
    return bodies


def test_cnn_views_appear_and_change_with_the_drawing(server, new_page):
    page = open_page(new_page(), server.url)
    view = page.get_by_test_id("explain")
    expect(view).to_have_attribute("data-status", "empty")
    expect(page.get_by_test_id("saliency")).to_be_hidden()
    requests = record_explain_requests(page)

    draw(page, ONE)
    wait_for_result(page)
    wait_for_explanation(page)
    # Live and debounced like the predictions: one explanation per pause, for the CNN.
    assert 1 <= len(requests) <= 3, requests
    assert requests[0] == {
        "model_type": "cnn",
        "top_k": 3,
        "classes": "predicted",
        "encoding": "base64",
    }
    for testid in ("saliency", "feature-maps", "filters"):
        expect(page.get_by_test_id(testid)).to_be_visible()
    for testid in ("templates", "contributions"):
        expect(page.get_by_test_id(testid)).to_be_hidden()
    predicted = page.get_by_test_id("prediction").text_content().strip()
    expect(page.get_by_test_id("saliency")).to_contain_text(
        f"Red pixels would raise the score for {predicted} if they were darker"
    )
    maps = page.get_by_test_id("feature-maps")
    for name, channels in CNN_BLOCKS.items():
        expect(maps.locator(f".fmap[data-layer={name}]")).to_have_count(channels)
    expect(page.get_by_test_id("filters").locator("canvas")).to_have_count(32)
    filter_size = (
        page.get_by_test_id("filters").locator("canvas").first.evaluate("c => [c.width, c.height]")
    )
    assert filter_size == [3, 3]

    one_saliency = pixels(saliency_canvas(page))
    one_map = pixels(maps.locator(".fmap canvas").first)
    assert len(one_saliency) == 28 * 28 * 4
    assert len(set(one_saliency)) > 10  # a map, not a flat colour

    page.get_by_test_id("clear").click()
    expect(view).to_have_attribute("data-status", "empty")
    expect(page.get_by_test_id("saliency")).to_be_hidden()
    draw(page, ZERO)
    wait_for_result(page)
    wait_for_explanation(page)
    assert pixels(saliency_canvas(page)) != one_saliency
    assert pixels(maps.locator(".fmap canvas").first) != one_map


def test_picking_a_class_changes_the_saliency_map(server, new_page):
    page = open_page(new_page(), server.url)
    requests = record_explain_requests(page)
    draw(page, SEVEN)
    wait_for_result(page)
    wait_for_explanation(page)
    predicted = int(page.get_by_test_id("prediction").text_content())
    other = (predicted + 3) % 10
    saliency = page.get_by_test_id("saliency")
    top = saliency.get_by_role("button", name="Show the maps for the predicted digit")
    expect(top).to_have_attribute("aria-pressed", "true")
    before = pixels(saliency_canvas(page))

    requests.clear()
    picked = saliency.get_by_role("button", name=f"Digit {other}", exact=True)
    picked.click()
    expect(picked).to_have_attribute("aria-pressed", "true")
    expect(top).to_have_attribute("aria-pressed", "false")
    wait_for_explanation(page)
    expect(saliency).to_contain_text(f"raise the score for {other} if they were darker")
    # The first answer held the predicted class only: the page asked for all ten, once.
    assert [r["classes"] for r in requests] == ["all"], requests
    picked_map = pixels(saliency_canvas(page))
    assert distance(picked_map, before) > 5

    # Back to the top guess and to the picked digit again: both maps come from the answer the
    # page already has, so no request, and the picked map is painted exactly as before.
    top.click()
    expect(saliency).to_contain_text(f"raise the score for {predicted} if they were darker")
    assert distance(pixels(saliency_canvas(page)), picked_map) > 5
    picked.click()
    expect(saliency).to_contain_text(f"raise the score for {other} if they were darker")
    assert pixels(saliency_canvas(page)) == picked_map
    assert len(requests) == 1


def test_linear_model_shows_templates_and_contributions(server, new_page):
    page = open_page(new_page(), server.url)
    page.get_by_test_id("model-select").get_by_role("radio", name="Linear").check()
    draw(page, SEVEN)
    wait_for_result(page)
    wait_for_explanation(page, "linear")
    for testid in ("saliency", "templates", "contributions"):
        expect(page.get_by_test_id(testid)).to_be_visible()
    for testid in ("feature-maps", "filters"):
        expect(page.get_by_test_id(testid)).to_be_hidden()

    templates = page.get_by_test_id("templates").locator(".tile")
    expect(templates).to_have_count(10)
    predicted = page.get_by_test_id("prediction").text_content().strip()
    chosen = page.get_by_test_id("templates").locator(".tile.chosen")
    expect(chosen).to_have_count(1)
    expect(chosen).to_have_text(predicted)
    painted = [pixels(templates.nth(d).locator("canvas")) for d in range(10)]
    assert len({tuple(p) for p in painted}) == 10  # ten different templates

    contributions = page.get_by_test_id("contributions")
    expect(contributions).to_contain_text(f"share of the score for {predicted}")
    seven = pixels(contributions.locator("canvas"))
    # The contributions depend on the drawing; the templates do not.
    page.get_by_test_id("clear").click()
    draw(page, ONE)
    wait_for_result(page)
    wait_for_explanation(page, "linear")
    assert pixels(contributions.locator("canvas")) != seven
    assert pixels(templates.nth(0).locator("canvas")) == painted[0]


def test_a_feature_map_enlarges_by_click_and_keyboard(server, new_page):
    page = open_page(new_page(), server.url)
    draw(page, ONE)
    wait_for_explanation(page)
    maps = page.get_by_test_id("feature-maps")
    zoom = page.get_by_test_id("map-zoom")
    expect(zoom).to_be_hidden()

    maps.locator(".fmap[data-layer=block2][data-channel='4']").click()
    expect(zoom).to_be_visible()
    expect(zoom).to_contain_text("block2, channel 5 of 64 (7\u00d77)")
    assert zoom.locator("canvas").evaluate("c => [c.width, c.height]") == [7, 7]
    width = zoom.locator("canvas").bounding_box()["width"]
    small = maps.locator(".fmap[data-layer=block2] canvas").first.bounding_box()["width"]
    assert width > 4 * small

    # Keyboard: the block's tab stop, an arrow key to the next map, Enter to enlarge it.
    first = maps.locator(".fmap[data-layer=block1]").first
    first.focus()
    page.keyboard.press("ArrowRight")
    second = maps.locator(".fmap[data-layer=block1][data-channel='1']")
    expect(second).to_be_focused()
    page.keyboard.press("Enter")
    expect(zoom).to_contain_text("block1, channel 2 of 32 (14\u00d714)")
    expect(second).to_have_attribute("aria-pressed", "true")
    zoom.get_by_role("button", name="Close").click()
    expect(zoom).to_be_hidden()
    expect(second).to_be_focused()  # the focus returns to the map
    expect(second).to_have_attribute("aria-pressed", "false")


FOCUSED_JS = """() => {
    const e = document.activeElement;
    return e.classList.contains('fmap') ? 'fmap:' + e.dataset.layer
        : e.classList.contains('class-button') ? 'class' : (e.dataset.testid || '');
}"""


def test_the_view_is_reachable_with_the_tab_key(server, new_page):
    page = open_page(new_page(), server.url)
    draw(page, SEVEN)
    wait_for_explanation(page)
    page.locator("body").focus()
    reached = []
    for _ in range(100):  # one lap round the page's tab stops
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED_JS)
        if reached and focused == reached[0]:
            break
        reached.append(focused)
    # The eleven class buttons, then one tab stop per block of feature maps (arrows move within).
    assert reached.count("class") == 11, reached
    for name in CNN_BLOCKS:
        assert reached.count(f"fmap:{name}") == 1, reached
    labelled = page.get_by_test_id("explain").locator("canvas[role=img]:not([aria-label])")
    expect(labelled).to_have_count(0)


def test_the_view_on_a_phone(server, new_page, artifacts: Path):
    page = open_page(new_page(**PHONE), server.url)
    touch_draw(page, SEVEN)
    wait_for_explanation(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    view = page.get_by_test_id("explain")
    for testid in ("saliency", "feature-maps", "filters"):
        box = view.get_by_test_id(testid).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (testid, box)
    # A finger on a map scrolls the page (only the drawing canvas keeps the touch for itself).
    expect(saliency_canvas(page)).to_have_css("touch-action", "auto")
    view.screenshot(path=str(artifacts / "inside-the-network-phone.png"))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshot_of_the_view(server, new_page, artifacts: Path, scheme):
    """The view in each theme: its zero colour is the card's, and its text keeps AA contrast."""
    page = themed_page_with_a_seven(new_page, server.url, scheme, height=900)
    wait_for_explanation(page)
    maps = page.get_by_test_id("feature-maps")
    maps.locator(".fmap[data-layer=block1][data-channel='3']").click()
    expect(page.get_by_test_id("map-zoom")).to_be_visible()

    surface = page.evaluate(
        "() => getComputedStyle(document.querySelector('[data-testid=explain]')).backgroundColor"
    )
    card = [int(v) for v in surface[surface.index("(") + 1 : -1].split(",")[:3]]
    # Zero is the card's colour: ReLU leaves some pixel of some block3 map at exactly zero.
    has_zero = maps.evaluate(
        """(root, [r, g, b]) => Array.from(root.querySelectorAll('.fmap canvas')).some((c) => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i] === r && d[i + 1] === g && d[i + 2] === b) return true;
            }
            return false;
        })""",
        card,
    )
    assert has_zero, card
    brightness = sum(card)
    assert brightness > 600 if scheme == "light" else brightness < 200

    name = "inside-the-network.png" if scheme == "light" else "inside-the-network-dark.png"
    page.get_by_test_id("explain").screenshot(path=str(artifacts / name))
    assert (artifacts / name).stat().st_size > 10_000
    failing = [c for c in page.evaluate(CONTRAST_JS) if c["ratio"] < c["need"]]
    assert not failing, failing
