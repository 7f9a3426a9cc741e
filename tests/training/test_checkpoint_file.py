"""Checkpoint files: one carryable file per run, resumed on another machine (a new folder and a
new store here) where the killed run stopped, with the same steps, schedule and curves."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from videoboost.cli import main
from videoboost.training import checkpoint_file


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


# The kill -9 of a run writing a checkpoint file and its resume on another machine:
# tests/training/test_faults_train.py (one killed run serves both resume paths).
