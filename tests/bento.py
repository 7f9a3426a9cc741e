"""Build a bento around a tiny registry champion and serve it for real on 127.0.0.1.

Shared by the service, load and security tests: each module starts its own server (module
fixture) with the serve settings it needs, since a built bento reads them from the environment.
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


def register_champion(home: Path, scale: int) -> str:
    """Register a tiny generator in a fresh store under ``home``; make it the champion."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(key, raising=False)
        mp.setenv("VIDEOBOOST_HOME", str(home))
        toys.fresh_store(home)
        version = toys.register(tiny_generator(scale), scale=scale)
        from mlflow import MlflowClient

        from videoboost.tracking import CHAMPION, MODEL_NAME

        MlflowClient().set_registered_model_alias(MODEL_NAME, CHAMPION, version)
    return version


def build_bento(root: Path, env: dict[str, str]) -> str:
    build = subprocess.run(
        [sys.executable, "-m", "videoboost.cli", "bento", "build"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    tag = build.stdout.strip().splitlines()[-1]
    assert tag.startswith("videoboost:")
    return tag


def wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout: float = 180) -> None:
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
    root: Path, scale: int, serve_env: dict[str, str] | None = None, headers: dict | None = None
) -> Iterator[SimpleNamespace]:
    """Champion -> `videoboost bento build` -> `bentoml serve` on a free 127.0.0.1 port.

    Yields ``client`` (httpx, base URL set, ``headers`` sent), ``url``, ``tag``, ``version``,
    ``bento_home``, ``proc`` (the server process, for RSS readings) and ``log`` (its log path).
    """
    home, bento_home = root / "state", root / "bentoml"
    version = register_champion(home, scale)
    env = clean_env(home, bento_home)
    tag = build_bento(root, env)
    port = free_port()
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", tag, *where(port)],
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
                tag=tag,
                version=version,
                bento_home=bento_home,
                proc=proc,
                log=log_path,
            )
    finally:
        stop(proc)
