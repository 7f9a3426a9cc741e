"""`videoboost run` and its Prefect server: one-line errors, and no server left behind."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from videoboost.mlops.prefect_server import healthy, prefect_api

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


def servers_of(prefect_home: Path) -> list[int]:
    """Processes whose environment names this PREFECT_HOME (our servers, for this test)."""
    marker = f"PREFECT_HOME={prefect_home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def run_job(home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "videoboost.cli", "run"],
        cwd=ROOT,
        env={**os.environ, "VIDEOBOOST_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 5, res.stderr
    assert "Traceback" not in res.stderr
    # Besides the server's own "prefect: starting ..." progress line, one line: the error.
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("prefect: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for word in words:
        assert word in lines[0]


def test_unreachable_prefect_api_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/api"
    res = run_job(tmp_path / "state", PREFECT_API_URL=url)
    assert_one_line_error(res, url, "PREFECT_API_URL", "does not answer")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_server_start_up_timeout_is_one_line_and_stops_the_server(tmp_path):
    home = tmp_path / "state"
    # No server answers within half a second: the job gives up, says how to give it longer.
    res = run_job(home, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="0.5")
    assert_one_line_error(res, "did not answer within 0.5 s",
                          "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")  # fmt: skip
    assert servers_of(home / "prefect") == []


# One test for both ways a job's own server must go away, sharing one PREFECT_HOME: a Prefect
# server's first start in a folder migrates its new SQLite database (~9 CPU-s on 2 cores), so
# the second start, on the database the failing run left, costs half as much.
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_failing_step_ends_in_one_line_and_own_servers_stop_then_and_on_ctrl_c(
    tmp_path, monkeypatch
):
    # A missing source fails the first task: Prefect logs the task and both flows as failed
    # (one log line each), and no traceback; the last line says what is wrong.
    home = tmp_path / "state"
    res = subprocess.run(
        [sys.executable, "-m", "videoboost.cli", "run", str(tmp_path / "missing.mp4")],
        cwd=ROOT,
        env={**os.environ, "VIDEOBOOST_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "missing.mp4: no such file or folder" in last
    prefect_home = home / "prefect"
    assert (prefect_home / "prefect.db").is_file()  # the job's own server ran there
    assert servers_of(prefect_home) == []

    # Ctrl-C inside prefect_api(): the server it started answers, then stops with the job.
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    with pytest.raises(KeyboardInterrupt), prefect_api() as url:
        assert healthy(url) and os.environ["PREFECT_API_URL"] == url
        assert len(servers_of(prefect_home)) >= 1
        raise KeyboardInterrupt
    assert "PREFECT_API_URL" not in os.environ
    assert not healthy(url, timeout=2)
    assert servers_of(prefect_home) == []
