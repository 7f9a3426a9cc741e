"""The MLflow store failing under promote, train and bento build: a read-only SQLite file, a
locked one, a server that is not there, and a store that dies at every single write of a
promotion. Real SQLite stores, real toy models (known quality order), no mocks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import toys
from media import write_clip

from videoboost.cli import main
from videoboost.config import BenchmarkConfig
from videoboost.errors import StoreUnavailable
from videoboost.mlops import registry
from videoboost.mlops.tracking import setup

BENCH = BenchmarkConfig(frames=3, fps_runs=0)
# The store-dying test re-evaluates both models a dozen times; the writes under test are the
# same whatever the tracks, so it scores the clean track only.
CLEAN_ONLY = BENCH.model_copy(update={"tracks": ("clean",)})
REGISTRY_TABLES = (
    "registered_models",
    "model_versions",
    "model_version_tags",
    "registered_model_tags",
    "registered_model_aliases",
)


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "bench.avi", n=4, h=48, w=64, seed=3)


@pytest.fixture
def store(clean_environ, clip, monkeypatch):
    """A store whose champion is the good toy model; the best one waits as version 2."""
    monkeypatch.setenv("VIDEOBOOST_STORE_RETRY_WAIT", "0.2")
    toys.fresh_store(clean_environ)
    setup()
    good = toys.register(toys.generator(0.5))
    # Setting up, not under test: the first champion needs no coded tracks.
    registry.promote(good, sources=[clip], bench_cfg=CLEAN_ONLY)
    best = toys.register(toys.generator(1.0))
    return clean_environ / "mlflow.db", good, best


def rows(db: Path) -> list:
    """Every row of the registry's tables (versions, tags, aliases), read beside MLflow."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(t, con.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()) for t in
                REGISTRY_TABLES]  # fmt: skip
    finally:
        con.close()


def aliases(db: Path) -> dict[str, str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {a: str(v) for a, v in con.execute("SELECT alias, version FROM "
                                                  "registered_model_aliases")}  # fmt: skip
    finally:
        con.close()


def _promote_args(version: str, clip: Path) -> list[str]:
    return ["promote", version, "--videos", str(clip), "--frames", "3", "--fps-runs", "0"]


def test_read_only_store_fails_promote_and_train_clearly_and_changes_nothing(
    store, clip, train_dataset, monkeypatch, capsys
):
    db, good, best = store
    dataset = train_dataset  # the session's (tests/conftest.py), read only
    before = rows(db)
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"  # SQLite refuses every write
    monkeypatch.setenv("MLFLOW_TRACKING_URI", read_only)

    assert main(_promote_args(best, clip)) == 5
    err = capsys.readouterr().err
    assert f"MLflow store {read_only}" in err and "readonly database" in err, err
    assert "MLFLOW_TRACKING_URI" in err and "Traceback" not in err
    assert main(["train", "--dataset", str(dataset), "--epochs", "1", "--steps", "2",
                 "--quiet"]) == 5  # fmt: skip
    err = capsys.readouterr().err
    assert f"MLflow store {read_only}" in err and "starting the run" in err, err
    assert rows(db) == before
    assert aliases(db) == {"champion": good, "champion-x4": good}


def test_briefly_locked_store_is_waited_for_then_promotion_goes_through(store, clip, capsys):
    db, _, best = store
    # Another process holds SQLite's exclusive lock (no reader, no writer) for 1.5 s.
    hold = (
        "import sqlite3, time\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
        "time.sleep(1.5); c.execute('COMMIT')"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(_promote_args(best, clip)) == 0, capsys.readouterr().err
    finally:
        holder.wait(timeout=30)
    assert capsys.readouterr().out.startswith("PROMOTED")
    assert aliases(db) == {"champion": best, "champion-x4": best}


def test_store_unreachable_fails_bento_build_and_promote_clearly(store, clip, monkeypatch, capsys):
    import bentoml

    db, _, best = store
    before = rows(db)
    # BentoML fixes its store at first import in the process (an earlier test's home may be
    # it), so compare that store before and after rather than expect it empty.
    models_before, bentos_before = bentoml.models.list(), bentoml.list()
    # A tracking server that is not there: connections are refused at once.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:s3cret@127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    for args in (["bento", "build"], _promote_args(best, clip)):
        assert main(args) == 5
        err = capsys.readouterr().err
        assert "MLflow store http://mlflow:***@127.0.0.1:9" in err, err
        assert "s3cret" not in err and "server is running" in err and "Traceback" not in err
    assert rows(db) == before
    # nothing half-imported
    assert bentoml.models.list() == models_before and bentoml.list() == bentos_before


def _install_fault(db: Path, after: int) -> None:
    """Make the store refuse every registry write from the ``after``-th on (SQLite triggers:
    the failing statement and its whole MLflow transaction roll back, as when a store dies)."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("CREATE TABLE fault (n INTEGER)")
        con.execute("INSERT INTO fault VALUES (?)", (after,))
        for table in REGISTRY_TABLES:
            for op in ("INSERT", "UPDATE", "DELETE"):
                con.execute(
                    f"CREATE TRIGGER fault_{table}_{op} BEFORE {op} ON {table} BEGIN "
                    "UPDATE fault SET n = n - 1; "
                    "SELECT RAISE(ABORT, 'store went away') WHERE (SELECT n FROM fault) <= 0; END"
                )
    finally:
        con.close()


def _remove_fault(db: Path) -> int:
    """Drop the triggers; returns how many writes were left before the failure point."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        (left,) = con.execute("SELECT n FROM fault").fetchone()
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                   "name LIKE 'fault_%'").fetchall():  # fmt: skip
            con.execute(f"DROP TRIGGER {name}")
        con.execute("DROP TABLE fault")
        return left
    finally:
        con.close()


@pytest.mark.slow
def test_store_dying_at_any_write_never_loses_or_worsens_the_champion(store, clip, monkeypatch):
    db, good, best = store
    monkeypatch.setenv("VIDEOBOOST_STORE_ATTEMPTS", "1")  # a dead store: no point waiting
    plan = registry.plan_promotion(best, sources=[clip], bench_cfg=CLEAN_ONLY)
    assert plan.decision == "promoted"
    pristine = db.read_bytes()
    before = rows(db)

    # How many registry writes a promotion makes: the candidate's and the old champion's cards
    # and tags, the champion history, the two aliases (7 since the cards replaced most tags).
    _install_fault(db, 10**6)
    registry.apply(plan, log_runs=False)
    writes = 10**6 - _remove_fault(db)
    assert writes >= 5, writes
    plan.applied = False

    # Repairing re-evaluates both models: check it where the outcome differs (nothing written,
    # tags only, history written, one alias moved, both moved), not at every tag.
    repair_checked = {1, writes // 2, *range(max(1, writes - 5), writes + 1)}
    for k in range(1, writes + 1):
        db.write_bytes(pristine)
        _install_fault(db, k)
        with pytest.raises(StoreUnavailable, match="store went away") as failed:
            registry.apply(plan, log_runs=False)
        message = str(failed.value)
        assert f"MLflow store sqlite:///{db}" in message
        assert "registry restored" in message if k == 1 else "run the same command" in message
        now = aliases(db)
        _remove_fault(db)
        if k == 1:
            assert rows(db) == before  # failed at the first write: nothing changed
        # Never without a champion, never a worse one; `champion` moves only after -x4.
        assert now.get("champion-x4") in (good, best) and now.get("champion") in (good, best)
        assert now["champion"] == good or now["champion-x4"] == best, (k, now)
        if k not in repair_checked:
            continue
        # Once the store is back, the same command completes the decision.
        again = registry.promote(best, sources=[clip], bench_cfg=CLEAN_ONLY)
        assert again.decision in ("promoted", "unchanged") and again.applied, (k, again.reason)
        assert aliases(db) == {"champion": best, "champion-x4": best}, k
        assert registry.history() == {"4": [good]}, k
