"""Promotion and rollback: evaluate, decide, then write the decision in one transaction.

:func:`plan_promotion` reads and evaluates (nothing is written), :func:`apply` writes a planned
decision, :func:`promote` does both; :func:`rollback` moves a champion back to the previous one.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from videoboost.config import BenchmarkConfig, PromoteConfig
from videoboost.errors import ModelNotFound, VideoBoostError
from videoboost.evaluation.benchmark import build_benchmark, comparison, evaluate_keras
from videoboost.inference.engine import set_tf_threads
from videoboost.mlops import version_card
from videoboost.mlops.registry.client import HISTORY_LIMIT, HISTORY_TAG, _call, _client
from videoboost.mlops.registry.decision import Decision, champion_alias, decide
from videoboost.mlops.registry.reads import (
    _get_version,
    _version_scale,
    aliases,
    history,
    newest_version,
)
from videoboost.mlops.registry.scoring import _leak_notes, _log_run_facts
from videoboost.mlops.registry.transaction import _check_unchanged, _transaction, _Undo
from videoboost.mlops.tracking import (
    CHALLENGER,
    CHAMPION,
    EVALUATION_JSON,
    MODEL_NAME,
    load_generator,
    setup,
)


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

    See :func:`decide` for the rules and :mod:`videoboost.mlops.registry` for what is written.
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
