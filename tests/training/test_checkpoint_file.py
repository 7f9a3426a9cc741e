"""Checkpoint files: one carryable file per run, resumed on another machine (a new folder and a
new store here) where the killed run stopped, with the same steps, schedule and curves."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from tiny import KILLABLE_RUN

from videoboost.cli import main
from videoboost.training import checkpoint_file

ROOT = Path(__file__).resolve().parents[2]
TINY = KILLABLE_RUN  # tests/tiny.py


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"epochs_done": 2, "history": [{}, {}]}))
    (folder / "generator.weights.h5").write_bytes(b"weights")
    return folder


def test_write_then_unpack_round_trips(tmp_path):
    path = tmp_path / "run.vbckpt"
    checkpoint_file.write(_folder(tmp_path), path, {"steps": 7, "config": {"batch_size": 8}})
    assert checkpoint_file.is_checkpoint_file(path)
    assert checkpoint_file.read_meta(path)["steps"] == 7
    meta = checkpoint_file.unpack(path, tmp_path / "elsewhere" / "checkpoint")
    assert meta["format"] == checkpoint_file.FORMAT
    out = tmp_path / "elsewhere" / "checkpoint"
    assert (out / "generator.weights.h5").read_bytes() == b"weights"
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 2
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temp file, nothing left over


def test_unpack_takes_only_plain_files_of_the_checkpoint(tmp_path):
    path = tmp_path / "hostile.vbckpt"
    checkpoint_file.write(_folder(tmp_path), path, {"config": {"batch_size": 8}})
    with tarfile.open(path, "a") as tar:  # a path that climbs out of the target folder
        evil = tmp_path / "evil.txt"
        evil.write_text("x")
        tar.add(evil, arcname="checkpoint/../../escaped.txt")
    checkpoint_file.unpack(path, tmp_path / "dst" / "checkpoint")
    assert not (tmp_path / "escaped.txt").exists()
    assert sorted(p.name for p in (tmp_path / "dst" / "checkpoint").iterdir()) == [
        "generator.weights.h5",
        "state.json",
    ]


def test_a_file_that_is_not_a_checkpoint_is_refused_by_name(tmp_path, capsys):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a VideoBoost checkpoint file"):
        checkpoint_file.read_meta(bogus)
    assert main(["train", "--resume", str(bogus), "--quiet"]) == 1
    assert "notes.txt is not a VideoBoost checkpoint file" in capsys.readouterr().err


def _train_until_killed(dataset: Path, config: Path, file: Path) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "videoboost.cli", "train", "--dataset", str(dataset),
           "--config", str(config), "--checkpoint-file", str(file), "--init", "none",
           "--no-register", "--quiet"]  # fmt: skip
    log = file.with_suffix(".log")
    with log.open("wb") as err:
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and child.poll() is None:
                if file.is_file():  # epoch 1 is packed: epoch 2 is under way
                    child.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.01)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return child.returncode, log.read_text(errors="replace")


@pytest.mark.slow
def test_kill_9_then_resume_the_file_in_a_new_folder_continues_steps_and_curves(
    tmp_path, monkeypatch, capsys, train_dataset
):
    import mlflow

    dataset = train_dataset
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    file = tmp_path / "first" / "fast-x4.vbckpt"
    file.parent.mkdir()
    code, log = _train_until_killed(dataset, config, file)
    assert code == -signal.SIGKILL, f"not killed mid-run:\n{log[-3000:]}"
    killed = checkpoint_file.read_meta(file)  # read after the kill: what the file really holds
    kept = killed["epochs_done"]
    assert 1 <= kept < 3
    assert killed["steps"] == kept * TINY["steps_per_epoch"]

    # Another machine: the file alone is carried over; a new state folder and an empty store.
    carried = tmp_path / "second" / "carried.vbckpt"
    carried.parent.mkdir()
    shutil.copy(file, carried)
    monkeypatch.setenv("VIDEOBOOST_HOME", str(tmp_path / "second" / "state"))
    assert main(["train", "--resume", str(carried), "--quiet", "--no-register"]) == 0, (
        capsys.readouterr().err
    )
    out = capsys.readouterr().out
    run_id = out.split("run ", 1)[1].split()[0]

    after = checkpoint_file.read_meta(carried)  # the resumed run keeps writing the same file
    assert after["epochs_done"] == 3
    assert after["steps"] == 3 * TINY["steps_per_epoch"]
    first, second = after["stretches"]
    assert second["steps_from"] == first["steps_to"] == killed["steps"]  # no step trained twice
    assert second["elapsed_from_s"] == pytest.approx(killed["elapsed_s"])
    assert after["runs"] == [killed["run_id"], run_id]

    client = mlflow.MlflowClient()
    history = client.get_metric_history(run_id, "val_psnr")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3]
    # The curves continue: the epochs trained before the kill are the killed run's own values.
    with tarfile.open(file) as tar:
        state = json.loads(tar.extractfile("checkpoint/state.json").read())
    logged = {m.step: m.value for m in history}
    for epoch, metrics in enumerate(state["history"][:kept], start=1):
        assert logged[epoch] == pytest.approx(metrics["val_psnr"])
    assert client.get_run(run_id).data.tags["resumed_from_run"] == killed["run_id"]
