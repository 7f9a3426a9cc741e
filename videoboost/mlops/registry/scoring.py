"""Benchmark scores of registry versions: evaluate one, check it for leaks, log the report.

Scores come from :mod:`videoboost.evaluation.benchmark`; :func:`log_report` writes them to the
version (gain tag, benchmark table in its card) and to its run(s) (metrics, report, image).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from videoboost.config import BenchmarkConfig
from videoboost.errors import BenchmarkLeak
from videoboost.evaluation.benchmark import (
    DEFAULT_SOURCES,
    Benchmark,
    Report,
    build_benchmark,
    comparison,
    evaluate_keras,
)
from videoboost.inference.engine import set_tf_threads
from videoboost.mlops import version_card
from videoboost.mlops.registry.client import _call, _client
from videoboost.mlops.registry.decision import _benchmark_section, _metric_tags
from videoboost.mlops.registry.reads import _get_version
from videoboost.mlops.tracking import MODEL_NAME, _mlflow, load_generator, setup


def _leak_notes(version: str, bench: Benchmark) -> list[str]:
    """Refuse a benchmark that overlaps the version's training data (as far as it is known).

    Compares the content hashes of the benchmark's sources with the sources in the
    ``dataset/dataset.json`` the training run logged (see :func:`videoboost.mlops.tracking.log_dataset`).

    Raises:
        BenchmarkLeak: a benchmark file (or folder of stills) is a training source.
    """
    run_id = _get_version(version).run_id
    if not run_id:
        return [f"leak check skipped: version {version} has no source run"]
    client = _client()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "dataset/dataset.json", tmp)
            data = json.loads(Path(path).read_text())
        except Exception:
            return [f"leak check skipped: the run of version {version} logged no dataset.json"]
    used = {s.get("content_hash") for s in data.get("sources", []) if not s.get("skipped")}
    leaked = sorted(used & bench.source_hashes)
    if leaked:
        names = [i.name for i in bench.items if i.content_hash in leaked] or ["a still folder"]
        raise BenchmarkLeak(
            f"version {version} was trained on benchmark footage ({', '.join(names)}, dataset "
            f"{data.get('version')}): its scores would be flattered. Train on other footage or "
            "pass a held-out --videos set"
        )
    return []


def evaluate_version(
    model: str,
    *,
    sources: Sequence[str | Path] | None = None,
    cfg: BenchmarkConfig = BenchmarkConfig(),
    bench: Benchmark | None = None,
) -> tuple[Report, Benchmark]:
    """Load ``model`` (registry URI or path) and score it; writes nothing.

    Args:
        model: ``models:/videoboost-generator/3``, ``models:/videoboost-generator@champion``,
            a bare version number (``3``) or a local ``.keras`` file.
        sources: benchmark sources (None = the bundled held-out media).
        cfg: benchmark settings.
        bench: a benchmark already built (its scale must be the model's).

    Raises:
        ModelNotFound, StoreUnavailable, SourceError, BenchmarkLeak.
    """
    if model.isdigit():
        model = f"models:/{MODEL_NAME}/{model}"
    set_tf_threads(cfg.threads)  # before loading: TF fixes its thread pools on first use
    generator, info = load_generator(model)
    scale = info["scale"]
    if bench is None or bench.scale != scale:
        bench = build_benchmark(scale, sources, cfg)
    version = str(info["version"]) if info.get("version") is not None else None
    notes = _leak_notes(version, bench) if version else []
    report = evaluate_keras(generator, bench, cfg, model=model, version=version)
    report.notes += notes
    return report, bench


def _log_run_facts(report: Report, image=None) -> list[str]:
    """Metrics (+ report, comparison image) to the version's source run and the active run.

    These are facts about the evaluation, true whatever is decided; run metrics are not part of
    the registry state that promotion protects.
    """
    mlflow = _mlflow()
    from mlflow.entities import Metric

    client = _client()
    ts = int(time.time() * 1000)
    metrics = [Metric(k, float(v), ts, 0) for k, v in report.metrics.items()]
    done = []
    run_ids = []
    if report.version:
        run_id = _get_version(report.version).run_id
        if run_id:
            run_ids.append(run_id)
    active = mlflow.active_run()
    if active is not None and active.info.run_id not in run_ids:
        run_ids.append(active.info.run_id)
    tag = f"v{report.version}" if report.version else "local"
    name = f"benchmark/{report.benchmark_version}_{tag}"
    for i, run_id in enumerate(run_ids):
        _call(lambda r=run_id: client.log_batch(r, metrics=metrics), "logging bench metrics")
        _call(lambda r=run_id: client.log_dict(r, report.to_dict(), f"{name}.json"), "logging")
        if image is not None and i == 0:  # the comparison belongs to the candidate's run
            _call(
                lambda r=run_id: client.log_image(r, image, artifact_file=f"{name}.png"),
                "logging the comparison image",
            )
        done.append(run_id)
    return done


def log_report(report: Report) -> list[str]:
    """Log an evaluation: the model version's gain tag and benchmark table, metrics on its run(s).

    The version gets ``bench_psnr_gain`` as a tag and the scores against bicubic in its
    description (MLflow model versions hold no metrics); the ``bench_*`` keys are metrics of
    the version's source run and of the active run, if any, so the UI's compare view lines runs
    up. Also logs the JSON report and a bicubic | model | ground truth image to the source run.

    Returns:
        What was written to, for printing.
    """
    where = []
    if report.version:
        client = _client()
        for key, value in _metric_tags(report).items():
            _call(
                lambda k=key, v=value: client.set_model_version_tag(
                    MODEL_NAME, report.version, k, v
                ),
                "tagging the version",
            )
        card = version_card.update(
            _get_version(report.version).description,
            Benchmark=_benchmark_section(report),
            history=f"evaluated on benchmark `{report.benchmark_version}` (no decision): "
            f"{report.metrics['bench_psnr_gain']:+.2f} dB over bicubic",
            time=report.created,
        )
        _call(
            lambda: client.update_model_version(MODEL_NAME, report.version, description=card),
            "describing the version",
        )
        where.append(f"version {report.version} (tag, description)")
    runs = _log_run_facts(report, comparison(report) if report.sample else None)
    where += [f"run {r} (metrics)" for r in runs]
    return where


def evaluate_and_log(
    model: str,
    *,
    sources: Sequence[str | Path] | None = None,
    cfg: BenchmarkConfig = BenchmarkConfig(),
    log: bool | None = None,
) -> tuple[Report, list[str]]:
    """`videoboost evaluate`: score ``model``, then log it (see :func:`log_report`).

    Args:
        log: True = log, False = never; None = log only scores on the default benchmark, so
            the ``bench_*`` keys in the UI always mean the same frames.

    Returns:
        ``(report, where it was logged)``.
    """
    report, _ = evaluate_version(model, sources=sources, cfg=cfg)
    if log is None:
        log = sources is None or [Path(s) for s in sources] == list(DEFAULT_SOURCES)
        if not log:
            report.notes.append("not logged to MLflow: custom --videos benchmark (pass --log)")
    if not log or (report.version is None and _mlflow().active_run() is None):
        return report, []
    setup()
    return report, log_report(report)
