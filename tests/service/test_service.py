"""The bento end to end: a tiny champion in a temporary registry, `videoboost bento build`, a real
`bentoml serve` on 127.0.0.1, every endpoint and every bad-input status over HTTP."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import yaml
from bento import BUDGET, SCALE, clean_env, where
from media import texture
from PIL import Image
from tiny import audio_packets, decoded_frames, make_clip

from videoboost.inference.engine import _tile_starts

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TILE_OVERLAP = 8  # UpscaleConfig().overlap


# --------------------------------------------------------------------------- helpers


def _png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _decode(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB"))


def _upscale(served, rgb: np.ndarray, **fields) -> httpx.Response:
    return served.client.post(
        "/upscale",
        files={"image": ("lr.png", _png(rgb), "image/png")},
        data={k: str(v) for k, v in fields.items()},
    )


def _run_task(served, files: dict, data: dict | None = None, timeout: float = 120):
    r = served.client.post("/upscale_video/submit", files=files, data=data or {})
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    deadline = time.monotonic() + timeout
    while True:
        status = served.client.get("/upscale_video/status", params={"task_id": task_id}).json()
        if status["status"] not in ("pending", "in_progress"):  # queued, running
            break
        assert time.monotonic() < deadline, "video task did not finish"
        time.sleep(0.3)
    return status["status"], served.client.get("/upscale_video/get", params={"task_id": task_id})


def _assert_error(r: httpx.Response, status: int, *needles: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, dict) and isinstance(body["error"], str), body
    for needle in needles:
        assert needle in body["error"], body["error"]


# --------------------------------------------------------------------------- the bento


def test_bento_is_pinned_to_the_registry_champion(served):
    name, version = served.tag.split(":")
    info = yaml.safe_load(
        (served.bento_home / "bentos" / name / version / "bento.yaml").read_text()
    )
    labels = info["labels"]
    assert labels["mlflow_model"] == "videoboost-generator"
    assert labels["mlflow_version"] == served.version
    assert labels["mlflow_run_id"]
    assert labels["scale"] == str(SCALE)
    assert info["args"]["model"] == labels["bento_model"]
    assert [m["tag"] for m in info["services"][0]["models"]] == [labels["bento_model"]]


def test_health_and_metrics(served):
    assert served.client.get("/livez").status_code == 200
    assert served.client.get("/readyz").status_code == 200
    metrics = served.client.get("/metrics")
    assert metrics.status_code == 200
    assert "bentoml_service_request" in metrics.text


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("encode, mime", [(_png, "image/png"), (_jpeg, "image/jpeg")])
def test_upscale_returns_a_png_at_the_model_scale(served, encode, mime):
    lr = texture(24, 40, seed=1)
    r = served.client.post("/upscale", files={"image": ("lr", encode(lr), mime)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-videoboost-registry-version"] == served.version
    assert _decode(r.content).shape == (24 * SCALE, 40 * SCALE, 3)


def test_height_beyond_the_model_scale_is_reported(served):
    r = _upscale(served, texture(24, 40, seed=2), height=192)  # x8 from a x4 model
    assert r.status_code == 200, r.text
    assert _decode(r.content).shape == (192, 320, 3)
    assert "Lanczos" in r.headers["x-videoboost-note"]


def test_tiled_output_matches_untiled_away_from_seams(served):
    lr = texture(110, 150, seed=3)
    whole = _decode(_upscale(served, lr, tile=0).content).astype(int)
    tiled = _decode(_upscale(served, lr, tile=64).content).astype(int)
    assert tiled.shape == whole.shape == (110 * SCALE, 150 * SCALE, 3)
    # Within the receptive field (4 LR px, plus the 2 px bicubic skip) of an interior tile
    # edge a tile sees zero padding; the feathered blend hides most of it, not all.
    near_seam = np.zeros(whole.shape[:2], bool)
    for axis, length in ((0, 110), (1, 150)):
        for start in _tile_starts(length, 64, TILE_OVERLAP):
            for edge in (start, start + 64):
                if 0 < edge < length:
                    band = [slice(None), slice(None)]
                    band[axis] = slice((edge - 6) * SCALE, (edge + 6) * SCALE)
                    near_seam[tuple(band)] = True
    diff = np.abs(tiled - whole)
    assert near_seam.mean() < 0.8
    assert diff[~near_seam].max() <= 1  # rounding only
    assert diff.mean() < 1.0


def test_frames_endpoint_serves_concurrent_requests(served):
    frames = [texture(18, 32, seed=s) for s in range(4)] + [texture(20, 24, seed=9)]
    requests = [[0], [1, 4], [2], [3, 0], [4]]

    def post(idx: list[int]) -> list[np.ndarray]:
        files = [("frames", (f"f{i}.png", _png(frames[i]), "image/png")) for i in idx]
        r = served.client.post("/upscale_frames", files=files)
        assert r.status_code == 200, r.text
        return [_decode(base64.b64decode(item)) for item in r.json()]

    with ThreadPoolExecutor(len(requests)) as pool:
        results = list(pool.map(post, requests))
    singles = {i: _decode(_upscale(served, frames[i]).content).astype(int) for i in range(5)}
    for idx, outs in zip(requests, results, strict=True):
        assert len(outs) == len(idx)
        for i, sr in zip(idx, outs, strict=True):
            assert sr.shape == (frames[i].shape[0] * SCALE, frames[i].shape[1] * SCALE, 3)
            assert np.abs(sr.astype(int) - singles[i]).max() <= 1  # sharing calls changes nothing


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


@pytest.mark.parametrize(
    "fields, mime, kind",
    [
        ({"compression": 0}, "image/png", "PNG"),
        ({"compression": 9}, "image/png", "PNG"),
        ({"format": "jpeg", "quality": 95}, "image/jpeg", "JPEG"),
        ({"format": "webp", "quality": 95}, "image/webp", "WEBP"),
    ],
    ids=["png-0", "png-9", "jpeg", "webp"],
)
def test_upscale_answers_in_the_encoding_asked_for(served, fields, mime, kind):
    lr = texture(30, 44, seed=5)
    reference = _decode(_upscale(served, lr).content).astype(int)  # the default: PNG, level 1
    r = _upscale(served, lr, **fields)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == mime
    img = Image.open(io.BytesIO(r.content))
    assert img.format == kind
    sr = np.asarray(img.convert("RGB")).astype(int)
    assert sr.shape == reference.shape == (30 * SCALE, 44 * SCALE, 3)
    if kind == "PNG":
        assert np.array_equal(sr, reference)  # lossless at every level
    else:
        assert _psnr(sr, reference) > 30


def test_frames_endpoint_answers_in_the_encoding_asked_for(served):
    frames = [texture(18, 32, seed=s) for s in range(2)]
    files = [("frames", (f"f{i}.png", _png(f), "image/png")) for i, f in enumerate(frames)]
    r = served.client.post("/upscale_frames", files=files, data={"format": "jpeg", "quality": "90"})
    assert r.status_code == 200, r.text
    for item, lr in zip(r.json(), frames, strict=True):
        img = Image.open(io.BytesIO(base64.b64decode(item)))
        assert img.format == "JPEG"
        reference = _decode(_upscale(served, lr).content)
        assert _psnr(np.asarray(img.convert("RGB")), reference) > 30


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"format": "gif"}, "format"),
        ({"quality": 0}, "quality"),
        ({"compression": 10}, "compression"),
    ],
)
def test_a_bad_encoding_is_a_400_naming_the_field(served, fields, needle):
    _assert_error(_upscale(served, texture(8, 8), **fields), 400, needle)


# --------------------------------------------------------------------------- video task


def test_video_task_returns_a_playable_mp4_with_fps_frames_and_audio(served, tmp_path):
    src = make_clip(tmp_path / "in.mp4", 10, size=(48, 32), rate=Fraction(30000, 1001))
    status, r = _run_task(served, {"video": ("in.mp4", src.read_bytes(), "video/mp4")})
    assert status == "completed", r.text
    assert r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    from videoboost.video.pipeline import probe

    info = probe(out, count_frames=True)
    assert (info.width, info.height) == (48 * SCALE, 32 * SCALE)
    assert info.fps == Fraction(30000, 1001)
    assert info.frame_count == 10 == len(decoded_frames(out))
    assert info.codec == "h264" and info.audio_codecs == ("aac",)
    assert audio_packets(out) == audio_packets(src)  # copied, not re-encoded


# --------------------------------------------------------------------------- bad input


def _big_png() -> bytes:
    return _png(np.zeros((200, 250, 3), np.uint8))  # 50 000 px > BUDGET


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    return buf.getvalue()


GOOD = _png(texture(16, 16, seed=5))


@pytest.mark.parametrize(
    "kwargs, status, needle",
    [
        (
            {"files": {"image": ("x.png", b"hello, not a picture", "image/png")}},
            400,
            "not a readable image",
        ),
        ({"files": {"image": ("x.png", GOOD[:60], "image/png")}}, 400, "image"),
        ({"files": {"image": ("x.png", _big_png(), "image/png")}}, 413, str(BUDGET)),
        ({"files": {"image": ("x.txt", GOOD, "text/plain")}}, 415, "PNG or JPEG"),
        ({"files": {"image": ("x.gif", _gif(), "application/octet-stream")}}, 415, "GIF"),
        ({"json": {"image": "aGVsbG8="}}, 415, "multipart/form-data"),
        ({"content": GOOD, "headers": {"content-type": "image/png"}}, 415, "multipart"),
        ({"files": {"image": ("x.png", GOOD, "image/png")}, "data": {"scale": "2"}}, 400, "x4"),
        ({"files": {"image": ("x.png", GOOD, "image/png")}, "data": {"tile": "5000"}}, 400, ""),
        ({"files": {"image": ("x.png", GOOD, "image/png")}, "data": {"tile": "8"}}, 400, "tile"),
        (
            {
                "files": {"image": ("x.png", GOOD, "image/png")},
                "data": {"postprocess": '{"contrast": 9}'},
            },
            400,
            "",
        ),
        ({"files": {"image": ("x.png", os.urandom(1_200_000), "image/png")}}, 413, "MiB"),
    ],
    ids=[
        "not-an-image",
        "truncated",
        "over-pixel-budget",
        "text-part",
        "gif",
        "json-body",
        "raw-body",
        "scale-mismatch",
        "tile-too-big",
        "tile-too-small",
        "postprocess-out-of-range",
        "upload-too-large",
    ],
)
def test_upscale_refuses_bad_input(served, kwargs, status, needle):
    _assert_error(served.client.post("/upscale", **kwargs), status, needle)


def test_frames_endpoint_refuses_bad_frames(served):
    files = [("frames", ("a.png", GOOD, "image/png")), ("frames", ("b.png", b"junk", "image/png"))]
    _assert_error(served.client.post("/upscale_frames", files=files), 400, "frame")
    big = [("frames", ("a.png", _big_png(), "image/png"))]
    _assert_error(served.client.post("/upscale_frames", files=big), 413, str(BUDGET))


def test_video_task_refuses_bad_input_at_submit(served, tmp_path):
    """Refused when submitted, with no task id (test_openapi_page.py checks no task is made)."""

    def submit(name: str, data: bytes, mime: str) -> httpx.Response:
        return served.client.post("/upscale_video/submit", files={"video": (name, data, mime)})

    _assert_error(submit("v.mp4", b"not a video at all", "video/mp4"), 400, "video")
    _assert_error(submit("v.png", GOOD, "image/png"), 415, "video/*")
    big = make_clip(tmp_path / "big.mp4", 2, size=(256, 192), audio_streams=0)  # 49 152 px
    _assert_error(submit("big.mp4", big.read_bytes(), "video/mp4"), 413, str(BUDGET))
    r = served.client.post("/upscale_video/submit", json={"video": "x"})
    _assert_error(r, 415, "multipart/form-data")


# --------------------------------------------------------------------------- no model


def test_service_refuses_to_start_without_a_model(tmp_path):
    env = clean_env(tmp_path / "state", tmp_path / "empty-bentoml")
    out = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service.service:VideoBoost", *where()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "no BentoML model videoboost-generator:latest" in out.stderr
    assert "videoboost bento import" in out.stderr
