"""Benchmark: the architecture study. Candidate generators train on the same data for growing
budgets and are scored on every track of the held-out benchmark, beside their parameters and
their 720p frames/s under ``auto``, so the tiers can be picked from the curves.

Every candidate trains on one dataset, built once (cached) from the licensed base corpus as
``videoboost corpus build --out DIR --val-fraction 0.05 --every 2`` does (``--dataset DIR``
reuses a built one). A run is the plain core :func:`videoboost.training.train.train`: pixel
loss only, a wall-clock budget (``minutes``) so the learning-rate schedule spans it, no MLflow.

By default each candidate trains once for the largest budget and its weights are taken when the
training clock passes each smaller mark, then scored after training (scoring never eats the
budget). A mark inside a longer cosine schedule is not a run of that budget: its learning rate
has not decayed yet, so it under-states what a run of that length reaches. ``--separate-runs``
trains one run per budget instead (the sum of the budgets in time).

Speed: ``auto`` (:func:`videoboost.evaluation.runtime_select.select`, measured afresh, a
throwaway cache) picks each candidate's runtime at 320x180; then every candidate's ``auto``
predict and its ``tf-f32`` predict produce 1280x720 frames through the tiling engine, in turns
round by round, medians; ratios are to ``fast-32x3`` timed in the same rounds.

Study axes (each setting rebuilds the dataset): ``--clean-share`` (share of clean crops) and
``--kernels`` (the mix of shrink kernels of the ``real`` profile), for what closes the gap
between clean and coded input when training is long.

Prints a table per track (gain over bicubic against minutes), a summary (parameters, frames/s,
ratio to the fast tier, gains, the clean-coded gap) and the suggested tiers; writes
``bench/results/scaling.json`` and ``docs/scaling.png``. Not a test: numbers depend on the
machine (named in every table and the JSON).

    .venv/bin/python bench/scaling.py --minutes 10,30,90
    .venv/bin/python bench/scaling.py --candidates fast-32x3,fast-48x4,quality-32x8 --separate-runs
    .venv/bin/python bench/scaling.py --candidates fast-32x3,quality-32x8 --clean-share 0.3,0.6 \\
        --kernels bicubic,bicubic+area+bilinear
    .venv/bin/python bench/scaling.py --smoke   # minutes; writes under /tmp only
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from videoboost.state import configure_environment  # noqa: E402

configure_environment()

from bench.host import host  # noqa: E402
from videoboost.config import GeneratorConfig  # noqa: E402

REFERENCE = "fast-32x3"  # today's fast tier: the speed every candidate is compared to
# Named candidates (any ``<tier>-<filters>x<blocks>`` parses too): today's two tiers, then
# wider and deeper variants of each. fast: plain 3x3 convs; quality: residual blocks.
CANDIDATES: dict[str, str] = {
    "fast-32x3": "today's fast tier",
    "quality-32x8": "today's quality tier",
    "fast-48x3": "fast, wider",
    "fast-32x5": "fast, deeper",
    "fast-48x4": "fast, wider and deeper",
    "fast-64x3": "fast, twice as wide",
    "quality-32x4": "quality, half the blocks",
    "quality-48x4": "quality, wider, half the blocks",
    "quality-48x8": "quality, wider",
    "quality-32x16": "quality, twice as deep",
    "quality-64x8": "quality, twice as wide",
    "quality-32x8-dc8": "today's quality tier conditioned on a blind damage code, 8 wide",
    "fast-32x3-dc8": "today's fast tier conditioned on a blind damage code, 8 wide",
}
DEFAULT_CANDIDATES = "fast-32x3,quality-32x8,fast-48x3,fast-48x4,quality-32x4,quality-48x4"
SMOKE_CANDIDATES = "fast-32x3,quality-32x4"
CAVEAT_MARKS = (
    "marks are weights taken inside one run of the largest budget: its cosine learning rate "
    "has not decayed at a smaller mark, so a mark under-states a run of that budget "
    "(--separate-runs trains one run per budget)"
)
# ``-dc<k>``: the generator scales its blocks by a k-wide blind estimate of the input's damage
# (GeneratorConfig.damage_code), one of the study's levers on the clean/coded gap.
NAME = re.compile(r"^(fast|quality)-(\d+)x(\d+)(?:-dc(\d+))?$")


def parse_candidates(text: str) -> dict[str, GeneratorConfig]:
    """``"fast-32x3,quality-48x4,quality-32x8-dc8"`` -> name -> generator config (x4, one frame).

    Raises:
        ValueError: a name that is not ``<fast|quality>-<filters>x<blocks>[-dc<k>]``.
    """
    out: dict[str, GeneratorConfig] = {}
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        m = NAME.match(name)
        if not m:
            known = ", ".join(CANDIDATES)
            raise ValueError(
                f"candidate {name!r}: use <fast|quality>-<filters>x<blocks>[-dc<k>] ({known})"
            )
        tier, filters, blocks = m.group(1), int(m.group(2)), int(m.group(3))
        code = int(m.group(4) or 0)
        out[name] = GeneratorConfig(tier=tier, filters=filters, blocks=blocks, damage_code=code)
    if not out:
        raise ValueError("no candidate given")
    return out


def parse_floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_kernels(text: str) -> list[tuple[str, ...]]:
    """``"bicubic,bicubic+area+bilinear"`` -> ``[("bicubic",), ("bicubic", "area", "bilinear")]``:
    each comma-separated setting is a ``+``-joined mix of shrink kernels (equally likely)."""
    return [tuple(k for k in part.split("+") if k) for part in text.split(",") if part.strip()]


def data_settings(
    clean_shares: list[float] | None, kernels: list[tuple[str, ...]] | None
) -> list[tuple[str, dict]]:
    """The dataset settings of the study: ``(label, RealDegradeConfig overrides)``, one per
    combination of the axes given; without an axis, one setting, the defaults (label "")."""
    axes = []
    if clean_shares:
        axes.append([("clean_share", v, f"clean {v:g}") for v in clean_shares])
    if kernels:
        axes.append([("kernels", k, "+".join(k)) for k in kernels])
    if not axes:
        return [("", {})]
    return [
        (", ".join(label for _, _, label in combo), {key: value for key, value, _ in combo})
        for combo in itertools.product(*axes)
    ]


def run_name(candidate: str, setting: str) -> str:
    return f"{candidate} [{setting}]" if setting else candidate


def build_data(overrides: dict, args, work: Path):
    """The dataset of one setting, built once (cached by version) like ``videoboost corpus
    build --out DIR --val-fraction 0.05 --every 2`` (the real profile by default)."""
    from videoboost.config import DatasetConfig, DegradeConfig, RealDegradeConfig, SamplingConfig
    from videoboost.data.corpus import dataset_sources, load_corpus
    from videoboost.mlops.validation import build_validated_dataset

    real = {"variants": 2} if args.smoke else {}
    cfg = DatasetConfig(
        degrade=DegradeConfig(profile=args.profile, real=RealDegradeConfig(**real, **overrides)),
        sampling=SamplingConfig(every=args.every, max_frames=16 if args.smoke else None),
        val_fraction=0.2 if args.smoke else args.val_fraction,
    )
    corpus = load_corpus()
    tag = "-".join(f"{k}{'+'.join(v) if isinstance(v, tuple) else v}" for k, v in overrides.items())
    out = work / f"dataset{'-' + tag if tag else ''}"
    t0 = time.perf_counter()
    info = build_validated_dataset(dataset_sources(corpus), out, cfg, progress=False)
    state = "cached" if info.cached else f"built in {time.perf_counter() - t0:.0f} s"
    print(f"dataset {info.version} ({state}) at {info.path}: {info.counts['train']} train / "
          f"{info.counts['val']} val frames", flush=True)  # fmt: skip
    return info


def mark_callback(marks: list[float]):
    """A Keras callback that keeps the generator's weights (in memory) when training time
    passes each mark (minutes), counted from the start of ``fit`` as the run's own clock is."""
    import keras

    class Marks(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.todo = sorted(marks)
            self.taken: list[dict] = []
            self.start: float | None = None
            self.steps = 0

        def on_train_begin(self, logs=None):
            if self.start is None:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            minutes = (time.perf_counter() - self.start) / 60
            while self.todo and minutes >= self.todo[0]:
                self.taken.append({"mark": self.todo.pop(0), "minutes": round(minutes, 2),
                                   "steps": self.steps,
                                   "weights": self.model.generator.get_weights()})  # fmt: skip

    return Marks()


def score(generator, bench, threads: int) -> dict:
    """``{"gain": {track: dB over bicubic of the same input}, "gain_mean": dB}``."""
    from videoboost.config import BenchmarkConfig
    from videoboost.evaluation.benchmark import evaluate_keras, track_key

    m = evaluate_keras(generator, bench, BenchmarkConfig(fps_runs=0, threads=threads)).metrics
    gains = {
        t: round(m[track_key("bench_psnr_gain", t)], 3)
        for t in bench.tracks
        if track_key("bench_psnr_gain", t) in m
    }
    return {"gain": gains, "gain_mean": round(m["bench_psnr_gain_mean"], 3)}


def train_config(gen: GeneratorConfig, minutes: float, args):
    from videoboost.config import TrainConfig

    data = {
        "generator": gen.model_dump(),
        "minutes": minutes,
        "pretrain_epochs": 0,
        "gan_epochs": 0,
        "steps_per_epoch": 500 if gen.tier == "fast" else 150,
        "sample_every": 1000,
        "threads": args.threads,
        **json.loads(args.train),
    }
    return TrainConfig.model_validate(data)


def train_run(name: str, gen: GeneratorConfig, budgets: list[float], dataset: Path, work: Path,
              bench, args) -> tuple[dict, object]:  # fmt: skip
    """One candidate on one dataset: the gain curve over ``budgets``; returns the row and the
    generator of the largest budget (for the speed measurement)."""
    from videoboost.training.train import train

    folder = work / re.sub(r"[^\w.+-]+", "_", name)
    curve: list[dict] = []
    runs = [[b] for b in budgets] if args.separate_runs else [budgets]
    steps_per_s = []
    init = None  # warm_start copies its weights into each run's own generator
    if args.init:
        from videoboost.mlops.generators import load_generator

        init = load_generator(args.init)[0]
    for marks in runs:
        cfg = train_config(gen, max(marks), args)
        cb = mark_callback([m for m in marks if m < max(marks)])
        sub = folder / f"{max(marks):g}min"
        print(f"training {name} for {max(marks):g} min ...", flush=True)
        result = train(dataset, cfg, sub, callbacks=[cb], progress=not args.quiet, init=init)
        steps_per_s.append(result.steps / max(result.elapsed_s, 1e-9))
        final = result.generator.get_weights()
        for taken in cb.taken:
            result.generator.set_weights(taken.pop("weights"))
            curve.append({**taken, **score(result.generator, bench, args.threads)})
        result.generator.set_weights(final)  # the best epoch's weights, what the run returns
        # Kept on disk so a study split over processes (--skip-speed) can be timed in one
        # process later (--merge): frames/s are only comparable when measured side by side.
        saved = folder / "final.keras"
        result.generator.save(saved)
        curve.append({"mark": max(marks), "minutes": round(result.elapsed_s / 60, 2),
                      "steps": result.steps, "ended_by": result.ended_by,
                      **score(result.generator, bench, args.threads)})  # fmt: skip
        print(json.dumps({"run": name, "curve": curve[-len(marks):]}), flush=True)  # fmt: skip
    row = {
        "run": name,
        "params": int(result.generator.count_params()),
        "steps_per_s": round(statistics.median(steps_per_s), 2),
        "generator_path": str(saved),
        "curve": curve,
    }
    return row, result.generator


def interleaved_fps(predicts: dict[str, object], rounds: int) -> dict[str, float]:
    """720p-output frames/s of each predict through the tiling engine (one frame each per
    round, in turns, so load on a shared machine hits all alike; two warm-up rounds). Medians."""
    from videoboost.evaluation.benchmark import frame_720p
    from videoboost.inference.engine import Upscaler

    calls = {n: frame_720p(Upscaler(p, 4)) for n, p in predicts.items()}
    times: dict[str, list[float]] = {n: [] for n in calls}
    for r in range(rounds + 2):
        for n, one in calls.items():
            t0 = time.perf_counter()
            one()
            if r >= 2:
                times[n].append(time.perf_counter() - t0)
    return {n: 1 / statistics.median(t) for n, t in times.items()}


def measure_speed(generators: dict[str, object], threads: int, rounds: int) -> dict[str, dict]:
    """Per candidate: the runtime ``auto`` picks (measured now, never cached) and the 720p
    frames/s under it and under ``tf-f32``, with ratios to :data:`REFERENCE` from the same
    rounds. A reference that is not a candidate is timed as a fresh ``fast-32x3``."""
    from models.networks import build_generator
    from videoboost.evaluation.runtime_select import select
    from videoboost.inference.engine import keras_predict

    generators = dict(generators)
    if REFERENCE not in generators:
        generators[REFERENCE] = build_generator(parse_candidates(REFERENCE)[REFERENCE])
    predicts, picked = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, gen in generators.items():
            choice = select(gen, size=(320, 180), threads=threads, cache=Path(tmp) / "c.json")
            print(f"{name}: {choice.line()}", flush=True)
            picked[name] = choice.name
            predicts[f"{name}|tf-f32"] = keras_predict(gen)
            if choice.name != "tf-f32":
                predicts[f"{name}|auto"] = choice.predict
    fps = interleaved_fps(predicts, rounds)
    out = {}
    for name in generators:
        f32 = fps[f"{name}|tf-f32"]
        auto = fps.get(f"{name}|auto", f32)
        out[name] = {"runtime_auto": picked[name], "fps_auto": round(auto, 2),
                     "fps_tf_f32": round(f32, 2)}  # fmt: skip
    ref = out[REFERENCE]
    for s in out.values():
        s["fps_ratio_to_fast"] = round(s["fps_auto"] / ref["fps_auto"], 3)
        s["fps_ratio_to_fast_tf_f32"] = round(s["fps_tf_f32"] / ref["fps_tf_f32"], 3)
    return out


def coded_gap(gain: dict[str, float]) -> float | None:
    """Gain on clean input minus the mean gain on the coded tracks (H.264, JPEG): how much of
    what a model learnt is lost on the input people own."""
    coded = [g for t, g in gain.items() if t.startswith(("h264", "jpeg"))]
    if "clean" not in gain or not coded:
        return None
    return round(gain["clean"] - statistics.fmean(coded), 3)


def pick_tiers(summary: list[dict], tolerance: float) -> dict:
    """The tiers the curves suggest, from the rows of the first dataset setting: fast = the most
    mean gain at the largest budget among candidates no slower under ``auto`` than today's fast
    tier; quality = the most gain that ``auto`` still serves at a third of the new fast tier's
    frame rate or better. ``tolerance`` is the share of timing noise forgiven (say 0.05)."""
    rows = [r for r in summary if not r["setting"] and r.get("fps_auto")]
    ref = next((r for r in rows if r["candidate"] == REFERENCE), None)
    if ref is None:
        return {"why": f"{REFERENCE} was not trained: no baseline to compare"}
    fast_ok = [r for r in rows if r["fps_auto"] >= ref["fps_auto"] * (1 - tolerance)]
    fast = max(fast_ok, key=lambda r: r["gain_mean_final"])
    floor = fast["fps_auto"] / 3
    quality_ok = [r for r in rows if r["fps_auto"] >= floor * (1 - tolerance)]
    quality = max(quality_ok, key=lambda r: r["gain_mean_final"])
    return {
        "note": "the quality pick is the fast pick: no candidate gains more within the speed "
        "floor (train longer, or keep one tier)"
        if quality is fast
        else "",
        "fast": fast["candidate"],
        "fast_fps_auto": fast["fps_auto"],
        "quality": quality["candidate"],
        "quality_fps_auto": quality["fps_auto"],
        "quality_fps_floor": round(floor, 2),
        "tolerance": tolerance,
        "rule": "fast: most mean gain with fps_auto >= today's fast tier's; quality: most mean "
        "gain with fps_auto >= a third of the new fast tier's (both less the tolerance)",
    }


def summarise(rows: list[dict], speed: dict[str, dict]) -> list[dict]:
    out = []
    for r in rows:
        last = r["curve"][-1]
        s = speed.get(r["candidate"], {})
        out.append({
            "run": r["run"], "candidate": r["candidate"], "setting": r["setting"],
            "params": r["params"], "steps_per_s": r["steps_per_s"],
            "runtime_auto": s.get("runtime_auto", "-"), "fps_auto": s.get("fps_auto"),
            "fps_tf_f32": s.get("fps_tf_f32"), "fps_ratio_to_fast": s.get("fps_ratio_to_fast"),
            "gain_mean_final": last["gain_mean"],
            "best_gain_mean": max(p["gain_mean"] for p in r["curve"]),
            "gap_clean_coded": coded_gap(last["gain"]),
        })  # fmt: skip
    return out


def track_tables(rows: list[dict], tracks: list[str], budgets: list[float]) -> dict[str, list]:
    """Per track (and ``mean``): one row per run, one column per budget, gain in dB."""
    tables = {}
    for track in [*tracks, "mean"]:
        table = []
        for r in rows:
            at = {p["mark"]: p for p in r["curve"]}
            cells = {"run": r["run"]}
            for b in budgets:
                p = at.get(b)
                value = None if p is None else (
                    p["gain_mean"] if track == "mean" else p["gain"].get(track))  # fmt: skip
                cells[f"{b:g} min"] = "-" if value is None else f"{value:+.3f}"
            table.append(cells)
        tables[track] = table
    return tables


def plot(payload: dict, path: Path) -> None:
    """One panel per track (and the mean over tracks): gain over bicubic against training
    minutes, a line per run, labelled with its 720p frames/s under ``auto``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, speed = payload["rows"], payload["speed"]
    budgets = sorted(payload.get("budgets_min") or [])
    panels = [*payload["tracks"], "mean"]
    ncols = 3
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows + 1.3), dpi=110,
                             squeeze=False)  # fmt: skip
    colours = plt.get_cmap("tab10")
    candidates = list(dict.fromkeys(r["candidate"] for r in rows))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    styles = ["-", "--", ":", "-."]
    handles = {}
    for ax, track in zip(axes.flat, panels, strict=False):
        for r in rows:
            xs = [p["minutes"] for p in r["curve"]]
            ys = [p["gain_mean"] if track == "mean" else p["gain"].get(track) for p in r["curve"]]
            s = speed.get(r["candidate"], {})
            label = f"{r['run']}: {r['params'] / 1e3:.0f}k params, "
            label += f"{s['fps_auto']:.1f} fps auto ({s['runtime_auto']})" if s else "fps -"
            (line,) = ax.plot(xs, ys, marker="o", ms=4,
                              color=colours(candidates.index(r["candidate"]) % 10),
                              ls=styles[settings.index(r["setting"]) % len(styles)])  # fmt: skip
            handles.setdefault(label, line)
        if budgets and budgets[-1] >= 5 * budgets[0]:  # 10, 30, 90: spread them out
            ax.set_xscale("log")
            ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
            ax.minorticks_off()
        ax.set_title("mean over tracks" if track == "mean" else f"track: {track}", fontsize=11)
        ax.set_xlabel("training minutes")
        ax.set_ylabel("gain over bicubic (dB)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    h = payload["host"]
    mode = "one run per budget" if payload["separate_runs"] else "marks inside one run"
    if payload.get("smoke"):
        mode += "; SMOKE CHECK, not a result"
    fig.suptitle(f"VideoBoost x4 scaling study ({mode}), {payload['date']}\nhost: {h['cpu']} "
                 f"({h['kind']}, {h['cores']} cores); fps = 1280x720 output frames/s under auto",
                 fontsize=12)  # fmt: skip
    fig.legend(handles.values(), handles.keys(), loc="lower center", fontsize=9,
               ncol=2 if len(handles) > 3 else len(handles), frameon=False)  # fmt: skip
    legend_rows = -(-len(handles) // 2)
    fig.tight_layout(rect=(0, min(0.03 + 0.03 * legend_rows, 0.4), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=None,
                        help=f"comma-separated <fast|quality>-<filters>x<blocks> (default "
                        f"{DEFAULT_CANDIDATES}; named: {', '.join(CANDIDATES)})")  # fmt: skip
    parser.add_argument("--minutes", default=None, help="budgets, e.g. 10,30,90 (default)")
    parser.add_argument("--separate-runs", action="store_true",
                        help="one run per budget instead of marks inside the largest")  # fmt: skip
    parser.add_argument("--dataset", default=None, help="reuse a built dataset folder")
    parser.add_argument("--profile", choices=["real", "clean"], default="real")
    parser.add_argument("--every", type=int, default=2, help="keep every k-th frame of a clip")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--clean-share", default=None, help="axis: e.g. 0.3,0.6 (real profile)")
    parser.add_argument("--kernels", default=None,
                        help="axis: mixes of shrink kernels, e.g. bicubic,bicubic+area+bilinear")  # fmt: skip
    parser.add_argument("--train", default="{}", help="TrainConfig overrides as JSON")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads")
    parser.add_argument("--fps-runs", type=int, default=9, help="timed rounds (median)")
    parser.add_argument("--fps-tolerance", type=float, default=0.05,
                        help="timing noise forgiven when picking tiers (share)")  # fmt: skip
    parser.add_argument("--bench-frames", type=int, default=None,
                        help="benchmark frames per video (default: the benchmark's 24)")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="a quick end-to-end check: 0.5 and 1 min, two candidates, a small "
                        "dataset and benchmark, output under /tmp")  # fmt: skip
    parser.add_argument("--work", default=None, help="default .state/bench-scaling")
    parser.add_argument("--out", default=None, help="default bench/results/scaling.json")
    parser.add_argument("--plot", default=None, help="default docs/scaling.png")
    parser.add_argument("--replot", default=None, metavar="JSON",
                        help="only draw --plot from a study's JSON (no training)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    parser.add_argument("--init", default=None, metavar="MODEL.keras",
                        help="warm-start every candidate from this generator (same tier and "
                        "size), e.g. a shipped base, to compare data for fine-tuning")  # fmt: skip
    parser.add_argument("--skip-speed", action="store_true",
                        help="train and score only; time the candidates later with --merge "
                        "(a study split over processes, one core each)")  # fmt: skip
    parser.add_argument("--merge", default=None, metavar="JSON,JSON",
                        help="join the JSON of --skip-speed studies, time every candidate in "
                        "one process, then write the table, --out and --plot")  # fmt: skip
    args = parser.parse_args(argv)
    smoke_dir = Path(tempfile.gettempdir()) / "videoboost-scaling-smoke"
    defaults = {
        "candidates": SMOKE_CANDIDATES if args.smoke else DEFAULT_CANDIDATES,
        "minutes": "0.5,1" if args.smoke else "10,30,90",
        "work": smoke_dir / "work" if args.smoke else ROOT / ".state" / "bench-scaling",
        "out": smoke_dir / "scaling.json" if args.smoke else ROOT / "bench/results/scaling.json",
        "plot": smoke_dir / "scaling.png" if args.smoke else ROOT / "docs" / "scaling.png",
        "bench_frames": 4 if args.smoke else None,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.smoke:
        args.fps_runs = min(args.fps_runs, 3)
    if (args.clean_share or args.kernels) and (args.dataset or args.profile != "real"):
        parser.error("--clean-share/--kernels rebuild the real-profile dataset: not with "
                     "--dataset or --profile clean")  # fmt: skip
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), Path(args.plot))
        print(f"wrote {args.plot}")
        return
    if args.merge:
        from videoboost.inference.engine import set_tf_threads

        set_tf_threads(args.threads)
        merge([Path(p) for p in args.merge.split(",") if p.strip()], args)
        return

    candidates = parse_candidates(args.candidates)
    budgets = sorted(parse_floats(args.minutes))
    settings = data_settings(
        parse_floats(args.clean_share) if args.clean_share else None,
        parse_kernels(args.kernels) if args.kernels else None,
    )
    from videoboost.config import BenchmarkConfig
    from videoboost.data.shards import load_info
    from videoboost.evaluation.benchmark import build_benchmark
    from videoboost.inference.engine import set_tf_threads

    set_tf_threads(args.threads)
    work = Path(args.work)
    the_host = host()
    print(f"host: {the_host['cpu']} ({the_host['kind']}, {the_host['cores']} cores), load avg "
          f"{os.getloadavg()[0]:.1f}; budgets {budgets} min; {len(candidates)} candidates x "
          f"{len(settings)} dataset setting(s)", flush=True)  # fmt: skip
    bench_cfg = BenchmarkConfig(**({"frames": args.bench_frames} if args.bench_frames else {}))
    bench = build_benchmark(4, cfg=bench_cfg,
                            cache_dir=work / "benchmarks" if args.smoke else None)  # fmt: skip
    rows, trained, datasets = [], {}, {}
    for label, overrides in settings:
        info = load_info(args.dataset) if args.dataset else build_data(overrides, args, work)
        datasets[label] = {"version": info.version, "path": str(info.path), "real": overrides}
        for name, gen in candidates.items():
            full = run_name(name, label)
            row, generator = train_run(full, gen, budgets, Path(info.path), work, bench, args)
            row.update(candidate=name, setting=label, generator=gen.model_dump(),
                       dataset_version=info.version)  # fmt: skip
            rows.append(row)
            trained.setdefault(name, generator)

    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": the_host,
        "smoke": args.smoke,
        "budgets_min": budgets,
        "separate_runs": args.separate_runs,
        "caveat": None if args.separate_runs else CAVEAT_MARKS,
        "datasets": datasets,
        "benchmark_version": bench.version,
        "tracks": list(bench.tracks),
        "train_overrides": json.loads(args.train),
        "threads": args.threads,
        "init": args.init,
        "rows": rows,
    }
    if args.skip_speed:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {out} (not timed: --skip-speed; time it with --merge)")
        return
    finish(payload, trained, args)


def merge(paths: list[Path], args) -> None:
    """Join the JSON of studies trained apart (``--skip-speed``), then time and report them as
    one: the same host, benchmark and budgets are required, or the curves do not compare."""
    from videoboost.mlops.generators import load_generator

    parts = [json.loads(p.read_text()) for p in paths]
    first = parts[0]
    for key in ("benchmark_version", "budgets_min", "separate_runs", "init"):
        differ = {json.dumps(p.get(key)) for p in parts}
        if len(differ) > 1:
            raise SystemExit(f"--merge: the studies differ in {key}: {sorted(differ)}")
    cpus = {p["host"]["cpu"] for p in parts}
    if len(cpus) > 1:
        raise SystemExit(f"--merge: the studies ran on different hosts: {sorted(cpus)}")
    rows = [r for p in parts for r in p["rows"]]
    trained = {}
    for r in rows:
        if r["candidate"] not in trained:
            trained[r["candidate"]] = load_generator(r["generator_path"])[0]
    payload = {**first, "rows": rows, "threads": args.threads,
               "datasets": {k: v for p in parts for k, v in p["datasets"].items()},
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "merged_from": [str(p) for p in paths],
               "train_threads": sorted({p["threads"] for p in parts})}  # fmt: skip
    finish(payload, trained, args)


def finish(payload: dict, trained: dict, args) -> None:
    """Time every candidate side by side, print the tables, pick the tiers, write JSON and plot."""
    from bench.train import print_table

    rows, budgets, the_host = payload["rows"], payload["budgets_min"], payload["host"]
    print("\nmeasuring 720p frames/s under auto and tf-f32 ...", flush=True)
    speed = measure_speed(trained, args.threads, args.fps_runs)
    summary = summarise(rows, speed)
    picks = pick_tiers(summary, args.fps_tolerance)
    tracks = payload["tracks"]

    where = f"host: {the_host['cpu']} ({the_host['kind']}, {the_host['cores']} cores)"
    mode = (
        "one run per budget"
        if payload["separate_runs"]
        else f"marks inside one {budgets[-1]:g}-min run"
    )
    if not payload["separate_runs"]:
        print(f"\nnote: {CAVEAT_MARKS}")
    for track, table in track_tables(rows, tracks, budgets).items():
        what = "mean over tracks" if track == "mean" else f"track {track}"
        print(f"\n{what}: gain over bicubic (dB) against training minutes; {where}; {mode}")
        print_table(["run", *[f"{b:g} min" for b in budgets]], table)
    print(f"\nsummary; {where}; fps = 1280x720 output frames/s, ratio to {REFERENCE} under auto, "
          f"same rounds; load avg {os.getloadavg()[0]:.1f}")  # fmt: skip
    cols = ["run", "params", "steps_per_s", "runtime_auto", "fps_auto", "fps_tf_f32",
            "fps_ratio_to_fast", "gain_mean_final", "best_gain_mean", "gap_clean_coded"]  # fmt: skip
    print_table(cols, summary)
    print(f"\nsuggested tiers: {json.dumps(picks)}")

    payload.update(load_avg_1min=round(os.getloadavg()[0], 2), speed=speed, summary=summary,
                   picks=picks)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    plot(payload, Path(args.plot))
    print(f"\nwrote {out} and {args.plot}")


if __name__ == "__main__":
    main()
