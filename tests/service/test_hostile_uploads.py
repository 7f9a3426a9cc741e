"""Hostile uploads: what a bad or malicious client can send, and how each is answered.

Decoding (`read_image`) is tested in-process: every image mode the service may meet, truncated
files at every cut, decompression bombs, random corruption. Then the same files and hostile
requests go to a real `bentoml serve` (one server, shared with the fuzz test): each gets a clear
4xx or a correct picture, never a 5xx; client file names never become paths; temporary files
are private and gone after the request.

Tests that need the server are marked slow; the in-process ones are fast.
"""

from __future__ import annotations

import io
import resource
import stat
import struct
import threading
import time
import warnings
import zlib
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from bento import BUDGET, SCALE
from hypothesis import given, settings
from hypothesis import strategies as st
from media import texture
from PIL import Image
from tiny import make_clip

from videoboost.inference.engine import ImageTooLarge, InvalidImage
from videoboost.inference.images import UnsupportedImageFormat, read_image

ACCEPTED = {"PNG", "JPEG"}

# --------------------------------------------------------------------------- hostile files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(w: int, h: int) -> bytes:
    """A 57-byte PNG whose header declares ``w`` x ``h`` RGB pixels (and has no pixel data)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"") + _chunk(b"IEND", b"")
    )


def png_bomb(w: int, h: int) -> bytes:
    """A real, valid 1-bit black PNG: 30000x30000 is 107 KB on disk, 2.7 GB as RGB."""
    row = b"\x00" * (1 + (w + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    )


def jpeg_declaring(w: int, h: int) -> bytes:
    """A 23-byte JPEG whose SOF0 declares ``w`` x ``h`` (JPEG's maximum is 65535)."""
    components = b"".join(bytes([i + 1, 0x11, 0]) for i in range(3))
    sof = struct.pack(">BBHBHHB", 0xFF, 0xC0, 17, 8, h, w, 3) + components
    return b"\xff\xd8" + sof + b"\xff\xd9"


def png_text_bomb() -> bytes:
    """An 8x8 PNG with a zTXt chunk inflating to 50 MB (Pillow caps text chunks at 1 MB)."""
    good = _png(np.zeros((8, 8, 3), np.uint8))
    bomb = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * 50_000_000, 9))
    return good[:33] + bomb + good[33:]  # right after IHDR


def _png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------- image modes

RNG = np.random.default_rng(8)
H, W = 10, 12
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, (H, W), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (H, W), dtype=np.uint8)
WIDE = RNG.integers(0, 65536, (H, W, 4), dtype=np.uint16)
INDEX = RNG.integers(0, 16, (H, W), dtype=np.uint8)
PALETTE = RNG.integers(0, 256, (256, 3), dtype=np.uint8)


def _palette_image() -> Image.Image:
    img = Image.fromarray(INDEX, "P")
    img.putpalette(PALETTE.tobytes())
    return img


def _exif_rotated() -> bytes:
    """16 wide x 8 high as stored, left half red, right half blue; EXIF orientation 6 says
    "rotate 90 degrees clockwise to display", so upright it is 8 wide x 16 high, red on top."""
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = (220, 20, 20)
    stored[:, 8:] = (20, 20, 220)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    return _save(img, "JPEG", exif=exif, quality=95)


def _grey3(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[:, :, None], 3, axis=2)


# (id, file bytes, expected (H, W, 3) uint8, tolerance): how each mode is handled. Alpha is
# dropped (colour kept as stored, not composited), 16 bits keep the high byte, grey is copied
# to three channels, palettes are looked up, CMYK is converted, EXIF orientation is applied.
MODES = [
    ("grey", _save(Image.fromarray(GREY), "PNG"), _grey3(GREY), 0),
    ("grey+alpha", _save(Image.fromarray(np.dstack([GREY, ALPHA]), "LA"), "PNG"), _grey3(GREY), 0),
    ("rgba", _save(Image.fromarray(np.dstack([RGB, ALPHA])), "PNG"), RGB, 0),
    ("palette", _save(_palette_image(), "PNG"), PALETTE[INDEX], 0),
    ("palette+tRNS", _save(_palette_image(), "PNG", transparency=3), PALETTE[INDEX], 0),
    ("1-bit", _save(Image.fromarray(GREY > 127), "PNG"), _grey3((GREY > 127) * np.uint8(255)), 0),
    (
        "16-bit-grey",
        _save(Image.fromarray(WIDE[:, :, 0]), "PNG"),
        _grey3((WIDE[:, :, 0] >> 8).astype(np.uint8)),
        0,
    ),
    (
        "16-bit-rgb",
        cv2.imencode(".png", WIDE[:, :, 2::-1].copy())[1].tobytes(),
        (WIDE[:, :, :3] >> 8).astype(np.uint8),
        0,
    ),
    (
        "16-bit-rgba",
        cv2.imencode(".png", WIDE[:, :, [2, 1, 0, 3]].copy())[1].tobytes(),
        (WIDE[:, :, :3] >> 8).astype(np.uint8),
        0,
    ),
    ("rgb-jpeg", _save(Image.fromarray(RGB), "JPEG", quality=100, subsampling=0), RGB, 8),
    ("grey-jpeg", _save(Image.new("L", (W, H), 100), "JPEG"), np.full((H, W, 3), 100, np.uint8), 2),
    (
        "cmyk-jpeg",
        _save(Image.new("CMYK", (W, H), (0, 255, 0, 0)), "JPEG", quality=95),
        np.broadcast_to(np.array([255, 0, 255], np.uint8), (H, W, 3)),
        8,
    ),
    (
        "progressive-jpeg",
        _save(Image.new("RGB", (W, H), (10, 200, 30)), "JPEG", progressive=True, quality=95),
        np.broadcast_to(np.array([10, 200, 30], np.uint8), (H, W, 3)),
        8,
    ),
]


@pytest.mark.parametrize("data, expected, tol", [m[1:] for m in MODES], ids=[m[0] for m in MODES])
def test_every_image_mode_is_read_as_8_bit_rgb(data, expected, tol):
    rgb = read_image(data, max_pixels=BUDGET, formats=ACCEPTED)
    assert expected.dtype == rgb.dtype == np.uint8 and rgb.shape == expected.shape
    assert np.abs(rgb.astype(int) - expected.astype(int)).max() <= tol


def test_exif_rotation_is_applied():
    rgb = read_image(_exif_rotated(), formats=ACCEPTED)
    assert rgb.shape == (16, 8, 3)  # upright: 8 wide, 16 high
    assert rgb[4, 4, 0] > 180 and rgb[4, 4, 2] < 60  # red on top
    assert rgb[12, 4, 2] > 180 and rgb[12, 4, 0] < 60  # blue below


# --------------------------------------------------------------------------- truncation, bombs


@pytest.mark.parametrize(
    "data",
    [_png(texture(12, 20, seed=1)), _save(Image.fromarray(texture(12, 20, seed=1)), "JPEG")],
    ids=["png", "jpeg"],
)
def test_a_file_cut_anywhere_is_refused_or_complete(data):
    """Every prefix of the file: a clear InvalidImage, or (a cut after the last pixel byte) the
    very same picture, never a partly black one and never another exception."""
    full = read_image(data)
    for cut in range(len(data)):
        try:
            rgb = read_image(data[:cut], formats=ACCEPTED)
        except InvalidImage as exc:
            assert str(exc).startswith("image: "), exc
        else:
            np.testing.assert_array_equal(rgb, full, err_msg=f"cut at {cut} of {len(data)}")


BOMBS = [
    ("png-30000x30000-real", png_bomb(30000, 30000)),
    ("png-header-30000x30000", png_declaring(30000, 30000)),
    ("png-header-2^31", png_declaring(2**31 - 1, 2**31 - 1)),
    ("png-5000x5000-real", png_bomb(5000, 5000)),
    ("jpeg-header-65535x65535", jpeg_declaring(65535, 65535)),
    ("jpeg-header-5000x5000", jpeg_declaring(5000, 5000)),
]


@pytest.mark.parametrize("data", [b[1] for b in BOMBS], ids=[b[0] for b in BOMBS])
def test_decompression_bombs_are_refused_before_decoding(data):
    assert len(data) < 120_000  # small files...
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageTooLarge, match=str(BUDGET)):
        read_image(data, max_pixels=BUDGET, formats=ACCEPTED)
    # ...that would need 75 MB to 13 EB decoded: refused from the header, so memory stays flat.
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50, f"peak RSS grew {grown_mb:.0f} MB: pixels were decoded"


def test_pillows_own_bomb_limits_are_clear_errors_too():
    """Without our budget (the CLI), Pillow's limits still apply and still come out as our
    error: above 2 x MAX_IMAGE_PIXELS an error, and between 1x and 2x a warning that becomes
    an error when warnings are errors (it must not escape as a RuntimeWarning)."""
    with pytest.raises(ImageTooLarge, match="refused before decoding"):
        read_image(png_declaring(30000, 30000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageTooLarge, match="refused before decoding"):
            read_image(png_declaring(10000, 10000))


def test_a_text_chunk_bomb_is_refused():
    with pytest.raises(InvalidImage):
        read_image(png_text_bomb(), max_pixels=BUDGET, formats=ACCEPTED)


def test_other_formats_and_empty_input_are_refused():
    gif = _save(Image.new("RGB", (8, 8)), "GIF")
    with pytest.raises(UnsupportedImageFormat, match="GIF"):
        read_image(gif, formats=ACCEPTED)
    with pytest.raises(InvalidImage, match="not a readable image"):
        read_image(b"", formats=ACCEPTED)


SEEDS = [
    _png(texture(16, 16, seed=2)),
    _save(Image.fromarray(texture(16, 16, seed=2)), "JPEG"),
    MODES[4][1],  # palette + tRNS
    MODES[6][1],  # 16-bit grey
    _exif_rotated(),
]


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # corrupt EXIF, skipped
# No example database: the same examples every run, and no shared files between xdist workers.
@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    cut=st.none() | st.floats(0, 1),
)
def test_corrupted_files_decode_or_fail_cleanly(seed, edits, cut):
    """Random byte edits and cuts: either an 8-bit RGB picture or InvalidImage/ImageTooLarge."""
    data = bytearray(seed)
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    try:
        rgb = read_image(bytes(data), max_pixels=BUDGET, formats=ACCEPTED)
    except (InvalidImage, ImageTooLarge) as exc:
        assert str(exc).startswith("image: ")
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert rgb.shape[0] * rgb.shape[1] <= BUDGET


# --------------------------------------------------------------------------- over HTTP

GOOD = _png(texture(16, 16, seed=5))
JPEG = _save(Image.fromarray(texture(64, 64, seed=5)), "JPEG")


def _file(name: str = "x.png", data: bytes = GOOD, mime: str = "image/png") -> dict:
    return {"image": (name, data, mime)}


def _raw(body: bytes, ctype: str) -> dict:
    return {"content": body, "headers": {"content-type": ctype}}


def _part(name: str, data: bytes, filename: str | None = "x.png") -> bytes:
    disposition = f'form-data; name="{name}"' if name else "form-data"
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (
        f"Content-Disposition: {disposition}\r\nContent-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
    )


def _field(name: str, value: str) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()


def _form(*parts: bytes) -> dict:
    return _raw(_multipart(list(parts)), "multipart/form-data; boundary=b0undary")


def _multipart(parts: list[bytes], boundary: str = "b0undary") -> bytes:
    return (
        b"".join(f"--{boundary}\r\n".encode() + p for p in parts) + f"--{boundary}--\r\n".encode()
    )


def _assert_error(r: httpx.Response, status: int, needle: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert needle in body["error"], body["error"]


# (id, request, status, words the message must contain). The cases of test_service.py's
# test_upscale_refuses_bad_input (text, GIF, JSON body, scale=2, tile bounds, upload size...)
# are not repeated here.
UPLOADS = [
    ("zero-byte", {"files": _file(data=b"")}, 400, "empty (0 bytes)"),
    ("truncated-png", {"files": _file(data=GOOD[: len(GOOD) // 2])}, 400, "corrupt or truncated"),
    (
        "truncated-jpeg",
        {"files": _file("x.jpg", JPEG[: len(JPEG) * 3 // 4], "image/jpeg")},
        400,
        "corrupt or truncated",
    ),
    ("bomb-png-30000", {"files": _file(data=BOMBS[0][1])}, 413, "refused before decoding"),
    ("bomb-png-5000", {"files": _file(data=BOMBS[3][1])}, 413, "5000x5000 = 25000000 pixels"),
    ("bomb-jpeg-65535", {"files": _file("x.jpg", BOMBS[4][1], "image/jpeg")}, 413, str(BUDGET)),
    ("text-chunk-bomb", {"files": _file(data=png_text_bomb())}, 400, "not a readable image"),
    ("tile-negative", {"files": _file(), "data": {"tile": "-64"}}, 400, "tile: "),
    ("tile-not-a-number", {"files": _file(), "data": {"tile": "NaN"}}, 400, "tile: "),
    ("scale-zero", {"files": _file(), "data": {"scale": "0"}}, 400, "scale: "),
    ("scale-negative", {"files": _file(), "data": {"scale": "-4"}}, 400, "scale: "),
    ("scale-text", {"files": _file(), "data": {"scale": "x4"}}, 400, "scale: "),
    ("scale-8-on-a-x4-model", {"files": _file(), "data": {"scale": "8"}}, 400, "upscales x4"),
    ("height-zero", {"files": _file(), "data": {"height": "0"}}, 400, "height: "),
    ("height-huge", {"files": _file(), "data": {"height": "9" * 40}}, 400, "height: "),
    (
        "height-on-a-1-pixel-strip",  # 40x1 -> 345600x8640: 3 G pixels asked for
        {"files": _file(data=_png(texture(1, 40, seed=3))), "data": {"height": "8640"}},
        400,
        "output limit",
    ),
    ("height-infinity", {"files": _file(), "data": {"height": "Infinity"}}, 400, "height: "),
    ("postprocess-not-json", {"files": _file(), "data": {"postprocess": "{"}}, 400, "postprocess"),
    (
        "postprocess-unknown-key",
        {"files": _file(), "data": {"postprocess": '{"shell": "rm -rf /"}'}},
        400,
        "postprocess.shell",
    ),
    ("image-missing", {"files": {"picture": ("x.png", GOOD, "image/png")}}, 400, "unknown field"),
    ("no-fields", _form(), 400, "image: Field required"),
    (
        "image-as-url",
        _form(_field("image", "http://169.254.169.254/latest/meta-data")),
        400,
        "must be a file part",
    ),
    ("unknown-field", {"files": _file(), "data": {"heigth": "720"}}, 400, "unknown field `heigth`"),
    (
        "image-twice",
        {
            "files": [
                ("image", ("a.png", GOOD, "image/png")),
                ("image", ("b.png", GOOD, "image/png")),
            ]
        },
        400,
        "more than once",
    ),
    (
        "scale-as-binary-file",
        {"files": {**_file(), "scale": ("s.bin", b"\x89\xff\x00", "application/octet-stream")}},
        400,
        "must be a plain value",
    ),
    (
        "no-boundary",
        _raw(_multipart([_part("image", GOOD)]), "multipart/form-data"),
        400,
        "multipart body cannot be parsed",
    ),
    (
        "wrong-boundary",
        _raw(_multipart([_part("image", GOOD)]), "multipart/form-data; boundary=other"),
        400,
        "multipart body cannot be parsed",
    ),
    (
        "boundary-too-long",
        _raw(
            _multipart([_part("image", GOOD)], "b" * 300),
            "multipart/form-data; boundary=" + "b" * 300,
        ),
        400,
        "multipart body cannot be parsed",
    ),
    (
        "part-without-name",
        _form(_part("", GOOD)),
        400,
        "multipart body cannot be parsed",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs, status, needle", [u[1:] for u in UPLOADS], ids=[u[0] for u in UPLOADS]
)
def test_hostile_upload_is_answered_clearly(served, kwargs, status, needle):
    _assert_error(served.client.post("/upscale", **kwargs), status, needle)


@pytest.mark.slow
def test_hostile_frames_are_answered_clearly(served):
    post = served.client.post

    def frames(*items: tuple[str, bytes]) -> dict:
        return {"files": [("frames", (f"f{i}.png", d, "image/png")) for i, d in enumerate(items)]}

    _assert_error(post("/upscale_frames", **frames(GOOD, b"")), 400, "frame: the upload is empty")
    _assert_error(post("/upscale_frames", **frames(BOMBS[0][1])), 413, "refused before decoding")
    _assert_error(post("/upscale_frames", **frames(GOOD[:100])), 400, "frame: ")
    _assert_error(post("/upscale_frames", **_form(_field("frames", "x"))), 400, "a file part")
    _assert_error(post("/upscale_frames", files={"frame": ("a", GOOD)}), 400, "unknown field")
    bad = _raw(_multipart([_part("frames", GOOD)]), "multipart/form-data; boundary=zz")
    _assert_error(post("/upscale_frames", **bad), 400, "multipart body cannot be parsed")


def _png_size(data: bytes) -> tuple[int, int]:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.mode == "RGB"
    return img.size[1], img.size[0]


@pytest.mark.slow
def test_every_image_mode_is_served(served):
    """Each mode is upscaled; a lossless one exactly as its 8-bit RGB equivalent would be."""

    def upscale(data: bytes, mime: str) -> np.ndarray:
        r = served.client.post("/upscale", files={"image": ("in", data, mime)})
        assert r.status_code == 200, r.text
        img = Image.open(io.BytesIO(r.content))
        assert img.format == "PNG" and img.mode == "RGB"
        return np.asarray(img)

    for mode, data, expected, tol in MODES:
        sr = upscale(data, "image/jpeg" if "jpeg" in mode else "image/png")
        assert sr.shape == (H * SCALE, W * SCALE, 3), mode
        if tol == 0:
            np.testing.assert_array_equal(sr, upscale(_png(expected), "image/png"), err_msg=mode)
    assert upscale(_exif_rotated(), "image/jpeg").shape == (16 * SCALE, 8 * SCALE, 3)


NAMES = [
    "../../../../evil.png",
    "..",
    "/etc/passwd",
    "a" * 400 + ".png",
    "nul\x00byte.png",
    "dir/",
    "..\\..\\evil.png",
    "ünïcødé 🎞.png",
]


@pytest.mark.slow
def test_client_file_names_are_never_paths(served, tmp_path):
    """Any file name is accepted and ignored: no 500 for a long or odd name, nothing written
    outside the server's temp folder, no temp file named after the client's name."""
    for name in NAMES:
        r = served.client.post("/upscale", files={"image": (name, GOOD, "image/png")})
        assert r.status_code == 200, (name, r.text)
        r = served.client.post("/upscale_frames", files={"frames": (name, GOOD, "image/png")})
        assert r.status_code == 200, (name, r.text)
    clip = make_clip(tmp_path / "clip.mp4", 4, audio_streams=0)
    status, _ = _video_task(served, ("../../../../evil.mp4", clip.read_bytes(), "video/mp4"))
    assert status == "completed"
    r = served.client.post(  # refused at submit: 48x32 -> 12960x8640 is over 40 000 x 4^2
        "/upscale_video/submit",
        files={"video": ("../../evil.mp4", clip.read_bytes(), "video/mp4")},
        data={"height": 8640},
    )
    _assert_error(r, 400, "output limit")
    root = served.tmp.parent  # where "../" from a request folder would land
    assert not [p for p in root.rglob("*") if "evil" in p.name or "passwd" in p.name]


def _video_task(
    served, upload: tuple, data: dict | None = None, timeout: float = 120
) -> tuple[str, httpx.Response]:
    r = served.client.post("/upscale_video/submit", files={"video": upload}, data=data or {})
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    deadline = time.monotonic() + timeout
    while (
        status := served.client.get("/upscale_video/status", params={"task_id": task_id}).json()[
            "status"
        ]
    ) == "in_progress":
        assert time.monotonic() < deadline, "video task did not finish"
        time.sleep(0.05)
    return status, served.client.get("/upscale_video/get", params={"task_id": task_id})


def _our_temp_entries(tmp: Path) -> list[Path]:
    """Request folders' contents and video-job folders: the temp files uploads create."""
    out = [p for d in tmp.glob("bentoml-request-*") for p in d.rglob("*")]
    return out + [p for p in tmp.rglob("*") if p.name.startswith("videoboost-")]


@pytest.mark.slow
def test_temp_files_are_private_and_removed(served, tmp_path):
    """Watch the server's TMPDIR while a video job runs: every upload/job file is 0600 and
    every folder 0700 while it exists, and after the job (and after failed requests) none
    is left."""
    clip = make_clip(tmp_path / "clip.mp4", 24, size=(64, 48), audio_streams=0)
    seen: dict[Path, tuple[int, bool]] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for p in _our_temp_entries(served.tmp):
                try:
                    st_mode = p.lstat().st_mode
                    seen.setdefault(p, (stat.S_IMODE(st_mode), stat.S_ISDIR(st_mode)))
                except FileNotFoundError:
                    pass
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status, r = _video_task(served, ("clip.mp4", clip.read_bytes(), "video/mp4"))
        bad = served.client.post("/upscale", files=_file(data=GOOD[:50]))
    finally:
        done.set()
        watcher.join()
    assert status == "completed", r.text
    assert bad.status_code == 400
    assert seen, "the watcher saw no temp file during a 24-frame video job"
    for path, (mode, is_dir) in seen.items():
        want = 0o700 if is_dir else 0o600
        assert mode == want, f"{path.relative_to(served.tmp)} has mode {oct(mode)}"
    for folder in served.tmp.glob("bentoml-request-*"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    deadline = time.monotonic() + 10  # request folders are emptied just after the response
    while left := _our_temp_entries(served.tmp):
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.1)
