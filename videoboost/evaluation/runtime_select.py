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
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videoboost.errors import VideoBoostError
from videoboost.inference.engine import Predict

RUNTIMES = ("tf-f32", "tf-bf16", "ov-f32", "ov-bf16", "ov-int8")
CHOICES = ("auto", *RUNTIMES)
PRECISION = {
    "tf-f32": "float32",
    "tf-bf16": "bfloat16",
    "ov-f32": "float32",
    "ov-bf16": "bfloat16",
    "ov-int8": "int8",
}
REFERENCE = "tf-f32"

# Agreement with tf-f32 is PSNR on Y of the uint8 outputs against tf-f32's uint8 outputs. If a
# runtime adds an error of MSE d to a model whose own error against the truth is MSE e, it
# loses 10*log10(1 + d/e) dB. The fast tier scores ~32 dB (e ~ 41), smooth footage up to
# ~38 dB (e ~ 10); at 50 dB agreement (d = 0.65) the loss is at most 0.07 dB at 32 dB and
# 0.27 dB only on footage a model already gets within 38 dB of the truth. The benchmark check
# at `bento build` (:func:`benchmark_fidelity`) measures the loss itself.
MIN_AGREEMENT_DB = 50.0
# A candidate must beat tf-f32 by this factor to replace it.
MIN_SPEEDUP = 1.05
# Bump when the way of choosing changes: old cache entries then stop matching.
SELECT_VERSION = 3
# The cpuinfo flags that change which runtime is fastest or even possible.
RELEVANT_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


class RuntimeUnavailable(VideoBoostError):
    """A runtime that was asked for cannot run on this host or with this model."""

    exit_code = 2


# --------------------------------------------------------------------------- host


@dataclass(frozen=True)
class Host:
    """The CPU as far as runtime choice is concerned."""

    cpu_model: str
    flags: tuple[str, ...]
    cores: int

    @property
    def bf16(self) -> bool:
        return "avx512_bf16" in self.flags or "amx_bf16" in self.flags

    @property
    def kind(self) -> str:
        """One phrase for tables: AMX, avx512_bf16, AVX-512, AVX2 only."""
        if "amx_tile" in self.flags:
            return "AMX + avx512_bf16" if "avx512_bf16" in self.flags else "AMX"
        if "avx512_bf16" in self.flags:
            return "AVX-512 + avx512_bf16" + (" + VNNI" if "avx512_vnni" in self.flags else "")
        if "avx512f" in self.flags:
            return "AVX-512, no bf16"
        return "AVX2 only" if "avx2" in self.flags else "no AVX2"

    def describe(self) -> str:
        return f"{self.cpu_model} ({self.kind}; {' '.join(self.flags) or 'no flags'}), {self.cores} cores"

    def key(self) -> str:
        return f"{self.cpu_model}|{','.join(self.flags)}|{self.cores}"


def detect_host(cpuinfo: str | None = None) -> Host:
    """The host from ``/proc/cpuinfo`` (or the text given); elsewhere ``platform`` says less."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key in ("model name", "cpu family", "model") and key not in fields:
            fields[key] = " ".join(value.split())
    # "AMD EPYC" alone names several generations: the family and model numbers tell them apart.
    model = fields.get("model name", "")
    if "cpu family" in fields:
        model = f"{model} family {fields['cpu family']} model {fields.get('model', '?')}".strip()
    if not model:
        import platform

        model = platform.processor() or platform.machine() or "unknown CPU"
    return Host(
        cpu_model=model,
        flags=tuple(f for f in RELEVANT_FLAGS if f in flags),
        cores=os.cpu_count() or 1,
    )


# --------------------------------------------------------------------------- candidates


def _config_of(generator):
    """The :class:`GeneratorConfig` a generator was built from, read off its layers."""
    from videoboost.config import GeneratorConfig
    from videoboost.inference.engine import infer_scale, infer_window

    names = {layer.name for layer in generator.layers}
    scale = infer_scale(generator)
    k = infer_window(generator)
    if k:  # the video tier: a fast or quality trunk (named as theirs) over 3 * (2k + 1) inputs
        trunk = _config_of_trunk(generator, names, scale)
        return GeneratorConfig(tier="video", scale=scale, window=k, trunk=trunk.tier,
                               filters=trunk.filters, blocks=trunk.blocks)  # fmt: skip
    return _config_of_trunk(generator, names, scale)


def _config_of_trunk(generator, names: set[str], scale: int):
    from videoboost.config import GeneratorConfig

    if "conv0" in names:  # the fast tier: conv0, then conv1..convN
        blocks = sum(1 for n in names if n.startswith("conv") and n[4:].isdigit()) - 1
        return GeneratorConfig(
            tier="fast", scale=scale, filters=generator.get_layer("conv0").filters, blocks=blocks
        )
    if "head" in names:
        blocks = sum(1 for n in names if n.startswith("block") and n.endswith("_conv1"))
        return GeneratorConfig(
            tier="quality", scale=scale, filters=generator.get_layer("head").filters, blocks=blocks
        )
    raise RuntimeUnavailable("tf-bf16: a generator of an old layout; retrain it in today's layout")


def bf16_twin(generator):
    """The same weights in a model built under ``mixed_bfloat16`` (bf16 compute, f32 variables).

    A clone would keep each layer's recorded float32 policy, so the twin is built afresh.
    """
    import keras

    from models.networks import build_generator

    cfg = _config_of(generator)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        twin = build_generator(cfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    twin.set_weights(generator.get_weights())
    return twin


def openvino_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin reports (``FP32``, ``BF16``, ``INT8``...); () without it."""
    try:
        import openvino as ov

        return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # not installed, or no CPU plugin
        return ()


def supported(
    host: Host, *, ov_caps: Iterable[str] | None = None, int8_model: Any = None
) -> dict[str, str | None]:
    """Each runtime name -> None when this host can run it, else why not."""
    caps = set(openvino_capabilities() if ov_caps is None else ov_caps)
    out: dict[str, str | None] = {"tf-f32": None}
    out["tf-bf16"] = None if host.bf16 else f"{host.kind}: no bf16 units (avx512_bf16 or AMX)"
    out["ov-f32"] = None if "FP32" in caps else "OpenVINO is not installed"
    if not caps:
        out["ov-bf16"] = "OpenVINO is not installed"
    elif "BF16" not in caps or not host.bf16:
        out["ov-bf16"] = f"OpenVINO reports {sorted(caps)}: no BF16 on this CPU"
    else:
        out["ov-bf16"] = None
    # Without a quantised model at hand, one is made here (NNCF, :func:`int8_model_for`).
    out["ov-int8"] = None if caps or int8_model is not None else "OpenVINO is not installed"
    return out


def builders(
    generator, *, threads: int | None = None, int8_model: Any = None
) -> dict[str, Callable[[], Predict]]:
    """name -> a function that builds that runtime's predict (nothing is built yet)."""
    from videoboost.inference import runtimes
    from videoboost.inference.engine import keras_predict

    ov_model: list[Any] = []

    def openvino(precision: str) -> Predict:
        if not ov_model:
            ov_model.append(runtimes.openvino_model(generator))
        return runtimes.openvino_predict(ov_model[0], precision=precision, threads=threads)

    return {
        "tf-f32": lambda: keras_predict(generator),
        "tf-bf16": lambda: keras_predict(bf16_twin(generator)),
        "ov-f32": lambda: openvino("f32"),
        "ov-bf16": lambda: openvino("bf16"),
        "ov-int8": lambda: runtimes.openvino_predict(
            int8_model if int8_model is not None else int8_model_for(generator), threads=threads
        ),
    }


def calibration_frames(
    n: int = 8, size: tuple[int, int] = (320, 180), *, window: int = 0
) -> list[np.ndarray]:
    """``n`` LR frames of the bundled sample clip (training footage, not the benchmark); for a
    video-tier model (``window`` k) each is an aligned window of its neighbours."""
    return probe_frames(size[1], size[0], n=n, every=7, offset=0, window=window)


def int8_model_for(generator, folder: Path | None = None) -> Path:
    """The NNCF int8 OpenVINO IR of ``generator``: made once per weights, kept in the state
    folder (``<state>/runtime/int8/<model key>/``). Returns its ``.xml``."""
    from videoboost import state
    from videoboost.inference import runtimes
    from videoboost.inference.engine import infer_window

    folder = folder or state.home() / "runtime" / "int8" / model_key(generator)
    xml = folder / runtimes.OPENVINO_XML
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    frames = calibration_frames(window=infer_window(generator))
    quantised = runtimes.quantize_openvino(runtimes.openvino_model(generator), frames)
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    runtimes.save_openvino_model(quantised, tmp)
    try:
        tmp.replace(folder)  # whole or not at all: a concurrent maker may have won
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return xml


# --------------------------------------------------------------------------- measuring


def model_key(generator) -> str:
    """A digest of the weights: the same model gives the same key wherever it was loaded from."""
    h = hashlib.sha256()
    for w in generator.get_weights():
        a = np.ascontiguousarray(w)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def probe_frames(
    height: int, width: int, n: int = 2, *, every: int = 29, offset: int = 5, window: int = 0
) -> list[np.ndarray]:
    """``n`` real LR frames ``(1, height, width, 3)`` float32 from the bundled sample clip.

    Real footage, not noise: precision loss shows on edges and flat areas, which noise lacks.
    Falls back to smooth synthetic frames when the clip cannot be read. With ``window`` k (a
    video-tier model) each is the aligned window of the frame and its ``k`` neighbours a side,
    ``(1, height, width, 3 * (2k + 1))``, as the engine feeds it.
    """
    import cv2

    from videoboost.data.align import is_cut, stack_window, still_window, window_indices
    from videoboost.data.sources import SAMPLE_CLIP

    frames: list[np.ndarray] = []
    recent: list[np.ndarray] = []  # the last 2k + 1 frames read, for a window's neighbours
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    i = 0
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        recent = [*recent, cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)]
        recent = recent[-(2 * window + 1) :]
        centre = i - window  # the centre lags k frames: its following neighbours are read
        if centre >= 0 and centre % every == offset:
            c = len(recent) - 1 - window
            cuts = [j > 0 and is_cut(recent[j - 1], recent[j]) for j in range(len(recent))]
            order = window_indices(len(recent), c, window, cuts)
            frames.append(stack_window(recent, order, c)[None].astype(np.float32))
        i += 1
    cap.release()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    while len(frames) < n:
        base = 127 + 90 * np.sin(xx / (3 + len(frames))) * np.cos(yy / 5)
        rgb = np.stack([base, base[::-1], base[:, ::-1]], -1) + rng.normal(0, 4, (height, width, 3))
        still = still_window(np.clip(rgb, 0, 255).astype(np.float32), window)
        frames.append(still[None])
    return frames


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(np.asarray(x, np.float32), 0, 255)).astype(np.uint8)


def agreement_db(predict: Predict, reference: list[np.ndarray], frames: list[np.ndarray]) -> float:
    """PSNR on Y (dB) of ``predict``'s uint8 output against the reference outputs; worst frame."""
    from videoboost.evaluation.metrics import psnr_y

    worst = float("inf")
    for lr, want in zip(frames, reference, strict=True):
        got = _uint8(predict(lr))
        if got.shape != want.shape:
            return float("-inf")
        worst = min(worst, min(psnr_y(g, w) for g, w in zip(got, want, strict=True)))
    return worst


def time_interleaved(
    predicts: dict[str, Predict], frame: np.ndarray, *, rounds: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median wall seconds per call of each predict, round by round so noise hits all alike."""
    for fn in predicts.values():
        for _ in range(warmup):
            fn(frame)
    times: dict[str, list[float]] = {k: [] for k in predicts}
    for _ in range(rounds):
        for name, fn in predicts.items():
            t0 = time.perf_counter()
            fn(frame)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# --------------------------------------------------------------------------- choosing


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


# The most a runtime may lose against tf-f32 on the held-out benchmark (PSNR on Y), the
# issue's bar for every tier.
MAX_LOSS_DB = 0.1


def benchmark_fidelity(
    generator,
    *,
    frames: int = 2,
    threads: int | None = None,
    host: Host | None = None,
    int8_model: Any = None,
) -> dict[str, dict[str, Any]]:
    """Every runtime this host supports on the held-out benchmark, against tf-f32.

    Returns:
        name -> ``{"psnr", "delta_db", "ok"}`` (``ok``: at most :data:`MAX_LOSS_DB` below
        tf-f32), or ``{"ok": False, "error"}`` for one that does not build. ``_benchmark``
        holds the benchmark's version and size. Done once per model version (``bento build``);
        a runtime with ``ok`` False is then never chosen for it.
    """
    from videoboost.config import BenchmarkConfig
    from videoboost.evaluation.benchmark import build_benchmark, evaluate
    from videoboost.inference.engine import infer_scale, infer_window

    scale = infer_scale(generator)
    window = infer_window(generator)
    # The clean track only: a runtime's agreement with tf-f32 is a property of its arithmetic,
    # and the coded tracks would quadruple the time of every `bento build` for no new fact.
    cfg = BenchmarkConfig(frames=frames, segments=min(2, frames), fps_runs=0, tracks=("clean",))
    bench = build_benchmark(scale, cfg=cfg)
    why_not = supported(host or detect_host(), int8_model=int8_model)
    every = builders(generator, threads=threads, int8_model=int8_model)
    out: dict[str, dict[str, Any]] = {}
    for name, build in every.items():
        if why_not[name] is not None:
            continue
        try:
            # A video model sees the benchmark clip's runs as windows, stills repeated.
            psnr = evaluate(build(), scale, bench, cfg, window=window).metrics["bench_psnr"]
        except Exception as exc:
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:160]}"}
            continue
        out[name] = {"psnr": round(float(psnr), 4)}
    ref = out[REFERENCE]["psnr"]
    for row in out.values():
        if "psnr" in row:
            row["delta_db"] = round(row["psnr"] - ref, 4)
            row["ok"] = row["delta_db"] >= -MAX_LOSS_DB
    out["_benchmark"] = {"version": bench.version, "frames_per_video": frames}
    return out


def refused_by_tag(tag: str | None) -> dict[str, str]:
    """The runtimes a registry version's ``runtime_fidelity`` tag (JSON) rules out."""
    try:
        table = json.loads(tag or "{}")
    except ValueError:
        return {}
    rows = {k: v for k, v in table.items() if isinstance(v, dict)}
    return {k: f"failed the benchmark check ({why})" for k, why in refused_by(rows).items()}


def refused_by(fidelity: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The runtimes a :func:`benchmark_fidelity` result rules out, with why."""
    refused = {}
    for name, row in fidelity.items():
        if name.startswith("_") or row.get("ok", True):
            continue
        refused[name] = row.get("error") or (
            f"{row['delta_db']:+.3f} dB against tf-f32 on the benchmark, over {MAX_LOSS_DB} dB"
        )
    return refused


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
