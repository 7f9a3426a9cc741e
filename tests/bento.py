"""Build a bento around a tiny registry champion and serve it for real on 127.0.0.1.

One server serves the service, load, auth, hostile-upload and fuzz tests (the session fixture
``served`` in conftest.py): a startup (register, build, serve) costs 30-80 s on 2 cores, so the
settings every one of those tests needs are set once here. A built bento reads them from the
environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import toys
from tiny import tiny_generator

# The shared server's settings (see ``shared_server``).
SCALE = 4
BUDGET = 40_000  # pixels per image (VIDEOBOOST_SERVE_MAX_INPUT_PIXELS; env beats bento args)
MAX_IMAGE_MB = 1
SEGMENT_FRAMES = 4
GAIN_DB = "0.42"  # the shared champion's bench_psnr_gain tag, as a promotion writes it
TOKEN = "t0k3n-for-tests_only.Zx9~+/="  # every character the token may contain
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def where(port: int | None = None) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port or free_port())]


def clean_env(home: Path, bento_home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "BENTOML_", "VIDEOBOOST_", "PREFECT_"))
    }
    env.update(
        VIDEOBOOST_HOME=str(home),
        BENTOML_HOME=str(bento_home),
        DO_NOT_TRACK="true",
        BENTOML_DO_NOT_TRACK="true",
        MLFLOW_DISABLE_TELEMETRY="true",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


def register_champion(home: Path, scale: int, tags: dict[str, str] | None = None) -> str:
    """Register a tiny generator in a fresh store under ``home``; make it the champion.

    ``tags``: extra tags of the registry version (e.g. a promotion's ``bench_psnr_gain``).
    """
    with pytest.MonkeyPatch.context() as mp:
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(key, raising=False)
        mp.setenv("VIDEOBOOST_HOME", str(home))
        toys.fresh_store(home)
        version = toys.register(tiny_generator(scale), scale=scale)
        from mlflow import MlflowClient

        from videoboost.mlops.tracking import CHAMPION, MODEL_NAME

        client = MlflowClient()
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
        for key, value in (tags or {}).items():
            client.set_model_version_tag(MODEL_NAME, version, key, value)
    return version


def build_bento(root: Path, env: dict[str, str]) -> str:
    build = subprocess.run(
        [sys.executable, "-m", "videoboost.cli", "bento", "build"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # with -n 2 the other worker's tests compete for the same cores
    )
    assert build.returncode == 0, build.stdout + build.stderr
    tag = build.stdout.strip().splitlines()[-1]
    assert tag.startswith("videoboost:")
    return tag


def wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"bentoml serve exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"not ready after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def serve_bento(
    root: Path,
    scale: int,
    serve_env: dict[str, str] | None = None,
    headers: dict | None = None,
    host: str | None = "127.0.0.1",
    tags: dict[str, str] | None = None,
) -> Iterator[SimpleNamespace]:
    """Champion -> `videoboost bento build` -> `bentoml serve` on a free port.

    ``host=None`` passes no ``--host`` (the service's own default bind address applies).
    ``tags``: extra tags of the champion's registry version.
    Yields ``client`` (httpx, base URL set, ``headers`` sent), ``url``, ``port``, ``tag``,
    ``version``, ``root``, ``bento_home``, ``proc`` (the server process, for RSS readings) and
    ``log`` (its log path).
    """
    home, bento_home = root / "state", root / "bentoml"
    version = register_champion(home, scale, tags)
    env = clean_env(home, bento_home)
    tag = build_bento(root, env)
    port = free_port()
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", tag, "--port", str(port)]
            + (["--host", host] if host else []),
            cwd=root,
            env={**env, **(serve_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers go with it on teardown
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log_path)
        with httpx.Client(base_url=url, timeout=120, headers=headers or {}) as client:
            yield SimpleNamespace(
                client=client,
                url=url,
                port=port,
                root=root,
                tag=tag,
                version=version,
                bento_home=bento_home,
                proc=proc,
                log=log_path,
            )
    finally:
        stop(proc)


@contextlib.contextmanager
def shared_server(root: Path) -> Iterator[SimpleNamespace]:
    """The one server of the test session: small limits (so 413s are cheap to provoke), the API
    token set (its client sends it), no ``--host`` (the default bind is under test), a
    private ``TMPDIR`` (so tests can see every temporary file it makes): ``tmp``, and a
    benchmark gain on the champion (:data:`GAIN_DB`, shown on the OpenAPI page)."""
    tmp = root / "tmp"
    tmp.mkdir(mode=0o700)
    serve_env = {
        "VIDEOBOOST_SERVE_MAX_INPUT_PIXELS": str(BUDGET),
        "VIDEOBOOST_SERVE_MAX_IMAGE_MB": str(MAX_IMAGE_MB),
        "VIDEOBOOST_SERVE_SEGMENT_FRAMES": str(SEGMENT_FRAMES),
        "VIDEOBOOST_API_TOKEN": TOKEN,
        "TMPDIR": str(tmp),
    }
    tags = {"bench_psnr_gain": GAIN_DB}
    with serve_bento(root, SCALE, serve_env, headers=AUTH, host=None, tags=tags) as served:
        served.tmp = tmp
        yield served
