"""A real `kill -9` of `videoboost train` mid-epoch, then `videoboost train --resume RUN_ID`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tiny import KILLABLE_RUN

from videoboost.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = KILLABLE_RUN  # tests/tiny.py


@pytest.fixture
def dataset(train_dataset):
    return train_dataset  # the session's (tests/conftest.py)


def _registry_rows(db: Path) -> list:
    """Every row of the registry's tables: versions, tags, aliases (compared before/after)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            (table, con.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall())
            for table in (
                "registered_models",
                "model_versions",
                "model_version_tags",
                "registered_model_tags",
                "registered_model_aliases",
            )
        ]
    finally:
        con.close()


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_continues_the_same_run(
    dataset, tmp_path, clean_environ, capsys
):
    import mlflow

    from videoboost.mlops.tracking import MODEL_NAME, setup
    from videoboost.training.train import load_checkpoint_state

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    cmd = ["train", "--dataset", str(dataset), "--config", str(config)]
    child = subprocess.Popen(
        [sys.executable, "-m", "videoboost.cli", *cmd],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    err = bytearray()

    def pump() -> None:
        for chunk in iter(lambda: child.stderr.read1(4096), b""):
            err.extend(chunk)

    reader = threading.Thread(target=pump)
    reader.start()
    # Epoch 1's checkpoint is written and epoch 2 is under way (a piped stderr gets no progress
    # bar to watch): kill it at once, mid-epoch. What the checkpoint holds is read after the
    # kill, so a fast host that finished another epoch in between cannot make the test lie.
    state_file = None
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            found = sorted(clean_environ.glob("runs/*/checkpoint/state.json"))
            try:
                done = json.loads(found[0].read_text())["epochs_done"] if found else 0
            except (OSError, ValueError):  # caught between the checkpoint's two renames
                done = 0
            if done >= 1:
                child.send_signal(signal.SIGKILL)
                state_file = found[0]
                break
            time.sleep(0.01)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reader.join(timeout=10)
    text = bytes(err).decode(errors="replace")
    assert child.returncode == -signal.SIGKILL, f"not killed mid-epoch:\n{text[-3000:]}"
    assert state_file is not None, f"no checkpoint appeared:\n{text[-3000:]}"
    # Through the trainer's own reader: a kill that lands between a later checkpoint's two
    # renames leaves the folder under another name, as resume would find it.
    before_kill = load_checkpoint_state(state_file.parent)
    kept = before_kill["epochs_done"]
    assert 1 <= kept < 3  # killed mid-run: at most the epoch under way is lost
    run_id = state_file.parent.parent.name

    setup()
    client = mlflow.MlflowClient()
    assert client.get_run(run_id).info.status == "RUNNING"  # killed: nobody closed it
    assert client.search_model_versions(f"name='{MODEL_NAME}'") == []

    assert main(["train", "--resume", run_id, "--quiet"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"run {run_id}" in out and f"registered {MODEL_NAME} version 1" in out

    (run,) = client.search_runs([client.get_experiment_by_name("videoboost").experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED"  # the same run
    steps = [m.step for m in client.get_metric_history(run_id, "val_psnr")]
    assert steps == [1, 2, 3]  # every epoch logged once
    after = json.loads(state_file.read_text())
    assert after["epochs_done"] == 3
    # The checkpointed epochs were not trained again.
    assert after["history"][:kept] == before_kill["history"][:kept]
    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", run_id)]

    # Resuming a finished run changes nothing: the model stays registered once.
    rows = _registry_rows(clean_environ / "mlflow.db")
    assert main(["train", "--resume", run_id, "--quiet"]) == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert _registry_rows(clean_environ / "mlflow.db") == rows


def test_a_kill_between_the_checkpoint_renames_still_resumes(tmp_path):
    """``save_checkpoint`` swaps folders with two renames; a kill between them leaves only
    ``checkpoint.old`` and a complete ``checkpoint.tmp``: the newer one must be used."""
    from videoboost.training.train import load_checkpoint_state

    ckpt = tmp_path / "checkpoint"
    for name, epochs in (("checkpoint.old", 1), ("checkpoint.tmp", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text(json.dumps({"epochs_done": epochs}))
    assert load_checkpoint_state(ckpt)["epochs_done"] == 2
    assert (ckpt / "state.json").is_file()
    # A .tmp without state.json was cut off while writing: the previous checkpoint wins.
    other = tmp_path / "b" / "checkpoint"
    (other.parent / "checkpoint.tmp").mkdir(parents=True)
    (other.parent / "checkpoint.old").mkdir()
    (other.parent / "checkpoint.old" / "state.json").write_text('{"epochs_done": 4}')
    assert load_checkpoint_state(other)["epochs_done"] == 4
