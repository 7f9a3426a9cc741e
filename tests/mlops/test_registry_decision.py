"""The promotion rules on their own: scores in, a decision out; no store, no model, no TF.

The rules are :func:`videoboost.mlops.registry.decide`'s (the bicubic floor, no champion yet,
the mean over tracks, the per-track tolerance, the margin on the primary metric); the store
side of a promotion is tested in test_promote.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from videoboost.config import PromoteConfig
from videoboost.mlops.registry import Decision, decide
from videoboost.mlops.registry import decision as decision_module

CFG = PromoteConfig()  # floor 0.5 dB, tolerance 0.1 dB, per track 0.5 dB, margin 0.05
BICUBIC = {"clean": 30.0, "h264_crf23": 28.0, "h264_crf30": 27.0, "jpeg_q50": 27.5}


def scores(**psnr: float) -> dict[str, float]:
    """``bench_*`` metrics as a report logs them, from the PSNR of each track
    (``clean=31.0, h264_crf30=28.0``), each against that track's bicubic in ``BICUBIC``."""
    out: dict[str, float] = {}
    for track, value in psnr.items():
        suffix = "" if track == "clean" else f"_{track}"
        out[f"bench_psnr{suffix}"] = value
        out[f"bench_psnr_bicubic{suffix}"] = BICUBIC[track]
        out[f"bench_psnr_gain{suffix}"] = value - BICUBIC[track]
    if len(psnr) > 1:
        out["bench_psnr_mean"] = sum(psnr.values()) / len(psnr)
        out["bench_psnr_gain_mean"] = sum(psnr.values()) / len(psnr) - sum(
            BICUBIC[t] for t in psnr
        ) / len(psnr)
    return out


def test_below_the_bicubic_floor_is_refused_and_not_a_challenger():
    ok, reason, challenger = decide(scores(clean=30.3), None, CFG)
    assert (ok, challenger) == (False, False)
    assert reason == "below the bicubic floor: gain +0.300 dB < +0.500 dB"
    # The floor comes first: beating a weak champion does not lift a model over it.
    ok, _, challenger = decide(scores(clean=30.3), scores(clean=29.0), CFG)
    assert (ok, challenger) == (False, False)


def test_no_champion_yet_promotes_any_model_over_the_floor():
    ok, reason, challenger = decide(scores(clean=31.0), None, CFG)
    assert (ok, challenger) == (True, False)
    assert reason == "first champion: gain +1.000 dB over bicubic passes the floor"
    # Exactly at the floor passes (the floor is >=).
    assert decide(scores(clean=30.5), None, CFG)[0]


def test_a_better_candidate_is_promoted():
    cand = scores(clean=31.5, h264_crf30=28.5)
    champ = scores(clean=31.2, h264_crf30=28.2)
    ok, reason, challenger = decide(cand, champ, CFG)
    assert (ok, challenger) == (True, False)
    assert reason.startswith("beats the champion on bench_psnr_mean by +0.3000 (margin 0.0500)")
    assert "PSNR +0.300 dB over 2 tracks (clean +0.30, h264_crf30 +0.30)" in reason
    assert reason.endswith("gain +1.500 dB over bicubic")


@pytest.mark.parametrize("delta", [0.03, 0.0, -0.05])
def test_within_the_margin_is_refused_and_becomes_challenger(delta):
    cand = scores(clean=31.0 + delta, h264_crf30=28.0 + delta)
    champ = scores(clean=31.0, h264_crf30=28.0)
    ok, reason, challenger = decide(cand, champ, CFG)
    assert (ok, challenger) == (False, True)
    assert reason.startswith("does not beat the champion on bench_psnr_mean:")
    assert "(margin 0.0500)" in reason


def test_the_margin_is_strict_even_at_zero():
    champ = scores(clean=31.0, h264_crf30=28.0)
    ok, _, challenger = decide(dict(champ), champ, PromoteConfig(margin=0.0))
    assert (ok, challenger) == (False, True)


def test_worse_on_the_mean_than_the_tolerance_is_refused():
    cand = scores(clean=30.8, h264_crf30=27.8)
    champ = scores(clean=31.0, h264_crf30=28.0)
    ok, reason, challenger = decide(cand, champ, CFG)
    assert (ok, challenger) == (False, True)
    assert reason == (
        "PSNR -0.200 dB vs the champion over 2 tracks, worse than the tolerance of 0.100 dB"
    )


def test_worse_on_one_track_is_refused_whatever_the_mean():
    # +1.0 on each coded track, -0.6 on clean: the mean wins by +0.6 dB, clean regresses.
    cand = scores(clean=30.9, h264_crf23=30.0, h264_crf30=29.0, jpeg_q50=29.5)
    champ = scores(clean=31.5, h264_crf23=29.0, h264_crf30=28.0, jpeg_q50=28.5)
    ok, reason, challenger = decide(cand, champ, CFG)
    assert (ok, challenger) == (False, True)
    assert reason.startswith("loses -0.600 dB to the champion on the clean track")
    assert "per-track tolerance of 0.500 dB (mean +0.600 dB)" in reason
    # With a looser per-track tolerance the mean decides.
    assert decide(cand, champ, PromoteConfig(track_tolerance_db=1.0))[0]


def test_only_the_tracks_both_models_have_are_compared():
    # A track the champion was never scored on cannot sink (or lift) the candidate.
    cand = scores(clean=31.3, h264_crf30=20.0)
    champ = scores(clean=31.0)
    ok, reason, _ = decide(cand, champ, CFG)
    assert ok
    assert "on bench_psnr by +0.3000" in reason  # champion has no mean: the clean PSNR
    assert "PSNR +0.300 dB, gain" in reason  # one track compared, no per-track list


def test_other_primary_metrics_compare_their_own_key():
    cand = {**scores(clean=31.0, h264_crf30=28.0), "bench_ssim": 0.91}
    champ = {**scores(clean=31.0, h264_crf30=28.0), "bench_ssim": 0.90}
    ok, reason, _ = decide(cand, champ, PromoteConfig(primary_metric="bench_ssim", margin=0.005))
    assert ok and "on bench_ssim by +0.0100" in reason
    ok, _, challenger = decide(cand, champ, PromoteConfig(primary_metric="bench_ssim"))
    assert (ok, challenger) == (False, True)  # +0.01 is under the default margin of 0.05


def test_a_decision_renders_without_a_store():
    d = Decision("rejected", "below the bicubic floor", "7", 4, champion="3")
    assert d.tags() == {"decision": "rejected"}
    assert d.record()["aliases_moved"] == [] and d.record()["champion"] == "3"
    summary = d.summary()
    assert summary.startswith("REJECTED: version 7 stays out of champion-x4 (champion: version 3)")
    assert summary.endswith("(dry run: nothing written)")


def test_the_decision_module_touches_no_store():
    # Pure by construction: it imports none of the registry's store modules.
    tree = ast.parse(Path(decision_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    store = {f"videoboost.mlops.registry.{m}" for m in ("client", "reads", "transaction")}
    assert not imported & (store | {"mlflow"})
