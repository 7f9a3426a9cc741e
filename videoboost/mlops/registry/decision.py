"""The decision, pure: the promotion rules on two models' scores, and the record of a decision.

Nothing here reads or writes the store: :func:`decide` takes ``bench_*`` metrics and returns
what to do, :class:`Decision` holds what was decided and renders it (tags, card sections,
summary). The store side is in :mod:`videoboost.mlops.registry.promotion`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from videoboost.config import PromoteConfig
from videoboost.evaluation.benchmark import METRIC_KEYS, Report, track_key, tracks_of
from videoboost.mlops import version_card
from videoboost.mlops.tracking import CHALLENGER, CHAMPION


def champion_alias(scale: int) -> str:
    """``champion-x4`` for scale 4."""
    return f"{CHAMPION}-x{scale}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
