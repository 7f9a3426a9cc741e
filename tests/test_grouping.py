"""The suite's worker groups hold: under ``-n 2 --dist loadgroup`` every test of an expensive
session fixture runs on one worker, so the fixture is built once (tests/conftest.py).

The grouping failed silently once (pytest 9.2 with pytest-xdist 3.8, and a hook that ran after
xdist's): both workers built the served bento, the tiny base and a Prefect server. This runs
a toy suite with the real hook under two real workers and checks where each test ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")

TOY_CONFTEST = f"""
import importlib.util, os, pytest

spec = importlib.util.spec_from_file_location("suite_conftest", {str(CONFTEST)!r})
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
pytest_collection_modifyitems = suite.pytest_collection_modifyitems

@pytest.fixture(scope="session")
def served():
    return os.environ["PYTEST_XDIST_WORKER"]

@pytest.fixture(scope="session")
def prefect_server():
    return os.environ["PYTEST_XDIST_WORKER"]
"""

TOY_TESTS = """
import json, os, time, pytest

def _log(kind):
    time.sleep(0.05)  # long enough that both workers are busy
    with open(os.environ["TOY_LOG"], "a") as f:
        f.write(json.dumps([kind, os.environ["PYTEST_XDIST_WORKER"]]) + "\\n")

@pytest.mark.parametrize("i", range(6))
def test_served(served, i):
    _log("served")

@pytest.mark.parametrize("i", range(6))
def test_prefect(prefect_server, i):
    _log("prefect")

@pytest.mark.parametrize("i", range(12))
def test_plain(i):
    _log("plain")
"""


def test_tests_of_a_shared_fixture_run_on_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text(TOY_CONFTEST)
    (tmp_path / "test_toy.py").write_text(TOY_TESTS)
    log = tmp_path / "log.jsonl"
    args = ["-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", str(tmp_path)]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TOY_LOG": str(log), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    workers = {kind: {w for k, w in ran if k == kind} for kind in ("served", "prefect", "plain")}
    assert len(ran) == 24
    assert len(workers["served"]) == 1, workers
    assert len(workers["prefect"]) == 1, workers
    assert workers["plain"] == {"gw0", "gw1"}, workers  # and it did run on two workers
