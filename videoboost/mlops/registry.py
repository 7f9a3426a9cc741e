"""The promotion gate: evaluation results in the MLflow registry, ``champion`` aliases, rollback.

MLflow at the edge, like :mod:`videoboost.mlops.tracking` (MLflow is imported through it, lazily).
The scores come from :mod:`videoboost.evaluation.benchmark`.

Aliases of ``videoboost-generator``:

* ``champion-x{s}``: the champion of scale ``s``, one per scale; ``champion``: the champion of
  ``PromoteConfig.default_scale`` (it always equals ``champion-x{default}``). What users get.
* ``challenger``: the last candidate that passed the bicubic floor but lost to the champion.

Registered-model tag ``champion_history``: ``{"4": ["1", "3"], ...}``, the previous champions
of each scale, newest last; :func:`promote` pushes, :func:`rollback` pops.

A version carries few tags: ``tier``, ``scale``, ``dataset_version`` (from registration),
``decision`` (the last decision about it: ``promoted``, ``rejected``, ``rolled_back``,
``restored``) and ``bench_psnr_gain`` (its held-out gain over bicubic, read by the bento and the
service). Everything else is in its description, a Markdown card (:mod:`videoboost.mlops.version_card`)
rewritten in the same transaction as the aliases: the decision and its reason, the benchmark
table against bicubic and the champion, the training lineage, a dated status line and history.
Alias state is never copied into tags: the aliases themselves are the record. Each decision is
also appended to ``evaluation.json`` on the version's training run, next to the benchmark reports
(``benchmark/<bench>_v<N>.json``) and comparison images.

Safety: both models are evaluated before anything is written; the aliases are re-read right
before they move and the move is refused (:class:`~videoboost.errors.PromotionConflict`) if
another promotion changed them meanwhile; a failed write restores every tag and alias that was
already written, so an error leaves the registry as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from videoboost.config import BenchmarkConfig, PromoteConfig
from videoboost.errors import (
    BenchmarkLeak,
    ModelNotFound,
    PromotionConflict,
    StoreUnavailable,
    VideoBoostError,
)
from videoboost.evaluation.benchmark import (
    DEFAULT_SOURCES,
    METRIC_KEYS,
    Benchmark,
    Report,
    build_benchmark,
    comparison,
    evaluate_keras,
    track_key,
    tracks_of,
)
from videoboost.inference.engine import set_tf_threads
from videoboost.mlops import version_card
from videoboost.mlops.tracking import (
    CHALLENGER,
    CHAMPION,
    EVALUATION_JSON,
    MODEL_NAME,
    _mlflow,
    load_generator,
    setup,
    with_store_retries,
)

HISTORY_TAG = "champion_history"
HISTORY_LIMIT = 50
VERSION_TAGS = ("decision", "bench_psnr_gain")  # written by decisions, beside tracking's

T = TypeVar("T")


def champion_alias(scale: int) -> str:
    """``champion-x4`` for scale 4."""
    return f"{CHAMPION}-x{scale}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _client():
    # Artifact progress bars (leak check, model loading) would bury the decision in stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return _mlflow().MlflowClient()


def _call(fn: Callable[[], T], what: str) -> T:
    return with_store_retries(fn, what)


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


# --------------------------------------------------------------------------- registry reads


def aliases() -> dict[str, str]:
    """``{alias: version}`` of the registered model (empty when it is not registered yet)."""
    client = _client()

    def read() -> dict[str, str]:
        try:
            model = client.get_registered_model(MODEL_NAME)
        except Exception as exc:
            if _is_missing(exc):
                return {}
            raise
        return {alias: str(version) for alias, version in model.aliases.items()}

    return _call(read, "reading the aliases")


def _model_tags() -> dict[str, str]:
    client = _client()
    return _call(lambda: dict(client.get_registered_model(MODEL_NAME).tags), "reading model tags")


def history() -> dict[str, list[str]]:
    """Previous champions per scale, ``{"4": ["1", "3"]}`` (newest last)."""
    raw = _model_tags().get(HISTORY_TAG)
    return json.loads(raw) if raw else {}


def _get_version(version: str):
    client = _client()

    def read():
        try:
            return client.get_model_version(MODEL_NAME, str(version))
        except Exception as exc:
            if _is_missing(exc):
                raise ModelNotFound(
                    f"{MODEL_NAME} has no version {version}; list them in the MLflow UI or train "
                    "one with `videoboost train`"
                ) from exc
            raise

    return _call(read, f"reading version {version}")


def newest_version() -> str:
    """The highest version number of the registered model."""
    client = _client()
    versions = _call(
        lambda: client.search_model_versions(f"name='{MODEL_NAME}'"), "listing the versions"
    )
    if not versions:
        raise ModelNotFound(
            f"no version of {MODEL_NAME} is registered yet; train one with `videoboost train`"
        )
    return str(max(int(v.version) for v in versions))


def _version_scale(version: str) -> int:
    """A version's scale: its ``scale`` tag, else measured on the loaded model."""
    tag = _get_version(version).tags.get("scale")
    if tag and tag.isdigit():
        return int(tag)
    return load_generator(f"models:/{MODEL_NAME}/{version}")[1]["scale"]


# --------------------------------------------------------------------------- evaluation


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


def _metric_tags(report: Report) -> dict[str, str]:
    """The one score kept as a version tag (the bento's labels and the service read it)."""
    return {"bench_psnr_gain": f"{report.metrics['bench_psnr_gain']:.4f}"}


def _benchmark_section(
    report: Report, champion: Report | None = None, champion_version: str | None = None
) -> str:
    return version_card.benchmark_table(
        report.metrics,
        version=report.version or "?",
        benchmark=report.benchmark,
        time=report.created,
        champion=champion.metrics if champion else None,
        champion_version=champion_version,
    )


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


# --------------------------------------------------------------------------- decisions


def decide(
    candidate: dict[str, float], champion: dict[str, float] | None, cfg: PromoteConfig
) -> tuple[bool, str, bool]:
    """The promotion rules, on ``bench_*`` metrics of the same benchmark.

    1. ``bench_psnr_gain`` (the clean track) >= ``cfg.min_gain_db`` (the bicubic floor);
    2. no champion: promote;
    3. PSNR averaged over the tracks not worse than the champion's by more than
       ``cfg.tolerance_db``;
    4. no single track worse than the champion's by more than ``cfg.track_tolerance_db`` (a
       win on the mean must not hide a regression on one kind of input);
    5. the primary metric beats the champion's by ``cfg.margin`` (and strictly).

    Metrics without tracks (an older report) count as one clean track.

    Returns:
        ``(promote, reason, challenger)``: challenger is True for a candidate that passed the
        floor but lost to the champion.
    """
    gain = candidate["bench_psnr_gain"]
    if gain < cfg.min_gain_db:
        return (
            False,
            f"below the bicubic floor: gain {gain:+.3f} dB < {cfg.min_gain_db:+.3f} dB",
            False,
        )
    if champion is None:
        return True, f"first champion: gain {gain:+.3f} dB over bicubic passes the floor", False
    tracks = [t for t in tracks_of(candidate) if t in tracks_of(champion)] or ["clean"]
    deltas = {
        t: candidate[track_key("bench_psnr", t)] - champion[track_key("bench_psnr", t)]
        for t in tracks
    }
    d_psnr = sum(deltas.values()) / len(deltas)
    over = f" over {len(tracks)} tracks" if len(tracks) > 1 else ""
    if d_psnr < -cfg.tolerance_db:
        return (
            False,
            f"PSNR {d_psnr:+.3f} dB vs the champion{over}, worse than the tolerance of "
            f"{cfg.tolerance_db:.3f} dB",
            True,
        )
    worst = min(deltas, key=deltas.get)
    if deltas[worst] < -cfg.track_tolerance_db:
        return (
            False,
            f"loses {deltas[worst]:+.3f} dB to the champion on the {worst} track, more than "
            f"the per-track tolerance of {cfg.track_tolerance_db:.3f} dB (mean {d_psnr:+.3f} dB)",
            True,
        )
    key = cfg.primary_metric
    if key == "bench_psnr_mean" and (key not in candidate or key not in champion):
        key = "bench_psnr"  # reports from before the tracks
    delta = d_psnr if key == "bench_psnr_mean" else candidate[key] - champion[key]
    if delta <= 0 or delta < cfg.margin:
        return (
            False,
            f"does not beat the champion on {key}: {delta:+.4f} (margin {cfg.margin:.4f})",
            True,
        )
    per_track = ", ".join(f"{t} {d:+.2f}" for t, d in deltas.items()) if len(deltas) > 1 else ""
    return (
        True,
        f"beats the champion on {key} by {delta:+.4f} (margin {cfg.margin:.4f}); "
        f"PSNR {d_psnr:+.3f} dB{over}"
        + (f" ({per_track})" if per_track else "")
        + f", gain {gain:+.3f} dB over bicubic",
        False,
    )


@dataclass
class Decision:
    """What :func:`promote` or :func:`rollback` decided, and the registry state it relied on.

    Attributes:
        decision: ``promoted``, ``rejected``, ``unchanged`` (already the champion) or
            ``rolled_back``.
        reason: one sentence.
        candidate: the version decided on (for a rollback: the demoted champion).
        scale: the candidate's scale.
        champion: the champion it was compared with (for a rollback: the restored version).
        moves: aliases that move to ``target`` when applied.
        target: the version the ``moves`` aliases point to afterwards.
        challenger: the candidate gets the ``challenger`` alias.
        expected: ``{alias: version or None}`` as read before deciding; applying refuses if
            any of them changed.
        reports: candidate (and champion) reports.
    """

    decision: str
    reason: str
    candidate: str
    scale: int
    champion: str | None = None
    moves: list[str] = field(default_factory=list)
    target: str | None = None
    challenger: bool = False
    expected: dict[str, str | None] = field(default_factory=dict)
    candidate_report: Report | None = None
    champion_report: Report | None = None
    time: str = field(default_factory=_now)
    applied: bool = False

    @property
    def benchmark(self) -> str:
        return self.candidate_report.benchmark_version if self.candidate_report else ""

    def tags(self) -> dict[str, str]:
        """The tags written on the candidate version (the rest is in its description)."""
        tags = {"decision": self.decision}
        if self.candidate_report is not None:
            tags.update(_metric_tags(self.candidate_report))
        return tags

    def record(self) -> dict[str, Any]:
        """The decision for ``evaluation.json`` and ``--json``: reason, time, both models'
        scores, and the aliases it moved."""
        cand = self.candidate_report.metrics if self.candidate_report else {}
        champ = self.champion_report.metrics if self.champion_report else {}
        return {
            "decision": self.decision,
            "reason": self.reason,
            "time": self.time,
            "benchmark": self.benchmark or None,
            "candidate": self.candidate,
            "champion": self.champion,
            "aliases_moved": list(self.moves),
            "alias_target": self.target,
            "challenger": self.challenger,
            "candidate_metrics": {k: round(v, 4) for k, v in cand.items()},
            "champion_metrics": {k: round(v, 4) for k, v in champ.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.record(),
            "scale": self.scale,
            "applied": self.applied,
            "candidate_report": self.candidate_report.to_dict() if self.candidate_report else None,
            "champion_report": self.champion_report.to_dict() if self.champion_report else None,
        }

    def card_sections(self) -> dict[str, str]:
        """The candidate's description sections this decision rewrites (Status, Decision,
        Benchmark), each stating its time: the card never claims more than was decided."""
        when = version_card.pretty_time(self.time)
        aliases = ", ".join(f"`{a}`" for a in self.moves)
        if self.decision == "promoted":
            status = f"{when}: champion ({aliases}) by the decision below."
            after = f" It took {aliases}" + (
                f" from version {self.champion}." if self.champion else "."
            )
        elif self.challenger:
            status = (
                f"{when}: `{CHALLENGER}`: passed the bicubic floor, lost to champion "
                f"version {self.champion}."
            )
            after = f" Version {self.champion} stayed champion; this one became `{CHALLENGER}`."
        else:
            status = f"{when}: rejected; given no alias."
            after = f" Version {self.champion} stayed champion." if self.champion else ""
        sections = {
            "Status": status,
            "Decision": f"**{self.decision.upper()}** {when}: {self.reason}.{after}",
        }
        if self.candidate_report is not None:
            sections["Benchmark"] = _benchmark_section(
                self.candidate_report, self.champion_report, self.champion
            )
        return sections

    def summary(self) -> str:
        """Decision, reason and the two models' scores side by side, for the terminal."""
        head = {
            "promoted": f"PROMOTED: version {self.candidate} -> {', '.join(self.moves)}",
            "rejected": f"REJECTED: version {self.candidate} stays out of "
            f"{champion_alias(self.scale)}"
            + (f" (champion: version {self.champion})" if self.champion else "")
            + (
                f"; it {'gets' if self.applied else 'would get'} the {CHALLENGER} alias"
                if self.challenger
                else ""
            ),
            "unchanged": f"UNCHANGED: version {self.candidate} already is "
            f"{champion_alias(self.scale)}",
            "rolled_back": f"ROLLED BACK: {', '.join(self.moves)} moved from version "
            f"{self.candidate} back to version {self.target}",
        }[self.decision]
        lines = [head, f"  reason: {self.reason}"]
        if self.candidate_report:
            lines.append(f"  benchmark: {self.benchmark} (x{self.scale})")
            cand = self.candidate_report.metrics
            champ = self.champion_report.metrics if self.champion_report else {}
            col = f"champion v{self.champion}" if self.champion_report else ""
            lines.append(f"  {'metric':<22} {'candidate v' + self.candidate:>16} {col:>16}")
            keys = [*METRIC_KEYS]
            keys += [track_key("bench_psnr_gain", t) for t in tracks_of(cand) if t != "clean"]
            keys += ["bench_psnr_gain_mean"]
            width = max(22, *(len(k) for k in keys))
            for key in keys:
                if key in cand:
                    other = f"{champ[key]:.4f}" if key in champ else ""
                    lines.append(f"  {key:<{width}} {cand[key]:>16.4f} {other:>16}")
        for report in (self.candidate_report, self.champion_report):
            lines += [f"  note: {n}" for n in (report.notes if report else [])]
        if not self.applied and self.decision != "rolled_back":
            lines.append("  (dry run: nothing written)")
        return "\n".join(line.rstrip() for line in lines)


def plan_promotion(
    version: str | int | None = None,
    cfg: PromoteConfig = PromoteConfig(),
    *,
    sources: Sequence[str | Path] | None = None,
    bench_cfg: BenchmarkConfig = BenchmarkConfig(),
) -> Decision:
    """Evaluate the candidate and the champion of its scale on one benchmark and decide.

    Reads only: nothing is written (see :func:`apply`).

    Raises:
        ModelNotFound, StoreUnavailable, SourceError, BenchmarkLeak: nothing was decided.
    """
    setup()
    set_tf_threads(bench_cfg.threads)  # before loading: TF fixes its thread pools on first use
    candidate = str(version) if version is not None else newest_version()
    _get_version(candidate)
    current = aliases()
    generator, info = load_generator(f"models:/{MODEL_NAME}/{candidate}")
    scale = info["scale"]
    alias = champion_alias(scale)
    moves = [alias] + ([CHAMPION] if scale == cfg.default_scale else [])
    expected = {a: current.get(a) for a in (*moves, CHALLENGER)}
    champ = current.get(alias)
    if champ is None and scale == cfg.default_scale:
        champ = current.get(CHAMPION)  # a registry that only ever had the plain alias
    # `champion` must never end up on a model of another scale than the one it holds.
    plain = current.get(CHAMPION)
    if CHAMPION in moves and plain and plain != champ and _version_scale(plain) != scale:
        return Decision(
            "rejected",
            f"`{CHAMPION}` holds version {plain} of another scale; refusing to replace it "
            f"with a x{scale} model (set {champion_alias(scale)} by hand or change "
            "PromoteConfig.default_scale)",
            candidate,
            scale,
            champion=plain,
            expected=expected,
        )
    if champ == candidate:
        # A promotion cut off between its alias moves (kill -9, store down): finish it.
        behind = [a for a in moves if current.get(a) != candidate]
        reason = f"version {candidate} already is {alias}"
        if behind:
            reason += f"; completing its interrupted promotion: {', '.join(behind)} moved to it"
        return Decision(
            "unchanged",
            reason,
            candidate,
            scale,
            champion=champ,
            moves=behind,
            target=candidate if behind else None,
            expected=expected,
        )

    bench = build_benchmark(scale, sources, bench_cfg)
    notes = _leak_notes(candidate, bench)
    cand_report = evaluate_keras(
        generator, bench, bench_cfg, model=f"models:/{MODEL_NAME}/{candidate}", version=candidate
    )
    cand_report.notes += notes
    del generator
    champ_report = None
    if champ is not None:
        champ_gen, champ_info = load_generator(f"models:/{MODEL_NAME}/{champ}")
        if champ_info["scale"] != scale:
            return Decision(
                "rejected",
                f"{alias} holds version {champ}, a x{champ_info['scale']} model; refusing to "
                "compare models of different scales (fix the alias by hand)",
                candidate,
                scale,
                champion=champ,
                expected=expected,
                candidate_report=cand_report,
            )
        champ_report = evaluate_keras(
            champ_gen, bench, bench_cfg, model=f"models:/{MODEL_NAME}/{champ}", version=champ
        )
    ok, reason, challenger = decide(
        cand_report.metrics, champ_report.metrics if champ_report else None, cfg
    )
    return Decision(
        "promoted" if ok else "rejected",
        reason,
        candidate,
        scale,
        champion=champ,
        moves=moves if ok else [],
        target=candidate if ok else None,
        challenger=challenger,
        expected=expected,
        candidate_report=cand_report,
        champion_report=champ_report,
    )


class _Undo:
    """Remembers the previous value of every tag and alias written, to restore them on error."""

    def __init__(self) -> None:
        self.client = _client()
        self.steps: list[Callable[[], None]] = []

    def version_tag(self, version: str, key: str, value: str) -> None:
        c = self.client
        old = _get_version(version).tags.get(key)
        _call(lambda: c.set_model_version_tag(MODEL_NAME, version, key, value), "tagging")
        if old is None:
            self.steps.append(lambda: c.delete_model_version_tag(MODEL_NAME, version, key))
        else:
            self.steps.append(lambda: c.set_model_version_tag(MODEL_NAME, version, key, old))

    def description(self, version: str, text: str) -> None:
        c = self.client
        old = _get_version(version).description or ""
        _call(
            lambda: c.update_model_version(MODEL_NAME, version, description=text),
            "describing the version",
        )
        self.steps.append(lambda: c.update_model_version(MODEL_NAME, version, description=old))

    def card(self, version: str, *, history: str, time: str, **sections: str) -> None:
        """Rewrite ``sections`` of the version's description and add a history line."""
        text = _get_version(version).description
        self.description(version, version_card.update(text, history=history, time=time, **sections))

    def model_tag(self, key: str, value: str) -> None:
        c = self.client
        old = _model_tags().get(key)
        _call(lambda: c.set_registered_model_tag(MODEL_NAME, key, value), "tagging the model")
        if old is None:
            self.steps.append(lambda: c.delete_registered_model_tag(MODEL_NAME, key))
        else:
            self.steps.append(lambda: c.set_registered_model_tag(MODEL_NAME, key, old))

    def alias(self, name: str, version: str | None, old: str | None) -> None:
        c = self.client
        if version is None:
            _call(lambda: c.delete_registered_model_alias(MODEL_NAME, name), "deleting an alias")
        else:
            _call(
                lambda: c.set_registered_model_alias(MODEL_NAME, name, version), "moving an alias"
            )
        if old is None:
            self.steps.append(lambda: c.delete_registered_model_alias(MODEL_NAME, name))
        else:
            self.steps.append(lambda: c.set_registered_model_alias(MODEL_NAME, name, old))

    def rollback(self) -> list[str]:
        """Undo in reverse order; returns what could not be undone.

        Stops at the first undo that fails (the store is down): the registry is then left in
        a state the forward writes already passed through, never a mix of old and new that
        no promotion would write. Every such state keeps a champion no worse than before, and
        the next ``promote`` completes or repeats the decision.
        """
        for done, step in enumerate(reversed(self.steps)):
            try:
                with_store_retries(step, "restoring the registry")
            except Exception as exc:
                left = len(self.steps) - done
                return [f"{exc} ({left} write(s) of this decision are still in place)"]
        return []


def _check_unchanged(expected: dict[str, str | None]) -> None:
    now = aliases()
    changed = {a: (v, now.get(a)) for a, v in expected.items() if now.get(a) != v}
    if changed:
        what = "; ".join(
            f"{a}: {old or 'unset'} -> {new or 'unset'}" for a, (old, new) in changed.items()
        )
        raise PromotionConflict(
            f"the registry changed while deciding ({what}), probably another promotion; "
            "nothing was changed, run the command again"
        )


def _transaction(write: Callable[[_Undo], None], moved: dict[str, str | None]) -> None:
    """Run ``write``; on any error restore what it wrote and re-raise.

    Afterwards, check that every alias in ``moved`` holds its new value (a concurrent writer
    between the re-read and the move would show here).
    """
    undo = _Undo()
    try:
        write(undo)
    except Exception as exc:
        failed = undo.rollback()
        extra = (
            f"; could not restore: {'; '.join(failed)}; the champion is unchanged or the "
            "candidate; once the store is back, run the same command again to finish"
            if failed
            else "; registry restored"
        )
        if isinstance(exc, VideoBoostError):
            exc.args = (f"{exc}{extra}",)
            raise
        raise StoreUnavailable(f"writing the decision failed: {exc}{extra}") from exc
    now = aliases()
    lost = {a: now.get(a) for a, v in moved.items() if now.get(a) != v}
    if lost:
        raise PromotionConflict(
            "another promotion moved aliases at the same time: "
            + ", ".join(f"{a} now -> {v or 'unset'}" for a, v in lost.items())
            + "; check the aliases in the MLflow UI and run promote again"
        )


def apply(decision: Decision, *, log_runs: bool = True) -> Decision:
    """Write a planned decision: tags, history, aliases. All or nothing.

    Raises:
        PromotionConflict: an alias the decision relies on changed since it was planned.
        StoreUnavailable: a write failed (what was written is restored).
    """
    if decision.decision == "unchanged":  # nothing was evaluated or decided: keep its record
        if decision.moves:  # only the aliases an interrupted promotion did not move yet
            setup()
            _check_unchanged(decision.expected)
            moved = {a: decision.candidate for a in decision.moves}

            def finish(undo: _Undo) -> None:
                for a in decision.moves:
                    undo.alias(a, decision.candidate, decision.expected.get(a))

            _transaction(finish, moved)
        decision.applied = True
        return decision
    setup()
    report = decision.candidate_report
    if log_runs and report is not None:
        champ = decision.champion_report
        extra = [(f"champion v{decision.champion}", champ.sample["sr"])] if champ else []
        label = f"candidate v{decision.candidate}"
        _log_run_facts(report, comparison(report, *extra, label=label))
    _check_unchanged(decision.expected)
    moved: dict[str, str | None] = {}

    when, cand = decision.time, decision.candidate

    def write(undo: _Undo) -> None:
        for key, value in decision.tags().items():
            undo.version_tag(cand, key, value)
        undo.card(
            cand,
            history=f"{decision.decision}: {decision.reason}",
            time=when,
            **decision.card_sections(),
        )
        old_challenger = decision.expected.get(CHALLENGER)
        if decision.decision == "promoted" and decision.champion not in (None, cand):
            taken = ", ".join(f"`{a}`" for a in decision.moves)
            undo.card(
                decision.champion,
                Status=f"{version_card.pretty_time(when)}: no longer champion: version {cand} "
                f"took {taken}.",
                history=f"replaced as champion by version {cand}",
                time=when,
            )
        elif decision.challenger and old_challenger not in (None, cand):
            undo.card(
                old_challenger,
                Status=f"{version_card.pretty_time(when)}: no longer `{CHALLENGER}`: the alias "
                f"moved to version {cand}.",
                history=f"`{CHALLENGER}` alias moved to version {cand}",
                time=when,
            )
        if decision.decision == "promoted":
            if decision.champion is not None:
                hist = history()
                past = hist.setdefault(str(decision.scale), [])
                if past[-1:] != [decision.champion]:  # a repeated, interrupted promotion
                    past.append(decision.champion)
                hist[str(decision.scale)] = past[-HISTORY_LIMIT:]
                undo.model_tag(HISTORY_TAG, json.dumps(hist))
            for alias in decision.moves:
                undo.alias(alias, decision.candidate, decision.expected.get(alias))
                moved[alias] = decision.candidate
            if decision.expected.get(CHALLENGER) == decision.candidate:
                undo.alias(CHALLENGER, None, decision.candidate)
                moved[CHALLENGER] = None
        elif decision.challenger:
            undo.alias(CHALLENGER, decision.candidate, decision.expected.get(CHALLENGER))
            moved[CHALLENGER] = decision.candidate

    _transaction(write, moved)
    decision.applied = True
    _record_on_run(cand, decision)
    return decision


def _record_on_run(version: str, decision: Decision) -> None:
    """Append the decision to ``evaluation.json`` on the version's run (after the registry
    write: the file follows the registry, never leads it). A failure here only warns."""
    import warnings

    client = _client()
    try:
        run_id = _get_version(version).run_id
        if not run_id:
            return
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = client.download_artifacts(run_id, EVALUATION_JSON, tmp)
                data = json.loads(Path(path).read_text())
            except Exception:  # a version registered outside `videoboost train`
                data = {"model": MODEL_NAME, "version": version, "run_id": run_id}
        data.setdefault("decisions", []).append(decision.record())
        _call(lambda: client.log_dict(run_id, data, EVALUATION_JSON), "logging the decision")
    except Exception as exc:
        warnings.warn(
            f"decision on version {version} written to the registry, but not to its run's "
            f"{EVALUATION_JSON}: {exc}",
            stacklevel=2,
        )


def promote(
    version: str | int | None = None,
    cfg: PromoteConfig = PromoteConfig(),
    *,
    sources: Sequence[str | Path] | None = None,
    bench_cfg: BenchmarkConfig = BenchmarkConfig(),
    dry_run: bool = False,
) -> Decision:
    """Evaluate ``version`` (default: the newest) against its scale's champion; move aliases.

    See :func:`decide` for the rules and the module docstring for what is written.
    """
    decision = plan_promotion(version, cfg, sources=sources, bench_cfg=bench_cfg)
    return decision if dry_run else apply(decision)


def rollback(scale: int | None = None, cfg: PromoteConfig = PromoteConfig()) -> Decision:
    """Move ``champion-x{s}`` (and ``champion`` for the default scale) to the previous champion.

    Raises:
        VideoBoostError: no champion, or no previous champion left in the history.
        PromotionConflict: the alias moved while rolling back.
    """
    setup()
    scale = scale or cfg.default_scale
    alias = champion_alias(scale)
    moves = [alias] + ([CHAMPION] if scale == cfg.default_scale else [])
    current = aliases()
    expected = {a: current.get(a) for a in moves}
    demoted = current.get(alias) or (current.get(CHAMPION) if scale == cfg.default_scale else None)
    if demoted is None:
        raise VideoBoostError(f"there is no {alias} to roll back; promote one first")
    hist = history()
    past = list(hist.get(str(scale), []))
    skipped = []
    target = None
    while past:
        candidate = past.pop()
        if candidate == demoted:
            continue
        try:
            _get_version(candidate)
        except ModelNotFound:
            skipped.append(candidate)
            continue
        target = candidate
        break
    if target is None:
        raise VideoBoostError(
            f"no previous {alias} to roll back to (history: {hist.get(str(scale), [])}); "
            f"version {demoted} stays the champion"
        )
    reason = f"rollback: {alias} moved from version {demoted} back to version {target}"
    if skipped:
        reason += f" (skipped deleted versions {', '.join(skipped)})"
    decision = Decision(
        "rolled_back",
        reason,
        demoted,
        scale,
        champion=target,
        moves=moves,
        target=target,
        expected=expected,
    )
    _check_unchanged(expected)
    moved = {a: target for a in moves}

    when = version_card.pretty_time(decision.time)
    aliases_md = ", ".join(f"`{a}`" for a in moves)

    def write(undo: _Undo) -> None:
        # A rollback evaluates nothing: the versions keep their benchmark tables and gain tags.
        undo.version_tag(demoted, "decision", "rolled_back")
        undo.card(
            demoted,
            Status=f"{when}: rolled back: {aliases_md} moved back to version {target}.",
            history=reason,
            time=decision.time,
        )
        undo.version_tag(target, "decision", "restored")
        undo.card(
            target,
            Status=f"{when}: champion again ({aliases_md}), restored by a rollback from "
            f"version {demoted}.",
            history=f"restored: {aliases_md} moved back to it from version {demoted}",
            time=decision.time,
        )
        hist[str(scale)] = past
        undo.model_tag(HISTORY_TAG, json.dumps(hist))
        for a in moves:
            undo.alias(a, target, expected.get(a))

    _transaction(write, moved)
    decision.applied = True
    _record_on_run(demoted, decision)
    return decision


__all__ = [
    "HISTORY_TAG",
    "VERSION_TAGS",
    "Decision",
    "aliases",
    "apply",
    "champion_alias",
    "decide",
    "evaluate_and_log",
    "evaluate_version",
    "history",
    "log_report",
    "newest_version",
    "plan_promotion",
    "promote",
    "rollback",
]
