"""The bento's OpenAPI (Swagger) page works as a client (issue 14).

Against the session's real `bentoml serve` (tests/bento.py): the form "Try it out" sends (every
optional field a JSON Blob, i.e. a file part named ``blob``) is accepted on every endpoint; a
video that cannot be read is refused at submit with no task made; no error answer or log line
names a server path; a rejected request logs one line, never a traceback; the spec names the
model and documents its errors. The multipart shape was read off the wire from headless
Chromium on the page (BentoML 1.4.40's Swagger UI):

    Content-Disposition: form-data; name="scale"; filename="blob"
    Content-Type: application/json

    null
"""

from __future__ import annotations

import base64
import io
import json
import re
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from bento import BUDGET, GAIN_DB, SCALE, clean_env, register_champion
from media import texture
from PIL import Image
from tiny import decoded_frames, make_clip

from videoboost.mlops import serving

ROOT = Path(__file__).resolve().parents[2]
ROUTES = ("/upscale", "/upscale_frames", "/upscale_video/submit")
ACCESS = "(scheme=http,"  # BentoML's access-log lines, one per request, rejected or not


def _png(h: int, w: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(texture(h, w, seed=seed)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def spec(served) -> dict:
    r = served.client.get("/docs.json")
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------- Swagger's form


def _sample(spec: dict, schema: dict):
    """What Swagger UI puts in a JSON-typed form field: for a ``$ref`` (siblings ignored, as
    OpenAPI 3.0 says) an object of the referenced properties' defaults, else the example, else
    the default (``None`` is sent as ``null``)."""
    if "$ref" in schema:
        target = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        return {k: _sample(spec, v) for k, v in target["properties"].items()}
    return schema.get("example", schema.get("default"))


def swagger_form(spec: dict, route: str, files: list[tuple[str, tuple]]) -> list[tuple]:
    """The multipart parts "Try it out" sends for ``route``, given its file fields' files."""
    media = spec["paths"][route]["post"]["requestBody"]["content"]["multipart/form-data"]
    parts = list(files)
    for name, prop in media["schema"]["properties"].items():
        if "binary" in (prop.get("format"), prop.get("items", {}).get("format")):
            continue
        # This encoding is what makes the browser send the field as a Blob.
        assert media["encoding"][name]["contentType"] == "application/json"
        body = json.dumps(_sample(spec, prop), indent=2)  # JSON.stringify(value, null, 2)
        parts.append((name, ("blob", body.encode(), "application/json")))
    return parts


def _send_form(served, route: str, parts: list[tuple]) -> httpx.Response:
    request = served.client.build_request("POST", route, files=parts)
    body = request.read()
    for name, (filename, _, ctype) in parts:
        if filename == "blob":  # the wire shape above, not a curl-style text field
            head = f'name="{name}"; filename="blob"\r\nContent-Type: {ctype}\r\n\r\n'
            assert head.encode() in body
    return served.client.send(request)


def test_try_it_out_form_is_accepted_on_upscale(served, spec):
    parts = swagger_form(spec, "/upscale", [("image", ("small.png", _png(20, 28), "image/png"))])
    assert {p[0] for p in parts} == {
        "image", "scale", "tile", "height", "postprocess", "format", "quality", "compression"
    }  # fmt: skip
    r = _send_form(served, "/upscale", parts)
    assert r.status_code == 200, r.text
    assert r.headers["x-videoboost-postprocess"] == "off"  # the defaults change nothing
    assert r.headers["x-videoboost-mode"] == "single-frame"  # what the model ran
    assert r.headers["content-type"] == "image/png"  # PNG stays the default
    img = Image.open(io.BytesIO(r.content))
    assert (img.format, img.size) == ("PNG", (28 * SCALE, 20 * SCALE))


def _with(parts: list[tuple], **values) -> list[tuple]:
    """``parts`` with some JSON fields set, as after editing them on the page."""
    out = []
    for name, part in parts:
        if name in values:
            part = ("blob", json.dumps(values[name], indent=2).encode(), "application/json")
        out.append((name, part))
    return out


def test_the_encoding_fields_show_their_choices_and_defaults(spec):
    media = spec["paths"]["/upscale"]["post"]["requestBody"]["content"]["multipart/form-data"]
    props = media["schema"]["properties"]
    assert props["format"]["enum"] == ["png", "jpeg", "webp"]
    assert (props["format"]["default"], props["quality"]["default"]) == ("png", 90)
    assert props["compression"]["default"] == 1
    assert (props["quality"]["minimum"], props["quality"]["maximum"]) == (1, 100)
    assert (props["compression"]["minimum"], props["compression"]["maximum"]) == (0, 9)
    ok = spec["paths"]["/upscale"]["post"]["responses"]["200"]["content"]
    assert {"image/png", "image/jpeg", "image/webp"} <= set(ok)


def test_try_it_out_with_jpeg_chosen_answers_a_jpeg(served, spec):
    image = [("image", ("small.png", _png(20, 28), "image/png"))]
    parts = _with(swagger_form(spec, "/upscale", image), format="jpeg", quality=80)
    r = _send_form(served, "/upscale", parts)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).format == "JPEG"


def test_try_it_out_form_is_accepted_on_upscale_frames(served, spec):
    frames = [("frames", (f"f{i}.png", _png(12, 16, seed=i), "image/png")) for i in range(2)]
    parts = swagger_form(spec, "/upscale_frames", frames)
    assert {p[0] for p in parts} == {"frames", "format", "quality", "compression"}
    r = _send_form(served, "/upscale_frames", parts)
    assert r.status_code == 200, r.text
    assert len(r.json()) == 2
    assert r.headers["x-videoboost-mode"] == "single-frame"  # ctx is no form field (above)
    r = _send_form(served, "/upscale_frames", _with(parts, format="webp"))
    assert r.status_code == 200, r.text
    assert [Image.open(io.BytesIO(base64.b64decode(x))).format for x in r.json()] == ["WEBP"] * 2


def test_try_it_out_runs_a_video_task_from_submit_to_get(served, spec, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", 6, audio_streams=0)
    files = [("video", ("clip.mp4", clip.read_bytes(), "video/mp4"))]
    r = _send_form(
        served, "/upscale_video/submit", swagger_form(spec, "/upscale_video/submit", files)
    )
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    deadline = time.monotonic() + 120
    while (status := _task_status(served, task_id)) == "in_progress":
        assert time.monotonic() < deadline, "the video task did not finish"
        time.sleep(0.2)
    assert status == "completed"
    r = served.client.get("/upscale_video/get", params={"task_id": task_id})
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    assert len(decoded_frames(out)) == 6


def _task_status(served, task_id: str) -> str:
    return served.client.get("/upscale_video/status", params={"task_id": task_id}).json()["status"]


@pytest.mark.parametrize(
    "part, needle",
    [
        (("blob", _png(8, 8), "image/png"), "must be a plain value"),  # a real file
        (("s.bin", b"\x89\xff\x00", "application/octet-stream"), "must be a plain value"),
        (("blob", b"\xff\xfe", "application/json"), "not valid UTF-8 JSON"),
        (("blob", b"{4", "application/json"), "not valid UTF-8 JSON"),
        (("blob", b"[" * 5000, "application/json"), "nested too deeply"),
        (("blob", b"9" * 70_000, "application/json"), "over 64 KiB"),
    ],
    ids=["png", "binary", "not-utf8", "not-json", "too-deep", "too-long"],
)
def test_a_parameter_part_that_is_not_json_is_still_refused(served, part, needle):
    image = ("image", ("x.png", _png(8, 8), "image/png"))
    r = served.client.post("/upscale", files=[image, ("scale", part)])
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("`scale`") and needle in r.json()["error"]


def test_json_parts_carry_values_not_just_null(served):
    image = ("image", ("x.png", _png(16, 24), "image/png"))
    height = ("height", ("blob", b"96", "application/json"))
    post = ("postprocess", ("blob", b'{"unsharp_amount": 0.5}', "application/json"))
    r = served.client.post("/upscale", files=[image, height, post])
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (144, 96)
    assert json.loads(r.headers["x-videoboost-postprocess"])["unsharp_amount"] == 0.5
    wrong = ("scale", ("blob", b"2", "application/json"))
    r = served.client.post("/upscale", files=[image, wrong])
    assert r.status_code == 400 and "x4" in r.json()["error"]


# --------------------------------------------------------------------------- the video submit


def _task_rows(served) -> int:
    with sqlite3.connect(f"file:{served.bento_home / 'task_result.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM result").fetchone()[0]


@pytest.mark.parametrize(
    "data",
    [b"not a video at all", np.random.default_rng(3).bytes(20_000)],
    ids=["text", "random-bytes"],
)
def test_a_video_that_cannot_be_read_is_refused_at_submit_with_no_task(served, data):
    before = _task_rows(served)
    r = served.client.post("/upscale_video/submit", files={"video": ("v.mp4", data, "video/mp4")})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"}
    assert r.json()["error"].startswith("video: cannot be read as a video")
    assert _task_rows(served) == before


def test_every_refusal_at_submit_comes_before_a_task(served, tmp_path):
    before = _task_rows(served)
    clip = make_clip(tmp_path / "c.mp4", 3, audio_streams=0).read_bytes()
    big = make_clip(tmp_path / "big.mp4", 2, size=(256, 192), audio_streams=0).read_bytes()
    cases = [
        ({"video": ("v.png", _png(8, 8), "image/png")}, None, 415, "video/*"),
        ({"video": ("big.mp4", big, "video/mp4")}, None, 413, str(BUDGET)),
        ({"video": ("c.mp4", clip, "video/mp4")}, {"scale": "2"}, 400, "x4"),
        ({"video": ("c.mp4", clip, "video/mp4")}, {"height": "8640"}, 400, "output limit"),
        ({"video": ("c.mp4", clip, "video/mp4")}, {"tile": "8"}, 400, "tile"),
        ({"clip": ("c.mp4", clip, "video/mp4")}, None, 400, "unknown field"),
    ]
    for files, data, status, needle in cases:
        r = served.client.post("/upscale_video/submit", files=files, data=data or {})
        assert r.status_code == status, (needle, r.text)
        assert needle in r.json()["error"]
    assert _task_rows(served) == before


# --------------------------------------------------------------------------- paths and the log


def _new_log(served, offset: int, wanted: int, timeout: float = 15) -> list[str]:
    """Log lines after ``offset``, once ``wanted`` "rejected" lines are there (and a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = served.log.read_bytes()[offset:].decode("utf-8", "replace").splitlines()
        if sum("rejected " in line for line in lines) >= wanted or time.monotonic() > deadline:
            time.sleep(0.5)  # a traceback would follow its line at once
            return served.log.read_bytes()[offset:].decode("utf-8", "replace").splitlines()
        time.sleep(0.2)


def _png_declaring(w: int, h: int) -> bytes:
    """A 45-byte PNG whose header declares ``w`` x ``h`` RGB pixels (and has no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _rejections(tmp_path: Path) -> list[tuple[str, dict, int]]:
    """Failing requests, several of which put a temp path in the answer or the log before."""
    clip = make_clip(tmp_path / "cut.mp4", 24, audio_streams=0, faststart=True).read_bytes()
    image = _png(16, 16)
    bomb = _png_declaring(30000, 30000)  # over Pillow's own limit too
    return [
        ("/upscale", {"files": {"image": ("x.png", image[:60], "image/png")}}, 400),
        ("/upscale", {"files": {"image": ("x.png", bomb, "image/png")}}, 413),
        ("/upscale", {"files": {"image": ("x.gif", b"GIF89a" + bytes(30), "image/gif")}}, 415),
        (
            "/upscale",
            {"files": {"image": ("x.png", image, "image/png")}, "data": {"tile": "8"}},
            400,
        ),
        ("/upscale_frames", {"files": {"frames": ("x.png", b"junk", "image/png")}}, 400),
        ("/upscale_video/submit", {"files": {"video": ("v.mp4", b"junk!", "video/mp4")}}, 400),
        ("/upscale", {"json": {"image": "x"}}, 415),
        # readable header, truncated frames: refused by the task, so the error is on /get
        ("/upscale_video/submit", {"files": {"video": ("v.mp4", clip[: len(clip) // 2])}}, 200),
    ]


def test_rejections_name_no_server_path_and_log_one_line_each(served, tmp_path):
    """Each rejected request: an answer without a server path, and exactly one log line
    (besides BentoML's access line, which every request gets) naming route, status and
    reason, with no traceback."""
    requests = _rejections(tmp_path)
    offset = served.log.stat().st_size
    answers = []
    for route, kwargs, status in requests:
        r = served.client.post(route, **kwargs)
        assert r.status_code == status, (route, r.text)
        if status == 200:  # the task's refusal, answered by /get
            task_id = r.json()["task_id"]
            deadline = time.monotonic() + 60
            while _task_status(served, task_id) == "in_progress":
                assert time.monotonic() < deadline
                time.sleep(0.2)
            r = served.client.get("/upscale_video/get", params={"task_id": task_id})
            assert r.status_code == 400, r.text
            assert "the video cannot be decoded" in r.json()["error"]
        answers.append(r.json()["error"])
    lines = _new_log(served, offset, len(requests))
    rejected = [line for line in lines if "rejected " in line]
    assert len(rejected) == len(requests), "\n".join(lines)
    for (route, _, status), line in zip(requests, rejected, strict=True):
        assert f"rejected {route} [POST] with {status if status != 200 else 400}: " in line
    others = [line for line in lines if ACCESS not in line and "rejected " not in line]
    assert not [line for line in others if "Task(" not in line], "\n".join(others)
    assert not [line for line in lines if "Traceback" in line or line.startswith(" ")]
    private = (str(served.root), "bentoml-request-", "videoboost-probe-", str(served.tmp))
    for text in answers + lines:
        assert not any(p in text for p in private), text


def test_a_413_names_our_limit_only(served):
    """Pillow refuses 30000x30000 itself (its limit is 178956970 pixels); the answer still
    states ours, once, as for a picture between the two limits."""
    for declared in (_png_declaring(30000, 30000), _png_declaring(400, 400)):
        r = served.client.post("/upscale", files={"image": ("x.png", declared, "image/png")})
        assert r.status_code == 413, r.text
        error = r.json()["error"]
        assert f"the limit of {BUDGET} pixels" in error
        assert error.count("limit") == 1 and "178956970" not in error and "89478485" not in error


# --------------------------------------------------------------------------- the spec


def test_the_spec_names_the_model_its_version_scale_and_gain(served, spec):
    info = spec["info"]
    model = served.tag  # the bento; its model is pinned in the bento's labels
    assert info["title"] == f"VideoBoost ×{SCALE} · videoboost-generator v{served.version}"
    assert info["version"] == model.split(":")[1]
    text = info["description"]
    assert text.startswith(f"# {info['title']}\n")  # the page hides info.title (BentoML's CSS)
    assert f"**×{SCALE}**" in text and f"registry version **{served.version}**" in text
    assert "BentoML model `videoboost-generator:" in text
    assert f"**+{float(GAIN_DB):.2f} dB** PSNR over bicubic" in text
    assert f"at most {BUDGET} pixels per image or video frame" in text
    assert "contact" not in info  # BentoML's team is not this API's contact


def test_the_upload_routes_document_400_413_415_with_examples(spec):
    for route in ROUTES:
        responses = spec["paths"][route]["post"]["responses"]
        assert {"400", "413", "415"} <= set(responses), route
        assert "404" not in responses  # nothing is looked up on an upload
        for status in ("400", "413", "415", "500"):
            content = responses[status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}
            assert content["example"]["error"], (route, status)
        assert str(BUDGET) in responses["413"]["description"]
        assert str(BUDGET) in responses["413"]["content"]["application/json"]["example"]["error"]
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    ok = spec["paths"]["/upscale_video/submit"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["example"]["status"] == "in_progress"
    assert spec["paths"]["/upscale_frames"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]["example"]


def test_descriptions_are_markdown_not_rst(spec):
    for route in (*ROUTES, "/upscale_video/status", "/upscale_video/get"):
        operation = next(iter(spec["paths"][route].values()))
        text = operation["description"]
        rst_literal = re.search(r"(?<!`)``(?!`)", text)  # ``x``; ``` fences are Markdown
        assert text and not rst_literal and "Args:" not in text, route
        assert not any(line.startswith("    ") for line in text.splitlines()), route
    upscale = spec["paths"]["/upscale"]["post"]
    assert upscale["summary"].startswith("Upscale one PNG or JPEG image")
    assert "```bash\ncurl -F image=@frame.png" in upscale["description"]
    fields = upscale["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert all(fields[k].get("description") for k in fields)
    # No example that differs from the default: "Try it out" would send it.
    assert not [k for k, f in fields.items() if "example" in f and f["example"] != f["default"]]


# --------------------------------------------------------------------------- the gain


def test_the_gain_comes_from_the_version_tag_then_the_run():
    def no_run() -> dict:
        raise AssertionError("the run is read only without the tag")

    assert serving.benchmark_gain({"bench_psnr_gain": "0.67"}, no_run) == (0.67, "version tag")
    assert serving.benchmark_gain({}, lambda: {"bench_psnr_gain": 1.5}) == (1.5, "run metric")
    assert serving.benchmark_gain({"bench_psnr_gain": "n/a"}, dict) == (None, "")
    assert serving.benchmark_gain({"bench_psnr_gain": "nan"}, dict) == (None, "")
    assert serving.benchmark_gain({}) == (None, "")


# One fresh process runs every step (BentoML fixes its store at its first import, and this
# process's may already be another test's): TensorFlow, MLflow and BentoML load once, not six
# times. A step is `import` (the CLI's `bento import`; its printout is kept) or store code.
_STEPS = """
import contextlib, io, json, sys
from mlflow import MlflowClient
from videoboost.cli import main
from videoboost.mlops import tracking
tracking.setup()
c = MlflowClient()
mv = c.get_model_version(tracking.MODEL_NAME, "1")
printed = []
for step in json.loads(sys.argv[1]):
    if step != "import":
        exec(step)
        continue
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["bento", "import"])
    printed.append((rc, out.getvalue()))
print(json.dumps(printed))
"""


@pytest.mark.slow
def test_bento_import_records_the_gain_and_refreshes_when_it_changes(tmp_path):
    """`videoboost bento import` puts the gain in the BentoML model's metadata (the training
    run's metric, then the version tag a promotion writes), and imports a version again once
    its benchmark tags changed; with nothing changed it reuses the import."""
    home, bento_home = tmp_path / "state", tmp_path / "bentoml"
    register_champion(home, SCALE)
    steps = [
        "c.log_metric(mv.run_id, 'bench_psnr_gain', 1.5)",  # no version tag yet
        "import",
        "import",
        "c.set_model_version_tag(tracking.MODEL_NAME, '1', 'bench_psnr_gain', '0.67')",
        "import",
        "import",
    ]
    cmd = [sys.executable, "-c", _STEPS, json.dumps(steps)]
    env = clean_env(home, bento_home)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert [rc for rc, _ in printed] == [0] * 4

    def imported(text: str) -> tuple[str, dict]:
        assert "  runtime_refused:" in text  # the label, empty when every runtime passed
        tag = text.split("BentoML model ", 1)[1].split()[0]
        name, version = tag.split(":")
        info = yaml.safe_load((bento_home / "models" / name / version / "model.yaml").read_text())
        return tag, info["metadata"]

    (first, meta), (again, _), (second, meta2), (again2, _) = (imported(t) for _, t in printed)
    assert (meta["bench_psnr_gain"], meta["bench_psnr_gain_source"]) == (1.5, "run metric")
    assert again == first  # nothing changed: the import is reused
    assert second != first
    assert (meta2["bench_psnr_gain"], meta2["bench_psnr_gain_source"]) == (0.67, "version tag")
    assert again2 == second
