"""A run's checkpoint folder: weights, optimizer variables and progress, swapped in atomically,
and recovered after a kill between the two renames (:mod:`videoboost.training.checkpoint_file`
packs such a folder into one file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

# Keys logged every epoch; MLflow and the CLI table use exactly these names.


def save_checkpoint(
    folder: Path, model, epochs_done: int, history: list, best: dict, extra: dict | None = None
) -> None:
    """Write weights + optimizer variables + progress to ``folder`` atomically (tmp, rename)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.generator.save_weights(tmp / "generator.weights.h5")
    model.discriminator.save_weights(tmp / "discriminator.weights.h5")
    for name in ("g_optimizer", "d_optimizer"):
        opt = getattr(model, name, None)
        if opt is not None and opt.built:
            np.savez(tmp / f"{name}.npz", *[np.asarray(v) for v in opt.variables])
    state = {"epochs_done": epochs_done, "history": history, "best": best, "extra": extra or {}}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint_state(folder: Path) -> dict | None:
    _recover_checkpoint(folder)
    state = folder / "state.json"
    return json.loads(state.read_text()) if state.is_file() else None


def _recover_checkpoint(folder: Path) -> None:
    """A kill between :func:`save_checkpoint`'s two renames leaves no ``folder``: use the new
    checkpoint if it was complete (``state.json`` is written last), else the previous one."""
    if folder.exists():
        return
    for suffix in (".tmp", ".old"):
        candidate = folder.with_name(folder.name + suffix)
        if (candidate / "state.json").is_file():
            candidate.rename(folder)
            return


def _restore_optimizer(opt, path: Path) -> None:
    if opt is None or not path.is_file():
        return
    with np.load(path) as z:
        values = [z[f"arr_{i}"] for i in range(len(z.files))]
    if len(values) == len(opt.variables):
        for var, value in zip(opt.variables, values, strict=True):
            if tuple(var.shape) == value.shape:
                var.assign(value)
