"""A training checkpoint as one file: carried to another machine, committed, resumed.

A run's checkpoint folder (:func:`videoboost.training.train.save_checkpoint`: generator and
discriminator weights, both optimizers' variables, ``state.json`` with the epochs, the history,
the clock and the crop stream position) is packed with ``meta.json`` into one uncompressed tar.
``meta.json`` carries what a fresh machine needs to continue the *same* run: the
:class:`~videoboost.config.TrainConfig` (so the learning-rate schedule spans the same budget),
the dataset's version and how to rebuild it, and one *stretch* per stretch of training (host
CPU, precision, code commit, steps and seconds), which the model card of a shipped base lists.

The file is rewritten after every epoch, atomically (temp file, then rename), so a kill at any
moment leaves the previous complete file.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import keras

META = "meta.json"
FORMAT = "videoboost-checkpoint/1"
_FOLDER = "checkpoint"


def is_checkpoint_file(path: str | Path) -> bool:
    """True when ``path`` is a file this module wrote (a tar with ``meta.json``)."""
    path = Path(path)
    if not path.is_file() or not tarfile.is_tarfile(path):
        return False
    with tarfile.open(path) as tar:
        return META in tar.getnames()


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a checkpoint file.

    Raises:
        ValueError: not a checkpoint file of this format.
    """
    path = Path(path)
    if not is_checkpoint_file(path):
        raise ValueError(
            f"{path} is not a VideoBoost checkpoint file (a tar with {META}); pass the file "
            "that `videoboost train --checkpoint-file` wrote, or a run id"
        )
    with tarfile.open(path) as tar:
        meta = json.loads(tar.extractfile(META).read())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')!r}; this code reads {FORMAT}")
    return meta


def write(folder: Path, path: Path, meta: dict[str, Any]) -> None:
    """Pack checkpoint ``folder`` and ``meta`` into ``path`` (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w") as tar:
            data = json.dumps({**meta, "format": FORMAT}, indent=1).encode()
            info = tarfile.TarInfo(META)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
            for item in sorted(Path(folder).iterdir()):
                if item.is_file():
                    tar.add(item, arcname=f"{_FOLDER}/{item.name}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def unpack(path: str | Path, folder: Path) -> dict[str, Any]:
    """Extract the checkpoint of file ``path`` into ``folder`` (replacing it); returns its meta.

    Only plain files directly under ``checkpoint/`` are taken: a tar names its own paths, and a
    committed file may come from anywhere.
    """
    meta = read_meta(path)
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".unpack")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            parent, _, name = member.name.partition("/")
            if parent != _FOLDER or not member.isfile() or "/" in name or name in ("", ".", ".."):
                continue
            (tmp / name).write_bytes(tar.extractfile(member).read())
    if not (tmp / "state.json").is_file():
        raise ValueError(f"{path} holds no checkpoint state; it cannot be resumed")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return meta


def new_stretch(*, commit: str, precision: str, dataset_version: str, steps: int,
                elapsed_s: float) -> dict[str, Any]:  # fmt: skip
    """The record of one stretch of training on this host, started now."""
    from videoboost.host import detect_host

    host = detect_host()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "host_cpu": host.describe(),
        "precision": precision,
        "commit": commit,
        "dataset_version": dataset_version,
        "started_utc": now,
        "ended_utc": now,
        "steps_from": steps,
        "steps_to": steps,
        "elapsed_from_s": elapsed_s,
        "elapsed_to_s": elapsed_s,
    }


class CheckpointFile(keras.callbacks.Callback):
    """After each epoch's checkpoint folder is saved, pack it into ``path``.

    Put it after :class:`videoboost.training.train.Checkpoint` in the callback list (``train`` runs its
    own callbacks first). ``meta["stretches"][-1]`` is this process's stretch; it is updated
    with the steps and seconds of the folder's ``state.json``.
    """

    def __init__(self, path: Path, folder: Path, meta: dict[str, Any]):
        super().__init__()
        self.path, self.folder, self.meta = Path(path), Path(folder), meta

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def save(self) -> None:
        state_file = self.folder / "state.json"
        if not state_file.is_file():
            return
        state = json.loads(state_file.read_text())
        extra = state.get("extra", {})
        stretch = self.meta["stretches"][-1]
        batch = self.meta["config"]["batch_size"]
        stretch["steps_to"] = int(extra.get("crops_drawn", 0)) // batch
        stretch["elapsed_to_s"] = float(extra.get("elapsed_s", 0.0))
        stretch["ended_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.meta["epochs_done"] = state.get("epochs_done", 0)
        self.meta["steps"] = stretch["steps_to"]
        self.meta["elapsed_s"] = stretch["elapsed_to_s"]
        history = state.get("history") or [{}]
        self.meta["last_epoch"] = history[-1]
        write(self.folder, self.path, self.meta)
