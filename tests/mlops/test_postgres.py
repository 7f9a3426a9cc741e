"""Shared stores on a real PostgreSQL: MLflow's tracking + registry and Prefect's database.

The server is Debian's PostgreSQL on 127.0.0.1. CI (``.ci/run``) installs and starts one and
passes its URL in ``VIDEOBOOST_TEST_POSTGRES_URL``; without it the fixture starts a throwaway
server of its own with ``scripts/postgres.sh``, and skips only when the server binaries are
not installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from bento import free_port, stop
from tiny import tiny_retrain_params

from videoboost import state

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "postgres.sh"
PREFECT = str(Path(sys.executable).parent / "prefect")


def _server_installed() -> bool:
    return bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@pytest.fixture(scope="session")
def postgres_url():
    """``postgresql://user@127.0.0.1:PORT/postgres`` of a running server (CI's or our own)."""
    url = os.environ.get("VIDEOBOOST_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if not _server_installed():
        pytest.skip(
            "PostgreSQL server binaries (initdb) not found: install them with "
            "`apt-get install postgresql` (or `scripts/postgres.sh install` as root), or set "
            "VIDEOBOOST_TEST_POSTGRES_URL to a server you may create databases on"
        )
    # Directly under /tmp: when we are root the server runs as `postgres`, which cannot enter
    # pytest's root-only tmp folders.
    folder = tempfile.mkdtemp(prefix="videoboost-test-pg-")
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", folder], capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, f"scripts/postgres.sh start failed:\n{started.stderr}"
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(SCRIPT), "stop", folder], timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def _with_db(url: str, name: str, scheme: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=scheme or parts.scheme, path=f"/{name}"))


def _connect(url: str):
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def _rows(url: str, sql: str, args: tuple = ()) -> list[tuple]:
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture
def databases(postgres_url):
    """Two fresh databases, ``mlflow`` and ``prefect``, named uniquely (a CI server is shared)."""
    suffix = uuid.uuid4().hex[:8]
    names = {"mlflow": f"vb_mlflow_{suffix}", "prefect": f"vb_prefect_{suffix}"}
    admin = _connect(postgres_url)
    try:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'CREATE DATABASE "{name}"')
        yield {k: _with_db(postgres_url, v) for k, v in names.items()}
    finally:
        with admin.cursor() as cur:
            for name in names.values():
                # FORCE: MLflow's and Prefect's connection pools may still hold connections.
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _start_prefect_server(db_url: str, folder: Path) -> tuple[subprocess.Popen, str, Path]:
    """`prefect server start` on 127.0.0.1 with its database on PostgreSQL (not yet healthy)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(
        PREFECT_HOME=str(folder / "prefect-home"),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=_with_db(
            db_url, urlsplit(db_url).path.lstrip("/"), scheme="postgresql+asyncpg"
        ),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
    )
    log_path = folder / "prefect-server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}/api", log_path


def _wait_healthy(proc: subprocess.Popen, api_url: str, log_path: Path, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"prefect server not healthy after {timeout:.0f} s:\n{log_path.read_text()}"
            )
        time.sleep(0.5)


def _drain_prefect_workers() -> None:
    """Send buffered logs and events before the server stops (as prefect_test_harness does);
    otherwise they retry against the dead server for a minute at interpreter exit."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain():
        for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


@pytest.mark.slow
def test_retrain_and_promote_on_postgres_stores(
    databases, tmp_path, tiny_cfg, monkeypatch, clean_environ
):
    import mlflow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from videoboost.mlops import tracking
    from videoboost.mlops.tracking import CHAMPION, MODEL_NAME

    home = clean_environ
    shared = tmp_path / "shared-artifacts"  # stands in for an NFS mount every worker sees
    proc, api_url, log_path = _start_prefect_server(databases["prefect"], tmp_path)
    try:
        # Plain postgresql:// as a team would write it (VideoBoost adds the psycopg2 driver).
        monkeypatch.setenv("MLFLOW_TRACKING_URI", databases["mlflow"])
        monkeypatch.setenv("VIDEOBOOST_ARTIFACT_ROOT", str(shared))
        monkeypatch.setenv("PREFECT_API_URL", api_url)
        # MLflow's schema migrations run while Prefect's server starts (and migrates) beside.
        tracking.setup()
        _wait_healthy(proc, api_url, log_path)

        from flows.retrain import retrain

        # Packaging is covered elsewhere.
        params = tiny_retrain_params(tmp_path, tiny_cfg, package=False)
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            result = retrain(params)
            _drain_prefect_workers()
    finally:
        stop(proc)
        # Later tests open their own stores; do not leave MLflow pointing at a dropped database.
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)

    assert result["run"]["version"] == "1"
    assert result["promotion"]["decision"] == "promoted"

    # The registry, through MLflow's client...
    mlflow_uri = state.with_driver(databases["mlflow"])
    mlflow.set_tracking_uri(mlflow_uri)
    try:
        client = mlflow.MlflowClient(mlflow_uri, mlflow_uri)
        champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
        assert str(champion.version) == "1"
        assert champion.tags["decision"] == "promoted"
        run = client.get_run(result["run"]["run_id"])
        # The version's model_id field comes back empty (SQLite too); its source names it.
        assert champion.source.startswith("models:/m-")
        logged = client.get_logged_model(champion.source.removeprefix("models:/"))
    finally:
        mlflow.set_tracking_uri(None)
    # ... and as rows in PostgreSQL itself.
    assert _rows(
        databases["mlflow"],
        "SELECT version FROM registered_model_aliases WHERE name = %s AND alias = %s",
        (MODEL_NAME, CHAMPION),
    ) == [(1,)]
    assert _rows(
        databases["mlflow"],
        "SELECT value FROM model_version_tags WHERE name = %s AND version = 1 AND key = %s",
        (MODEL_NAME, "decision"),
    ) == [("promoted",)]
    assert _rows(
        databases["mlflow"], "SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,)
    ) == [("FINISHED",)]

    # Artifacts went to the shared folder: the run's, the model's (the registered files).
    shared_uri = shared.resolve().as_uri()
    assert run.info.artifact_uri.startswith(shared_uri)
    assert logged.artifact_location.startswith(shared_uri)
    model_dir = Path(logged.artifact_location.removeprefix("file://"))
    assert (model_dir / "MLmodel").is_file()
    assert list(model_dir.rglob("*.keras")), "the generator's weights are in the shared folder"
    assert list(shared.rglob("comparison*")) or list(shared.rglob("samples/*.png"))

    # Prefect's flow runs are in its PostgreSQL database, completed.
    flow_runs = dict(
        _rows(
            databases["prefect"],
            "SELECT f.name, r.state_type FROM flow_run r JOIN flow f ON f.id = r.flow_id",
        )
    )
    assert flow_runs["retrain"] == "COMPLETED"
    for sub in ("build-dataset", "train", "evaluate-and-promote"):
        assert flow_runs[sub] == "COMPLETED"

    # Nothing fell back to a local store: no SQLite database, no local artifact folder.
    assert not list(home.rglob("*.db")), "a SQLite store was created under VIDEOBOOST_HOME"
    assert not (home / "mlartifacts").exists()
    assert not (home / "prefect" / "prefect.db").exists()


def test_artifact_location_follows_videoboost_artifact_root(monkeypatch, tmp_path):
    pg = "postgresql://mlflow@db.internal:5432/mlflow"
    # No setting: a database store keeps artifacts under the state folder; a server decides.
    assert state.artifact_location(pg) == state.artifact_root().as_uri()
    assert state.artifact_location("postgresql+psycopg2://u@h/db") == (
        state.artifact_root().as_uri()
    )
    assert state.artifact_location("http://mlflow.internal:5000") is None
    # A shared folder (made absolute) or an object store, for every kind of store.
    monkeypatch.setenv("VIDEOBOOST_ARTIFACT_ROOT", str(tmp_path / "shared"))
    assert state.artifact_location(pg) == (tmp_path / "shared").resolve().as_uri()
    monkeypatch.setenv("VIDEOBOOST_ARTIFACT_ROOT", "s3://team-bucket/videoboost/")
    assert state.artifact_location(pg) == "s3://team-bucket/videoboost"
    assert state.artifact_location("http://mlflow.internal:5000") == "s3://team-bucket/videoboost"


def test_plain_postgresql_uri_gets_the_shipped_driver(monkeypatch):
    # SQLAlchemy 2.1's default driver for postgresql:// is psycopg 3, which we do not ship.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:pw@db.internal:5432/mlflow")
    assert state.tracking_uri() == "postgresql+psycopg2://mlflow:pw@db.internal:5432/mlflow"
    for uri in ("postgresql+psycopg://u@h/db", "sqlite:///x.db", "http://mlflow.internal:5000"):
        assert state.with_driver(uri) == uri


def test_setup_warns_when_the_experiment_keeps_artifacts_elsewhere(clean_environ, monkeypatch):
    import toys

    from videoboost.mlops import tracking

    toys.fresh_store(clean_environ)
    tracking.setup()  # the experiment is created with the local default location
    monkeypatch.setenv("VIDEOBOOST_ARTIFACT_ROOT", "s3://team-bucket/videoboost")
    with pytest.warns(UserWarning, match="not VIDEOBOOST_ARTIFACT_ROOT"):
        tracking.setup()
