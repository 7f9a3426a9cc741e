"""The cache of runtime choices, ``<state>/runtime/choices.json``: one entry per model, host,
input size and thread count (see :mod:`videoboost.evaluation.runtime_select`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from videoboost.evaluation.runtime_probe import MIN_AGREEMENT_DB
from videoboost.host import Host

# Bump when the way of choosing changes: old cache entries then stop matching.
SELECT_VERSION = 3


def cache_path() -> Path:
    from videoboost import state

    return state.home() / "runtime" / "choices.json"


def cache_key(model: str, host: Host, size: tuple[int, int], threads: int | None) -> str:
    text = json.dumps(
        [SELECT_VERSION, model, host.key(), list(size), threads or 0, MIN_AGREEMENT_DB]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    data = _read_cache(path)
    data[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a concurrent reader sees the old or the new file, never half
