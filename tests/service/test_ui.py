"""The page at ``/ui``, driven in a real headless Chromium (Playwright on Debian's ``chromium``)
against the session's real ``bentoml serve`` of a trained toy champion (tests/bento.py: the
API token is set, so every page first signs in with it).

Each test gets a fresh browser context with the session cookie, and records every request the
page makes; a request to any host but 127.0.0.1 is aborted and fails the test.

Screenshots for docs/ (``test_screenshots``) are taken only on request:
``VIDEOBOOST_UI_SCREENSHOTS=docs pytest tests/service/test_ui.py -k screenshots``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av
import cv2
import httpx
import numpy as np
import pytest
from bento import AUTH, MAX_IMAGE_MB, SCALE, TOKEN
from media import texture
from PIL import Image
from tiny import audio_packets, decoded_frames, make_clip

from videoboost.data.degrade import upscale_bicubic
from videoboost.inference.engine import plan_output

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIDEO_TIMEOUT_MS = 240_000  # a clip job on 2 busy cores
# Quiet, offline Chromium: no background fetches, no first-run, sound allowed without a click.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-gpu",
]


def _png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _file(name: str, mime: str, data: bytes) -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


# --------------------------------------------------------------------------- browser fixtures


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium: install Debian's `chromium` (`make test` does, as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Network:
    """Every request a browser context makes; requests off 127.0.0.1 are aborted."""

    def __init__(self, context) -> None:
        self.urls: list[str] = []
        self.outside: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))
        context.route("**/*", self._gate)

    def _gate(self, route) -> None:
        url = route.request.url
        if self.local(url):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    @staticmethod
    def local(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("blob", "data") or parts.hostname == "127.0.0.1"

    def check(self) -> None:
        assert not self.outside, f"the page tried to reach other hosts: {self.outside}"
        assert all(self.local(u) for u in self.urls), self.urls


def _new_context(browser, **kw):
    context = browser.new_context(
        accept_downloads=True, viewport={"width": 1440, "height": 1000}, **kw
    )
    return context, Network(context)


def _sign_in(page, url: str, token: str):
    """Open /ui, meet the token form, send ``token``; returns the answer to the form."""
    first = page.goto(f"{url}/ui")
    assert first.status == 401
    page.fill("#token", token)
    with page.expect_navigation() as nav:
        page.click("button[type=submit]")
    return nav.value


@pytest.fixture(scope="module")
def signed_in(browser, served) -> dict:
    """The browser state (the session cookie) of a page signed in with the server's token."""
    context, network = _new_context(browser)
    page = context.new_page()
    answer = _sign_in(page, served.url, TOKEN)
    assert answer.status == 200 and answer.url == f"{served.url}/ui/"
    page.wait_for_selector("body[data-ready='true']")
    state = context.storage_state()
    network.check()
    context.close()
    return state


@pytest.fixture
def ui(browser, served, signed_in):
    """A signed-in page on /ui, its story loaded; checks its network log afterwards."""
    context, network = _new_context(browser, storage_state=signed_in)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    answer = page.goto(f"{served.url}/ui")
    assert answer.status == 200
    page.wait_for_selector("body[data-ready='true']")
    page.network = network
    yield page
    assert not errors, errors
    network.check()
    context.close()


def _upscale_in_page(page, name: str, mime: str, data: bytes) -> None:
    page.set_input_files("#image-input", _file(name, mime, data))
    page.wait_for_selector("body[data-image-done]", state="attached", timeout=120_000)


def _video_in_page(page, name: str, mime: str, data: bytes) -> None:
    page.click("#tab-video")
    page.set_input_files("#video-input", _file(name, mime, data))
    page.wait_for_selector("body[data-video-done]", state="attached", timeout=VIDEO_TIMEOUT_MS)


def _canvas_rgb(page, selector: str) -> np.ndarray:
    """A canvas's pixels, read back through a lossless PNG."""
    url = page.eval_on_selector(selector, "c => c.toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# --------------------------------------------------------------------------- the story


def test_the_page_tells_the_models_story(ui, served):
    about = json.loads(ui.evaluate("fetch('/ui/about.json').then(r => r.text())"))
    model = about["model"]
    assert model["version"] == served.version
    assert ui.inner_text("#story-model") == f"videoboost-generator v{served.version} ×{SCALE}"
    assert "tier:" in ui.inner_text("#story-tier")
    # The runtime `auto` chose at start-up, as the server printed it.
    runtime = about["runtime"]
    assert f"runtime: {runtime['name']} ({runtime['precision']})" in served.log.read_text()
    shown = ui.inner_text("#story-runtime")
    assert shown.startswith(runtime["name"]) and f"{runtime['fps']:.1f} frames/s" in shown
    # The gain on each track, from the version's own figures (the shared champion's tag).
    assert model["tracks"] == {"clean": 0.42}
    assert ui.inner_text("#story-tracks li[data-track='clean']").split() == ["clean", "+0.42", "dB"]
    # No tracking server here (a SQLite store): no MLflow link.
    assert model["mlflow_url"] is None and ui.is_hidden("#mlflow-link")
    assert about["limits"]["image_bytes"] == MAX_IMAGE_MB * 2**20


# --------------------------------------------------------------------------- pictures


def test_a_picture_is_upscaled_compared_and_downloaded(ui, tmp_path):
    lr = texture(48, 64, seed=3)
    _upscale_in_page(ui, "frame.png", "image/png", _png(lr))
    assert ui.is_visible("#image-result") and ui.is_hidden("#error")
    assert ui.inner_text("#in-size") == "64×48"
    assert ui.inner_text("#out-size") == f"{64 * SCALE}×{48 * SCALE}"
    assert ui.inner_text("#elapsed").endswith(("ms", " s"))
    # The comparison's other side is bicubic of the same input at the output size, as the
    # project's benchmark computes it (Pillow), to within rounding.
    bic = _canvas_rgb(ui, "#bicubic-canvas")
    expected = upscale_bicubic(lr, SCALE).astype(int)
    assert bic.shape == expected.shape
    assert np.abs(bic.astype(int) - expected).max() <= 1
    # The divider moves.
    ui.fill("#compare-slider", "20")
    assert ui.eval_on_selector("#compare", "e => e.style.getPropertyValue('--pos')") == "20%"
    # The download is the API's PNG.
    with ui.expect_download() as download:
        ui.click("#download-image")
    assert download.value.suggested_filename == "frame_videoboost.png"
    path = tmp_path / "out.png"
    download.value.save_as(path)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (64 * SCALE, 48 * SCALE)


def test_the_finishing_options_reach_the_api(ui, tmp_path):
    lr = texture(40, 60, seed=4)
    ui.fill("#opt-height", "100")
    ui.fill("#opt-unsharp", "0.5")
    ui.fill("#opt-contrast", "1.1")
    requests = []
    ui.on("request", lambda r: requests.append(r) if r.url.endswith("/upscale") else None)
    _upscale_in_page(ui, "small.png", "image/png", _png(lr))
    out_h, out_w, _ = plan_output(40, 60, SCALE, 100)
    assert ui.inner_text("#out-size") == f"{out_w}×{out_h}"
    body = requests[-1].post_data_buffer
    assert b'name="height"' in body and b"100" in body
    assert b'"unsharp_amount": 0.5' in body or b'"unsharp_amount":0.5' in body
    assert b'"contrast":1.1' in body or b'"contrast": 1.1' in body


# The page shows the API's own answer to a hostile upload: the status and the message.
HOSTILE = [
    ("image", "notes.txt", "text/plain", b"just some words"),
    ("image", "fake.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
    ("image", "empty.png", "image/png", b""),
    ("image", "big.png", "image/png", os.urandom(MAX_IMAGE_MB * 2**20 + 1000)),
    ("video", "broken.mp4", "video/mp4", b"\0\0\0\x18ftypmp42" + os.urandom(2000)),
    ("video", "picture.mp4", "image/png", _png(texture(16, 16))),
]


@pytest.mark.parametrize(("field", "name", "mime", "data"), HOSTILE, ids=[h[1] for h in HOSTILE])
def test_a_hostile_upload_gets_the_apis_answer(ui, served, field, name, mime, data):
    route = "/upscale" if field == "image" else "/upscale_video/submit"
    api = served.client.post(route, files={field: (name, data, mime)})
    assert 400 <= api.status_code < 500, api.text
    if field == "image":
        _upscale_in_page(ui, name, mime, data)
    else:
        _video_in_page(ui, name, mime, data)
    assert ui.is_visible("#error")
    shown = ui.inner_text("#error")
    message = api.json()["error"]
    if name == "big.png":
        # Refused in the page before uploading, in the API's words (its size counts the form).
        assert shown.startswith("413") and "above the limit of 1 MiB" in shown
        assert message.endswith("above the limit of 1 MiB")
    else:
        assert shown == f"{api.status_code}{message}"
    assert ui.is_hidden("#image-result") and ui.is_hidden("#video-result")


# --------------------------------------------------------------------------- clips


def test_a_clip_is_upscaled_with_progress_playable_and_downloadable(ui, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", n=7, size=(48, 32), rate=Fraction(25))
    _video_in_page(ui, "clip.mp4", "video/mp4", clip.read_bytes())
    assert ui.is_hidden("#error"), ui.inner_text("#error")
    assert ui.is_visible("#video-result")
    # Progress came as a stream of events from the job.
    assert any("/ui/progress?task_id=" in url for url in ui.network.urls)
    # Playable in the page, at the model's size.
    player = ui.eval_on_selector(
        "#result-video",
        """async v => { await v.play(); await new Promise(r => setTimeout(r, 300)); v.pause();
           return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime, error: v.error}; }""",
    )
    assert (player["w"], player["h"]) == (48 * SCALE, 32 * SCALE)
    assert player["t"] > 0 and player["error"] is None
    assert ui.inner_text("#video-out-size") == f"{48 * SCALE}×{32 * SCALE}"
    assert ui.inner_text("#video-frames").startswith("7 ")
    # A side-by-side preview of a few frames: bicubic | VideoBoost at the output size.
    sizes = ui.eval_on_selector_all("#preview canvas", "cs => cs.map(c => [c.width, c.height])")
    assert len(sizes) == 6 and all(s == [48 * SCALE, 32 * SCALE] for s in sizes)
    # The download: the right size, every frame, the audio kept.
    with ui.expect_download() as download:
        ui.click("#download-video")
    assert download.value.suggested_filename == "clip_videoboost.mp4"
    path = tmp_path / "out.mp4"
    download.value.save_as(path)
    frames = decoded_frames(path)
    assert len(frames) == 7 and frames[0].shape == (32 * SCALE, 48 * SCALE, 3)
    assert audio_packets(path)


# --------------------------------------------------------------------------- the token


def test_the_page_refuses_without_the_token(browser, served):
    context, network = _new_context(browser)
    page = context.new_page()
    answer = page.goto(f"{served.url}/ui")
    assert answer.status == 401
    assert "needs its API token" in page.inner_text("h1")
    # Nothing behind the page answers either: its script, its facts, the API it calls.
    for path in ("/ui/static/ui.js", "/ui/about.json", "/ui/progress?task_id=x"):
        assert page.request.get(f"{served.url}{path}").status == 401
    upload = page.request.post(
        f"{served.url}/upscale", multipart={"image": _file("a.png", "image/png", b"x")}
    )
    assert upload.status == 401 and upload.json()["error"].startswith("missing API token")
    # A wrong token is refused; the right one opens the page.
    wrong = _sign_in(page, served.url, "not-the-token")
    assert wrong.status == 401 and "not this server's token" in page.inner_text(".problem")
    assert not [c for c in context.cookies() if c["name"] == "videoboost_session"]
    right = _sign_in(page, served.url, TOKEN)
    assert right.status == 200
    page.wait_for_selector("body[data-ready='true']")
    cookie = next(c for c in context.cookies() if c["name"] == "videoboost_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    network.check()
    context.close()


def test_the_page_cookie_counts_only_from_the_page_itself(served, signed_in):
    """The cookie stands for the token on reads, and on writes only with the page's Origin: a
    form posted from another site does not carry the server's token."""
    cookie = next(c for c in signed_in["cookies"] if c["name"] == "videoboost_session")
    jar = {cookie["name"]: cookie["value"]}
    png = _png(texture(16, 16))
    with httpx.Client(base_url=served.url, cookies=jar, timeout=60) as client:
        assert client.get("/ui/about.json").status_code == 200
        files = {"image": ("a.png", png, "image/png")}
        assert client.post("/upscale", files=files).status_code == 401
        evil = {"Origin": "http://evil.example"}
        assert client.post("/upscale", files=files, headers=evil).status_code == 401
        same = {"Origin": served.url}
        assert client.post("/upscale", files=files, headers=same).status_code == 200
    # The header still works alone, as before.
    assert httpx.get(f"{served.url}/ui/about.json", headers=AUTH).status_code == 200


# --------------------------------------------------------------------------- screenshots


SAMPLE = ROOT / "data" / "sample" / "bigbuckbunny.mp4"


def _coded_sample(tmp_path: Path) -> tuple[bytes, bytes]:
    """A JPEG-coded frame and a short H.264 clip at 256x144 from the sample footage."""
    source = Path(os.environ.get("VIDEOBOOST_UI_SAMPLE", SAMPLE))
    with av.open(str(source)) as container:
        frames = [
            f.to_ndarray(format="rgb24")
            for _, f in zip(range(96), container.decode(video=0), strict=False)
        ]
    small = [cv2.resize(f, (256, 144), interpolation=cv2.INTER_AREA) for f in frames[36:96]]
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(small[0], cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 45])[1].tobytes()  # fmt: skip
    clip = tmp_path / "sample.mp4"
    make_clip(clip, n=len(small), size=(256, 144), picture=lambda i, h, w: small[i],
              x264={"crf": "28"})  # fmt: skip
    return jpeg, clip.read_bytes()


def test_screenshots_of_a_coded_frame_and_clip(ui, tmp_path):
    """The README's screenshots (written to VIDEOBOOST_UI_SCREENSHOTS=DIR when set): the page
    after a JPEG-coded frame and after an H.264 clip, each showing its result."""
    out = Path(os.environ.get("VIDEOBOOST_UI_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    jpeg, clip = _coded_sample(tmp_path)
    _upscale_in_page(ui, "bunny_frame.jpg", "image/jpeg", jpeg)
    assert ui.is_visible("#image-result")
    ui.fill("#compare-slider", "45")
    ui.screenshot(path=str(out / "ui_image.png"), full_page=True)
    _video_in_page(ui, "bunny_clip.mp4", "video/mp4", clip)
    assert ui.is_visible("#video-result"), ui.inner_text("#error")
    ui.eval_on_selector("#result-video", "v => { v.currentTime = 0.5; }")
    ui.wait_for_timeout(500)
    ui.screenshot(path=str(out / "ui_clip.png"), full_page=True)
    for name in ("ui_image.png", "ui_clip.png"):
        shot = cv2.imread(str(out / name))
        assert shot is not None and shot.shape[0] > 400 and shot.shape[1] > 600, name
        assert float(shot.std()) > 10, f"{name} is blank"
