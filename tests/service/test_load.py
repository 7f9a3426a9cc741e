"""The served bento under load, behind its API token, on its default bind address.

The session's shared server (``served``, tests/bento.py): a tiny champion built into a bento and
started with plain `bentoml serve TAG --port N` (no ``--host``, so the service's own default
applies) and ``VIDEOBOOST_API_TOKEN`` set. The load part runs the same code as the
benchmark (``bench/load.py``), shorter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import httpx
import psutil
import pytest
from bento import AUTH, SCALE, TOKEN, clean_env, free_port
from media import texture
from tiny import make_clip

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.load import run_load  # noqa: E402

pytestmark = pytest.mark.slow

LR_H, LR_W = 24, 40
CLIP_FRAMES = 6


def _png(seed: int) -> bytes:
    return cv2.imencode(".png", texture(LR_H, LR_W, seed=seed)[..., ::-1])[1].tobytes()


# --------------------------------------------------------------------------- bind address


def test_binds_to_loopback_only_by_default(served):
    tree = psutil.Process(served.proc.pid)
    listening = {
        (conn.laddr.ip, conn.laddr.port)
        for proc in [tree, *tree.children(recursive=True)]
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == served.port
    }
    assert listening == {("127.0.0.1", served.port)}


# --------------------------------------------------------------------------- API token

PROTECTED = [
    ("POST", "/upscale"),
    ("POST", "/upscale_frames"),
    ("POST", "/upscale_video/submit"),
    ("GET", "/upscale_video/status?task_id=x"),
    ("GET", "/upscale_video/get?task_id=x"),
    ("GET", "/"),  # the Swagger UI
    ("GET", "/docs.json"),
    ("GET", "/schema.json"),
    ("GET", "/no-such-route"),
]


def _call(served, method: str, path: str, headers: dict | None = None) -> httpx.Response:
    files = None
    if method == "POST":
        field = {"/upscale": "image", "/upscale_frames": "frames"}.get(path, "video")
        files = {field: ("x.png", _png(0), "image/png")}
    return httpx.request(method, served.url + path, files=files, headers=headers, timeout=60)


@pytest.mark.parametrize("method, path", PROTECTED)
def test_requests_without_the_token_get_401(served, method, path):
    r = _call(served, method, path)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == 'Bearer realm="videoboost"'
    error = r.json()["error"]
    assert error.startswith("missing API token") and "Authorization: Bearer" in error
    assert TOKEN not in r.text


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer",
    ],
)
def test_a_wrong_token_or_scheme_gets_401(served, authorization):
    r = _call(served, "POST", "/upscale", {"Authorization": authorization})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith('Bearer realm="videoboost"')
    assert "API token" in r.json()["error"]


def test_the_token_opens_every_endpoint(served):
    r = _call(served, "POST", "/upscale", AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    lower = {"authorization": f"bearer {TOKEN}"}  # the scheme is case-insensitive (RFC 7235)
    assert _call(served, "POST", "/upscale_frames", lower).status_code == 200
    spec = httpx.get(f"{served.url}/docs.json", headers=AUTH, timeout=30)
    assert spec.status_code == 200 and "/upscale" in spec.json()["paths"]
    # Past the token, the other checks still answer (an unknown task id is not a 401).
    status = httpx.get(f"{served.url}/upscale_video/status?task_id=x", headers=AUTH, timeout=30)
    assert status.status_code not in (401, 200)


def test_the_bentoml_client_sends_the_token(served, tmp_path):
    import bentoml

    image = tmp_path / "lr.png"
    image.write_bytes(_png(1))
    with bentoml.SyncHTTPClient(served.url, token=TOKEN) as client:
        out = client.upscale(image=image)
    assert cv2.imread(str(out)).shape == (LR_H * SCALE, LR_W * SCALE, 3)


@pytest.mark.parametrize("path", ["/livez", "/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_need_no_token(served, path):
    assert httpx.get(served.url + path, timeout=30).status_code == 200


# --------------------------------------------------------------------------- load


def test_short_load_run_has_no_errors(served, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", CLIP_FRAMES, size=(48, 32))
    result = run_load(
        served.url,
        [_png(seed) for seed in range(4)],
        requests=60,
        clients=8,
        videos=3,
        video=clip.read_bytes(),
        headers=AUTH,
        max_seconds=120,
        server_pid=served.proc.pid,
        expect_size=(LR_W * SCALE, LR_H * SCALE),
        expect_frames=CLIP_FRAMES,
    )
    assert result["errors"] == 0, result["problems"]
    assert result["server_errors"] == 0, result["status"]
    assert result["ok"] == 60 and result["videos_ok"] == 3, result
    assert result["status"] == {"200": 63}
    assert not result["stopped_by_time_limit"]
    assert result["rss"]["samples"] >= 2 and result["rss"]["peak_mb"] > 100  # TF is loaded


def test_the_token_never_reaches_the_log(served):
    # Runs after the requests above (with good and bad tokens) and the load run.
    log = served.log.read_text()
    assert "method=POST,path=/upscale," in log  # the access log is on: this checks what it writes
    assert TOKEN not in log and TOKEN[:12] not in log


def test_an_empty_token_setting_stops_the_server(served):
    # Same bento and store as the running server: only the setting differs.
    env = {**clean_env(served.root / "state", served.root / "bentoml"), "VIDEOBOOST_API_TOKEN": ""}
    out = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", served.tag, "--port", str(free_port())],
        cwd=served.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "VIDEOBOOST_API_TOKEN is set but empty" in out.stderr
