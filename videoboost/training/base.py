"""Base generators: trained for hours on the licensed corpus, shipped in ``models/base/``.

A base is one ``<tier>-x<scale>.keras`` file with a model card beside it (``.json``, and the
same card rendered as ``.md``). The card says what the base is and how to make it again: the
corpus manifest's hash and the degradation profile, steps, batch, crop and hours trained, the
host CPU and code commit of each stretch of training, the MLflow runs, its per-track scores on
the held-out benchmark, and the commands that reproduce it.

Every retrain can start from a base (``--init base``; the default ``champion`` falls back to
the base of the run's tier and scale while the registry has no champion of it), and the first
``make run`` on an empty registry registers the base as a version of its own.

:func:`export_base` turns a checkpoint file (:mod:`videoboost.training.checkpoint_file`) into
a shipped base.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from videoboost.data.corpus import file_sha256

BASE_DIR = Path(__file__).resolve().parents[2] / "models" / "base"
CARD_FORMAT = "videoboost-base-card/1"
# What a base is scored on and how its card is compared with a fresh score (tests hold the
# shipped cards to 0.02 dB of this).
SCORE_KEYS = ("bench_psnr", "bench_psnr_bicubic", "bench_psnr_gain")


def base_dir() -> Path:
    """Where bases are looked up: ``VIDEOBOOST_BASE_DIR`` if set (tests, a team's own bases),
    else the shipped ``models/base/``."""
    return Path(os.environ.get("VIDEOBOOST_BASE_DIR") or BASE_DIR)


def base_stem(tier: str, scale: int) -> str:
    return f"{tier}-x{scale}"


def base_path(tier: str, scale: int, folder: Path | None = None) -> Path:
    """Where the base of ``tier`` and ``scale`` ships (it may not exist)."""
    return (folder or base_dir()) / f"{base_stem(tier, scale)}.keras"


def shipped_bases(folder: Path | None = None) -> list[Path]:
    """Every shipped base file with a card beside it."""
    folder = folder or base_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.keras") if p.with_suffix(".json").is_file())


def read_card(model: Path) -> dict[str, Any]:
    return json.loads(Path(model).with_suffix(".json").read_text())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _track_scores(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    from videoboost.evaluation.benchmark import track_key, tracks_of

    return {
        track: {k: round(float(metrics[track_key(k, track)]), 4) for k in SCORE_KEYS}
        for track in tracks_of(metrics)
        if all(track_key(k, track) in metrics for k in SCORE_KEYS)
    }


def score_base(generator) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per-track scores of ``generator`` on the held-out benchmark, and the mean gain."""
    from videoboost.config import BenchmarkConfig
    from videoboost.evaluation.benchmark import build_benchmark, evaluate_keras
    from videoboost.inference.engine import infer_scale

    cfg = BenchmarkConfig(fps_runs=0)
    report = evaluate_keras(generator, build_benchmark(infer_scale(generator), cfg=cfg), cfg)
    means = {k: round(float(report.metrics[k]), 4) for k in ("bench_psnr_gain_mean",)}
    return _track_scores(report.metrics), means


def render_card(card: dict[str, Any]) -> str:
    """The card as Markdown (the ``.md`` shipped beside the ``.json``)."""
    t = card["training"]
    lines = [
        f"# VideoBoost base: {card['tier']} tier, x{card['scale']}",
        "",
        f"`{card['file']}` ({card['parameters']:,} parameters, SHA-256 `{card['sha256'][:16]}`), "
        f"trained for **{t['hours']:.2f} h** ({t['steps']:,} steps of batch {t['batch_size']}, "
        f"LR crops of {t['crop']} px, {t['epochs']} epochs) on the `{card['corpus']['name']}` "
        f"corpus (manifest SHA-256 `{card['corpus']['manifest_sha256'][:16]}`), degradation "
        f"profile `{card['degradation']['profile']}`.",
        "",
        "## Held-out benchmark (PSNR-Y, dB; gain over bicubic of the same input)",
        "",
        "| track | model | bicubic | gain |",
        "|---|---|---|---|",
    ]
    for track, s in card["benchmark"]["tracks"].items():
        lines.append(
            f"| {track} | {s['bench_psnr']:.2f} | {s['bench_psnr_bicubic']:.2f} | "
            f"{s['bench_psnr_gain']:+.2f} |"
        )
    lines += [
        "",
        f"Mean gain over the coded and clean tracks: "
        f"{card['benchmark']['bench_psnr_gain_mean']:+.2f} dB (scored {card['benchmark']['scored_utc']}"
        f" on {card['benchmark']['host_cpu']}).",
        "",
        "## Training stretches",
        "",
        "| from | to | steps | hours | host CPU | precision | commit |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in t["stretches"]:
        hours = (s["elapsed_to_s"] - s["elapsed_from_s"]) / 3600
        lines.append(
            f"| {s['started_utc']} | {s['ended_utc']} | {s['steps_from']:,}–{s['steps_to']:,} "
            f"| {hours:.2f} | {s['host_cpu']} | {s['precision']} | `{s['commit'][:10]}` |"
        )
    lines += ["", "MLflow runs: " + ", ".join(f"`{r}`" for r in t["mlflow_runs"]), "",
              "## Reproduce", "", "```bash", *card["reproduce"], "```", ""]  # fmt: skip
    return "\n".join(lines)


def export_base(checkpoint: str | Path, out_dir: Path | None = None) -> Path:
    """Write the base of a checkpoint file: ``<tier>-x<scale>.keras``, its card ``.json`` and
    ``.md``, each atomically. The card's scores come from scoring the exported file.

    Returns the ``.keras`` path.
    """
    import tempfile

    import keras

    import models.networks  # noqa: F401  registers the custom layers
    from models.networks import build_generator
    from videoboost.config import GeneratorConfig
    from videoboost.data.corpus import MANIFEST, load_corpus
    from videoboost.evaluation.runtime_select import detect_host
    from videoboost.training import checkpoint_file

    meta = checkpoint_file.read_meta(checkpoint)
    cfg = meta["config"]
    gen_cfg = GeneratorConfig.model_validate(cfg["generator"])
    out_dir = Path(out_dir or BASE_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = base_stem(gen_cfg.tier, gen_cfg.scale)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint_file.unpack(checkpoint, Path(tmp) / "checkpoint")
        generator = build_generator(gen_cfg)
        generator.load_weights(Path(tmp) / "checkpoint" / "generator.weights.h5")
        model_tmp = Path(tmp) / f"{stem}.keras"
        generator.save(model_tmp)
        model = out_dir / f"{stem}.keras"
        _atomic_write(model, model_tmp.read_bytes())
    # Score the file as shipped (what users and the card test load), not the in-memory copy.
    shipped = keras.models.load_model(model, compile=False)
    tracks, means = score_base(shipped)
    corpus = load_corpus(MANIFEST, verify=False)
    stretches = meta.get("stretches", [])
    data_cfg = meta.get("dataset_config") or {}
    card = {
        "format": CARD_FORMAT,
        "file": model.name,
        "sha256": file_sha256(model),
        "tier": gen_cfg.tier,
        "scale": gen_cfg.scale,
        "generator": gen_cfg.model_dump(),
        "parameters": int(shipped.count_params()),
        "corpus": {
            "name": corpus.name,
            "version": corpus.version,
            "manifest": "data/base/manifest.json",
            "manifest_sha256": meta.get("corpus_manifest_sha256") or corpus.manifest_sha256,
            "counts": corpus.counts(),
        },
        "dataset": meta.get("dataset", {}),
        "degradation": {
            "profile": data_cfg.get("degrade", {}).get("profile", "real"),
            **({"config": data_cfg.get("degrade")} if data_cfg else {}),
        },
        "training": {
            "steps": int(meta.get("steps", 0)),
            "epochs": int(meta.get("epochs_done", 0)),
            "batch_size": cfg["batch_size"],
            "crop": cfg["crop"],
            "hours": float(meta.get("elapsed_s", 0.0)) / 3600,
            "budget_minutes": cfg.get("minutes"),
            "learning_rate": cfg["learning_rate"],
            "stretches": stretches,
            "mlflow_runs": meta.get("runs", []),
            "last_epoch": meta.get("last_epoch", {}),
            "checkpoint_file": Path(checkpoint).name,
        },
        "code_commit": stretches[-1]["commit"] if stretches else "unknown",
        "benchmark": {
            "tracks": tracks,
            **means,
            "scored_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host_cpu": detect_host().describe(),
        },
        "reproduce": [
            "make venv",
            "videoboost corpus build --out .state/datasets/base --val-fraction 0.05 --every 2",
            f"videoboost train --dataset .state/datasets/base --tier {gen_cfg.tier} "
            f"--steps {cfg['steps_per_epoch']} --minutes {cfg.get('minutes') or 0:g} --no-register "
            f"--checkpoint-file models/base/checkpoints/{stem}.vbckpt",
            f"videoboost train --resume models/base/checkpoints/{stem}.vbckpt "
            "--dataset .state/datasets/base   # each later session, until the budget is spent",
            f"videoboost base export models/base/checkpoints/{stem}.vbckpt",
        ],
    }
    _atomic_write(model.with_suffix(".json"), (json.dumps(card, indent=1) + "\n").encode())
    _atomic_write(model.with_suffix(".md"), render_card(card).encode())
    return model
