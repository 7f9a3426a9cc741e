"""Which inference runtime to use on this CPU: chosen by measurement, checked for fidelity, cached.

The candidates are the same weights on different runtimes and precisions:

=========  ===========  =========================================================
name       precision    when it is a candidate
=========  ===========  =========================================================
tf-f32     float32      always (the reference every other candidate is checked against)
tf-bf16    bfloat16     the CPU has bf16 units (``avx512_bf16`` or AMX)
ov-f32     float32      OpenVINO is installed
ov-bf16    bfloat16     OpenVINO is installed and reports BF16 for the CPU
ov-int8    int8         OpenVINO is installed (NNCF quantises the trunk once per weights;
                        the picture path stays float)
=========  ===========  =========================================================

``auto`` builds every candidate the host supports, runs each on the same frames as
``tf-f32`` and refuses those whose output disagrees (see :data:`MIN_AGREEMENT_DB`), then times
the rest round by round, interleaved, at the actual frame size and keeps the fastest. The
choice is cached in ``<state>/runtime/choices.json`` under a key of the model's weights, the
CPU (model name, the flags that matter, cores, threads) and the input size, so the next start
on the same host pays nothing; another host, model or size measures again.

A video-tier model (``3 * (2k + 1)`` input channels) is a candidate on every runtime: the
converters trace its input width, it is probed and calibrated on aligned windows of real
neighbouring frames, and its bf16 twin is rebuilt as the video tier it is (its trunk's layer
names alone would pass for the fast tier).

Nothing here imports MLflow or BentoML; TensorFlow and OpenVINO are imported when a
candidate is built.

The parts: :mod:`videoboost.host` reads the CPU, :mod:`~videoboost.evaluation.runtime_candidates`
builds the candidates (and holds the benchmark check), :mod:`~videoboost.evaluation.runtime_probe`
measures them, :mod:`~videoboost.evaluation.runtime_cache` keeps the choices; this module
chooses and re-exports their public names. Import from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videoboost.evaluation.runtime_cache import SELECT_VERSION as SELECT_VERSION
from videoboost.evaluation.runtime_cache import _read_cache, _write_cache, cache_key, cache_path
from videoboost.evaluation.runtime_candidates import MAX_LOSS_DB as MAX_LOSS_DB
from videoboost.evaluation.runtime_candidates import (
    PRECISION,
    REFERENCE,
    RUNTIMES,
    RuntimeUnavailable,
    bf16_twin,
    builders,
    supported,
)
from videoboost.evaluation.runtime_candidates import _config_of as _config_of
from videoboost.evaluation.runtime_candidates import benchmark_fidelity as benchmark_fidelity
from videoboost.evaluation.runtime_candidates import calibration_frames as calibration_frames
from videoboost.evaluation.runtime_candidates import int8_model_for as int8_model_for
from videoboost.evaluation.runtime_candidates import openvino_capabilities as openvino_capabilities
from videoboost.evaluation.runtime_candidates import refused_by as refused_by
from videoboost.evaluation.runtime_candidates import refused_by_tag as refused_by_tag
from videoboost.evaluation.runtime_probe import (
    MIN_AGREEMENT_DB,
    _uint8,
    agreement_db,
    model_key,
    probe_frames,
    time_interleaved,
)
from videoboost.host import RELEVANT_FLAGS as RELEVANT_FLAGS
from videoboost.host import Host, detect_host
from videoboost.inference.engine import Predict

CHOICES = ("auto", *RUNTIMES)
# A candidate must beat tf-f32 by this factor to replace it.
MIN_SPEEDUP = 1.05


@dataclass
class Choice:
    """The runtime in use and how it was picked."""

    name: str
    precision: str
    fps: float
    size: tuple[int, int]  # LR (width, height) it was measured at
    how: str  # "auto, measured" | "auto, cached" | "forced"
    host: str = ""
    table: dict[str, dict[str, Any]] = field(default_factory=dict)
    predict: Predict | None = field(default=None, repr=False)

    def line(self) -> str:
        w, h = self.size
        return (
            f"runtime: {self.name} ({self.precision}), {self.fps:.1f} frames/s at {w}x{h} "
            f"[{self.how}]"
        )


def choose(
    candidates: dict[str, Callable[[], Predict]],
    frames: list[np.ndarray],
    *,
    min_agreement_db: float = MIN_AGREEMENT_DB,
    rounds: int = 7,
    refused: dict[str, str] | None = None,
) -> tuple[str, dict[str, Predict], dict[str, dict[str, Any]]]:
    """Build, check and time ``candidates``; return the fastest faithful one.

    ``candidates`` must hold :data:`REFERENCE`. A candidate that fails to build, is in
    ``refused`` (e.g. failed the benchmark check at ``bento build``) or agrees with the
    reference below ``min_agreement_db`` is never chosen.

    Returns:
        ``(name, built predicts, table)``: the table has one row per candidate with
        ``agreement_db``, ``ms`` and ``fps`` or ``refused`` (why).
    """
    if REFERENCE not in candidates:
        raise ValueError(f"candidates must include the reference {REFERENCE}")
    refused = dict(refused or {})
    table: dict[str, dict[str, Any]] = {}
    built: dict[str, Predict] = {}
    for name, build in candidates.items():
        if name in refused and name != REFERENCE:
            table[name] = {"refused": refused[name]}
            continue
        try:
            built[name] = build()
        except Exception as exc:
            if name == REFERENCE:
                raise
            first = (str(exc).splitlines() or [""])[0][:160]
            table[name] = {"refused": f"does not build: {type(exc).__name__}: {first}"}
    reference = [_uint8(built[REFERENCE](lr)) for lr in frames]
    faithful: dict[str, Predict] = {}
    for name, fn in built.items():
        try:
            db = None if name == REFERENCE else agreement_db(fn, reference, frames)
        except Exception as exc:
            table[name] = {"refused": f"fails on the probe frames: {type(exc).__name__}: {exc}"}
            continue
        if db is not None and not db >= min_agreement_db:  # NaN fails too
            table[name] = {
                "agreement_db": round(db, 2),
                "refused": f"output agrees with {REFERENCE} at {db:.1f} dB PSNR-Y, "
                f"under {min_agreement_db:g} dB",
            }
            continue
        faithful[name] = fn
        table[name] = {"agreement_db": None if db is None else round(min(db, 99.0), 2)}
    seconds = time_interleaved(faithful, frames[0], rounds=rounds, warmup=2)
    for name, s in seconds.items():
        table[name].update(ms=round(s * 1e3, 2), fps=round(1 / s, 2))
    best = min(seconds, key=seconds.get)
    # Within timing noise of the reference, the reference: it is exact, and the others' lead
    # at a few percent did not survive a longer run (bench/runtime.py, 2026-12-04).
    if seconds[best] * MIN_SPEEDUP > seconds[REFERENCE]:
        best = REFERENCE
    return best, built, table


def select(
    generator,
    *,
    size: tuple[int, int],
    runtime: str = "auto",
    threads: int | None = None,
    host: Host | None = None,
    int8_model: Any = None,
    refused: dict[str, str] | None = None,
    candidates: dict[str, Callable[[], Predict]] | None = None,
    model: str | None = None,
    cache: Path | None = None,
    rounds: int = 7,
    frames: list[np.ndarray] | None = None,
) -> Choice:
    """The runtime for ``generator`` on this host at LR ``size`` (width, height), built.

    Args:
        runtime: ``auto`` (measure, or reuse the cached choice) or a name of :data:`RUNTIMES`
            to force.
        threads: threads for OpenVINO (TensorFlow's are set by ``set_tf_threads``).
        host: the CPU (default :func:`detect_host`); part of the cache key.
        int8_model: an NNCF-quantised OpenVINO model of these weights, if there is one.
        refused: runtimes that failed the benchmark check (name -> why): never chosen.
        candidates: name -> builder, instead of :func:`builders` filtered by host (tests).
        model: the model's identity in the cache key (default :func:`model_key`).
        cache: the cache file (default :func:`cache_path`).

    Raises:
        RuntimeUnavailable: a forced runtime this host or model cannot run.
    """
    if runtime not in CHOICES:
        raise RuntimeUnavailable(f"runtime {runtime!r}: choose one of {', '.join(CHOICES)}")
    host = host or detect_host()
    w, h = size
    if candidates is None:
        why_not = supported(host, int8_model=int8_model)
        every = builders(generator, threads=threads, int8_model=int8_model)
        candidates = {k: v for k, v in every.items() if why_not[k] is None}
    else:
        why_not = {k: None for k in candidates}
    from videoboost.inference.engine import infer_window

    # A video-tier model is measured on aligned windows of real neighbours, as it will run.
    probe = frames or probe_frames(h, w, window=infer_window(generator))

    if runtime != "auto":
        if runtime not in candidates:
            raise RuntimeUnavailable(
                f"runtime {runtime} cannot run here: {why_not.get(runtime) or 'not a candidate'}"
            )
        predict = candidates[runtime]()
        seconds = time_interleaved({runtime: predict}, probe[0], rounds=3)[runtime]
        return Choice(runtime, PRECISION.get(runtime, "?"), 1 / seconds, size, "forced",
                      host.describe(), predict=predict)  # fmt: skip

    path = cache or cache_path()
    key = cache_key(model or model_key(generator), host, size, threads)
    hit = _read_cache(path).get(key)
    if hit and hit.get("runtime") in candidates and hit["runtime"] not in (refused or {}):
        predict = candidates[hit["runtime"]]()
        return Choice(hit["runtime"], hit["precision"], hit["fps"], size, "auto, cached",
                      host.describe(), hit.get("table", {}), predict)  # fmt: skip

    best, built, table = choose(candidates, probe, rounds=rounds, refused=refused)
    for name, why in why_not.items():
        if why and name not in table:
            table[name] = {"refused": f"not on this host: {why}"}
    entry = {
        "runtime": best,
        "precision": PRECISION.get(best, "?"),
        "fps": table[best]["fps"],
        "size": [w, h],
        "host": host.describe(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "min_agreement_db": MIN_AGREEMENT_DB,
        "table": table,
    }
    _write_cache(path, key, entry)
    return Choice(best, entry["precision"], entry["fps"], size, "auto, measured",
                  host.describe(), table, built[best])  # fmt: skip


def describe_table(choice: Choice) -> list[str]:
    """The measurement behind an ``auto`` choice, one line per candidate."""
    lines = []
    for name, row in choice.table.items():
        if "refused" in row:
            lines.append(f"  {name}: refused ({row['refused']})")
        else:
            agree = row.get("agreement_db")
            agree_text = "reference" if agree is None else f"agrees at {agree:.1f} dB"
            lines.append(f"  {name}: {row.get('fps', 0):.1f} frames/s, {agree_text}")
    return lines


__all__ = [
    "CHOICES",
    "MIN_AGREEMENT_DB",
    "PRECISION",
    "RUNTIMES",
    "Choice",
    "Host",
    "RuntimeUnavailable",
    "agreement_db",
    "bf16_twin",
    "choose",
    "detect_host",
    "model_key",
    "select",
    "supported",
]
