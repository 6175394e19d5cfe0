"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright.

Skips only when Chromium is not installed (``apt-get install -y chromium``); any other problem
fails. ``MABSA_SERVE_CHECKPOINT=DIR`` serves that checkpoint instead of the tiny test one, and
``MABSA_SCREENSHOT=PATH`` also saves the screenshot there (how ``docs/img/serve.png`` is made).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mabsa.serve import EvidenceConfig, ServeConfig, create_app
from mabsa.serve.examples import example_jpeg
from serve_support import running_server, tiny_checkpoint

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="Debian's chromium is not installed (apt-get install -y chromium)"
)

# The flags a closed network needs (no background connections, no first-run, no GPU).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TEXT = "RT @ NASA : Eileen Collins smiles before the launch , so proud of her and # NASA today"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    checkpoint = os.environ.get("MABSA_SERVE_CHECKPOINT") or str(tiny_checkpoint(tmp_path_factory))
    app = create_app(ServeConfig(checkpoints={Path(checkpoint).name: checkpoint}, evidence=EvidenceConfig()))
    with running_server(app) as base:
        yield base


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def submit(page, server, text: str, image: Path | None):
    page.goto(server + "/")
    page.fill("#post-text", text)
    if image is not None:
        page.set_input_files("#image-input", str(image))
        page.wait_for_selector("#preview:not([hidden])")
    with page.expect_response(lambda r: r.url.endswith("/v1/predict")) as response:
        page.click("#analyse")
    assert response.value.status == 200, response.value.text()
    page.wait_for_selector("#result:not([hidden])")
    return response.value.json()


def test_post_with_photo_shows_highlights_overlay_and_evidence(server, browser, tmp_path, monkeypatch):
    # a name is never near a face's description ("a 33-year-old woman"), so no aspect of this post
    # passes the alignment floor; without it, the nearest face or region is shown for every
    # aspect, which is what the overlay and hover checks below need
    monkeypatch.setattr("mabsa.serve.evidence.ALIGNMENT_FLOOR", -1.0)
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(example_jpeg("astronaut"))
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    data = submit(page, server, TEXT, photo)

    aspects = data["aspects"]
    assert aspects, "the served model found no aspect in the test post"
    marks = page.locator("#result-text mark.aspect")
    assert marks.count() == len(aspects)
    for i, a in enumerate(aspects):
        mark = marks.nth(i)
        assert mark.get_attribute("data-polarity") == a["polarity"]
        assert a["polarity"] in mark.get_attribute("class")
        assert mark.locator(".conf").inner_text() == f"{round(a['score'] * 100)}%"
        assert mark.inner_text().startswith(TEXT[a["char_start"] : a["char_end"]])
    colours = {m.evaluate("n => getComputedStyle(n).backgroundColor") for m in marks.all()}
    polarities = {a["polarity"] for a in aspects}
    assert len(colours) == len(polarities)  # one colour per sentiment
    shown = page.locator("#result-text").evaluate(
        "n => { const c = n.cloneNode(true); c.querySelectorAll('.conf').forEach(x => x.remove());"
        " return c.textContent; }"
    )
    assert shown == TEXT  # the post itself, unchanged around the highlights

    faces = data["image"]["faces"]
    assert faces, "no face found on the astronaut photo"
    face_boxes = page.locator("#overlay .box.face")
    assert face_boxes.count() == len(faces)
    figure = page.locator("#result-image").bounding_box()
    drawn = face_boxes.first.bounding_box()
    x, y, w, h = faces[0]["box"]
    scale = figure["width"] / data["image"]["width"]
    assert abs(drawn["x"] - figure["x"] - x * scale) < 3 and abs(drawn["width"] - w * scale) < 3
    assert page.locator("#overlay .box.region").count() == sum(not r["is_background"] for r in data["image"]["regions"])

    evidence = page.locator("#evidence-list").inner_text()
    assert data["image"]["caption"] in evidence and "There is 1 person" in evidence
    assert data["image"]["confident"] and "woman" in data["image"]["caption"]  # the person comes first
    aligned = [i for i, a in enumerate(aspects) if a["aligned"] and a["aligned"]["kind"] != "background"]
    # the one face and the text naming her: alignment (on by default) must link an aspect to it
    assert aligned, [a["aligned"] for a in aspects]
    marks.nth(aligned[0]).hover()  # hovering an aspect lights up its aligned face/region
    assert page.locator("#overlay .box.active").count() == 1
    assert not errors

    page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
    assert (tmp_path / "serve.png").stat().st_size > 10_000
    if os.environ.get("MABSA_SCREENSHOT"):
        page.screenshot(path=os.environ["MABSA_SCREENSHOT"], full_page=True)
    page.close()


def test_example_button_and_error_message(server, browser):
    page = browser.new_page()
    page.goto(server + "/")
    page.wait_for_selector("#example-list .example")
    with page.expect_response(lambda r: r.url.endswith("/v1/predict")) as response:
        page.locator("#example-list .example").nth(1).click()
    assert response.value.status == 200
    page.wait_for_selector("#result:not([hidden])")
    assert "espresso" in page.input_value("#post-text").lower()
    assert page.locator("#overlay .box").count() >= 1

    page.fill("#post-text", "x" * 10)  # fine; then an image the server refuses
    page.set_input_files(
        "#image-input", files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG not really"}]
    )
    page.click("#analyse")
    page.wait_for_selector("#error:not([hidden])")
    assert "bad_image" in page.inner_text("#error")
    page.close()


def test_dropping_an_image_on_the_page_selects_it(server, browser):
    page = browser.new_page()
    page.goto(server + "/")
    jpeg = list(example_jpeg("coffee"))
    page.evaluate(
        """bytes => {
        const file = new File([new Uint8Array(bytes)], "dropped.jpg", {type: "image/jpeg"});
        const data = new DataTransfer();
        data.items.add(file);
        document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));
    }""",
        jpeg,
    )
    page.wait_for_selector("#preview:not([hidden])")
    page.wait_for_function(
        "document.getElementById('preview').complete && document.getElementById('preview').naturalWidth === 600"
    )
    assert page.is_visible("#clear-image")
    page.click("#clear-image")
    assert page.is_hidden("#preview")
    page.close()


def test_an_error_clears_the_previous_result(server, browser):
    page = browser.new_page()
    submit(page, server, TEXT, None)
    assert page.is_visible("#result")
    page.set_input_files(
        "#image-input", files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG not really"}]
    )
    page.click("#analyse")
    page.wait_for_selector("#error:not([hidden])")
    assert page.is_hidden("#result")  # no stale answer under the error banner
    page.close()


def test_no_horizontal_overflow_on_a_phone_screen(server, browser):
    page = browser.new_page()
    page.set_viewport_size({"width": 375, "height": 800})
    long_text = TEXT + " https://example.org/a/very/long/link/that/does/not/break/anywhere/at/all " + "#" + "x" * 80
    submit(page, server, long_text, None)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide on a 375 px screen"
    page.close()


def test_favicon_and_api_docs_render_offline(server, browser):
    page = browser.new_page()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on(
        "response", lambda r: None if r.url.startswith((server, "blob:" + server)) else failed.append(f"out: {r.url}")
    )
    # a request the page's Content-Security-Policy stops never leaves the browser (ReDoc's logo)
    page.on(
        "requestfailed",
        lambda r: None if r.failure in ("csp", "net::ERR_BLOCKED_BY_CSP") else failed.append(f"{r.failure} {r.url}"),
    )
    page.goto(server + "/")
    page.wait_for_selector("#example-list .example")
    assert page.evaluate("fetch('/favicon.ico').then(r => r.status)") == 200

    page.goto(server + "/docs")  # Swagger UI 5: renders FastAPI's OpenAPI 3.1
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/predict" in paths and "/readyz" in paths, paths
    assert "Unable to render this definition" not in page.content()

    page.goto(server + "/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", state="attached", timeout=30_000)
    assert "/v1/predict" in page.content()
    assert not failed, failed
    page.close()
