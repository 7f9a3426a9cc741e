"""A real `kill -9` of `videoboost train` mid-epoch, then `videoboost train --resume RUN_ID`
and `--resume FILE` of its carried checkpoint file."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import toys
from tiny import KILLABLE_RUN, kill_9_when

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


def _train_until_killed(dataset: Path, config: Path, file: Path) -> tuple[int, str]:
    """``videoboost train`` in its own process, killed (-9) as soon as epoch 1 is packed into
    ``file``: epoch 1's run checkpoint is written before the file (the file packs that folder), so
    epoch 2 is under way. Polls every 10 ms; returns the exit code and stderr."""
    cmd = [sys.executable, "-m", "videoboost.cli", "train", "--dataset", str(dataset),
           "--config", str(config), "--checkpoint-file", str(file), "--init", "none"]  # fmt: skip
    log = file.with_suffix(".log")
    with log.open("wb") as err:
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        kill_9_when(child, file.is_file, timeout=300)
    return child.returncode, log.read_text(errors="replace")


# One killed run serves both ways back, so the suite starts (and imports TensorFlow in) one
# training process instead of two: the same MLflow run resumed by its id, and the run's carried
# checkpoint file resumed on "another machine" (a new state folder and an empty store).
@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_by_run_id_and_from_the_carried_file(
    dataset, tmp_path, clean_environ, capsys, monkeypatch
):
    import mlflow

    from videoboost.mlops.tracking import MODEL_NAME, setup
    from videoboost.training import checkpoint_file
    from videoboost.training.train import load_checkpoint_state

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    # Empty stores, migrated once per process (toys.py), for the killed run and the new machine.
    toys.fresh_store(clean_environ)
    second_home = tmp_path / "second" / "state"
    toys.fresh_store(second_home)
    file = tmp_path / "first" / "fast-x4.vbckpt"
    file.parent.mkdir()
    code, text = _train_until_killed(dataset, config, file)
    assert code == -signal.SIGKILL, f"not killed mid-epoch:\n{text[-3000:]}"
    # What the run folder and the file hold is read after the kill, so a fast host that finished
    # another epoch in between cannot make the test lie. The file alone is carried over.
    carried = tmp_path / "second" / "carried.vbckpt"
    shutil.copy(file, carried)
    killed = checkpoint_file.read_meta(file)
    (run_dir,) = (clean_environ / "runs").iterdir()
    run_id = run_dir.name
    # Through the trainer's own reader: a kill that lands between a later checkpoint's two
    # renames leaves the folder under another name, as resume would find it.
    before_kill = load_checkpoint_state(run_dir / "checkpoint")
    kept = before_kill["epochs_done"]
    assert 1 <= kept < 3  # killed mid-run: at most the epoch under way is lost
    state_file = run_dir / "checkpoint" / "state.json"

    # 1. The same run, resumed by its id in the same store.
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

    # 2. The carried file, resumed in a new folder with a new store, continues steps and curves.
    assert killed["run_id"] == run_id
    kept_file = killed["epochs_done"]
    assert 1 <= kept_file < 3
    assert killed["steps"] == kept_file * TINY["steps_per_epoch"]
    monkeypatch.setenv("VIDEOBOOST_HOME", str(second_home))
    assert main(["train", "--resume", str(carried), "--quiet", "--no-register"]) == 0, (
        capsys.readouterr().err
    )
    out = capsys.readouterr().out
    new_id = out.split("run ", 1)[1].split()[0]

    after = checkpoint_file.read_meta(carried)  # the resumed run keeps writing the same file
    assert after["epochs_done"] == 3
    assert after["steps"] == 3 * TINY["steps_per_epoch"]
    first, second = after["stretches"]
    assert second["steps_from"] == first["steps_to"] == killed["steps"]  # no step trained twice
    assert second["elapsed_from_s"] == pytest.approx(killed["elapsed_s"])
    assert after["runs"] == [run_id, new_id]

    setup()
    client = mlflow.MlflowClient()
    history = client.get_metric_history(new_id, "val_psnr")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3]
    # The curves continue: the epochs trained before the kill are the killed run's own values.
    with tarfile.open(file) as tar:
        state = json.loads(tar.extractfile("checkpoint/state.json").read())
    logged = {m.step: m.value for m in history}
    for epoch, metrics in enumerate(state["history"][:kept_file], start=1):
        assert logged[epoch] == pytest.approx(metrics["val_psnr"])
    assert client.get_run(new_id).data.tags["resumed_from_run"] == run_id


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
