"""The promotion gate on a real MLflow SQLite store with tiny real generators (no mocks)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import toys
from media import write_clip

from videoboost.cli import main
from videoboost.config import BenchmarkConfig, PromoteConfig
from videoboost.errors import BenchmarkLeak, ModelNotFound, PromotionConflict
from videoboost.evaluation.benchmark import METRIC_KEYS
from videoboost.mlops import registry
from videoboost.mlops.tracking import EVALUATION_JSON, MODEL_NAME, setup
from videoboost.mlops.version_card import parse, pretty_time

# Throughput is skipped except where a test checks the full set of keys.
BENCH = BenchmarkConfig(frames=3, fps_runs=0)
BENCH_FPS = BenchmarkConfig(frames=3, fps_warmup=1, fps_runs=1)
# The gate's decisions and registry writes are the same whatever the tracks: tests of those
# score the clean track only (a fifth of the scoring); the tests of the tracks and the
# per-track card table score every track (BENCH, BENCH_FPS, and the CLI's defaults).
CLEAN = BENCH.model_copy(update={"tracks": ("clean",)})


@pytest.fixture
def store(clean_environ):
    toys.fresh_store(clean_environ)
    setup()
    return clean_environ


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "bench.avi", n=4, h=48, w=64, seed=3)


def _client():
    import mlflow

    return mlflow.MlflowClient()


def _tags(version: str) -> dict[str, str]:
    return dict(_client().get_model_version(MODEL_NAME, version).tags)


def _description(version: str) -> str:
    return _client().get_model_version(MODEL_NAME, version).description or ""


def _evaluation_json(version: str) -> dict:
    run_id = _client().get_model_version(MODEL_NAME, version).run_id
    with tempfile.TemporaryDirectory() as tmp:
        path = _client().download_artifacts(run_id, EVALUATION_JSON, tmp)
        return json.loads(Path(path).read_text())


def _promote(version, clip, bench=CLEAN, **cfg):
    return registry.promote(version, PromoteConfig(**cfg), sources=[clip], bench_cfg=bench)


def test_first_passing_model_becomes_champion_and_a_better_one_replaces_it(store, clip):
    good = toys.register(toys.generator(0.5))
    first = _promote(good, clip)
    assert first.decision == "promoted" and first.champion is None
    assert "first champion" in first.reason
    assert registry.aliases() == {"champion": good, "champion-x4": good}

    best = toys.register(toys.generator(1.0))
    second = _promote(None, clip, bench=BENCH_FPS)  # default: the newest version
    assert second.candidate == best and second.decision == "promoted"
    assert registry.aliases() == {"champion": best, "champion-x4": best}
    assert registry.history() == {"4": [good]}

    tags = _tags(best)
    assert tags == {
        "scale": "4",
        "decision": "promoted",
        "bench_psnr_gain": f"{second.candidate_report.metrics['bench_psnr_gain']:.4f}",
    }
    text = _description(best)
    assert f"**PROMOTED** {pretty_time(second.time)}" in text and second.reason in text
    assert f"`{second.benchmark}`" in text and f"| champion v{good} |" in text
    assert f"from version {good}" in text
    cand, champ = second.candidate_report.metrics, second.champion_report.metrics
    assert cand["bench_psnr"] > champ["bench_psnr"] + 0.05
    assert set(cand) == set(champ) and set(METRIC_KEYS) <= set(cand)
    # Both were scored on every track; the card's per-track table shows them side by side.
    assert {f"bench_psnr_gain_{t}" for t in BENCH_FPS.tracks[1:]} <= set(cand)
    assert "| | clean | H.264 CRF 23 | H.264 CRF 30 | JPEG q50 | video clips (CRF 23) |" in text
    assert f"| **vs champion v{good}** |" in text
    # The replaced champion's card says so, dated; its own promotion stays on record.
    old = _description(good)
    assert f"no longer champion: version {best}" in old and "**PROMOTED**" in old
    # The candidate's run: the same keys as metrics, the report and the comparison image.
    run_id = _client().get_model_version(MODEL_NAME, best).run_id
    run = _client().get_run(run_id)
    assert set(METRIC_KEYS) <= set(run.data.metrics)
    files = [f.path for f in _client().list_artifacts(run_id, "benchmark")]
    assert f"benchmark/{second.benchmark}_v{best}.png" in files
    assert f"benchmark/{second.benchmark}_v{best}.json" in files
    printed = second.summary()
    assert printed.startswith("PROMOTED") and f"champion v{good}" in printed


def test_worse_model_is_rejected_and_becomes_challenger(store, clip):
    best = toys.register(toys.generator(1.0))
    _promote(best, clip)
    good = toys.register(toys.generator(0.5))
    decision = _promote(good, clip)
    assert decision.decision == "rejected" and decision.challenger
    assert registry.aliases() == {"champion": best, "champion-x4": best, "challenger": good}
    assert _tags(good)["decision"] == "rejected"
    text = _description(good)
    assert "**REJECTED**" in text and "tolerance" in text and f"| champion v{best} |" in text
    assert f"`challenger`: passed the bicubic floor, lost to champion version {best}" in text
    assert registry.history() == {}
    # The next challenger takes the alias: the card of the one before says it lost it.
    third = toys.register(toys.generator(0.6))
    assert _promote(third, clip).challenger
    assert registry.aliases()["challenger"] == third
    assert f"no longer `challenger`: the alias moved to version {third}" in _description(good)


def test_model_below_the_bicubic_floor_is_refused(store, clip):
    bicubic = toys.register(toys.generator(0.0))
    decision = _promote(bicubic, clip)
    assert decision.decision == "rejected" and not decision.challenger
    assert "bicubic floor" in decision.reason
    assert registry.aliases() == {}
    assert _tags(bicubic)["decision"] == "rejected"
    # The floor is configurable: at -1 dB the same model would pass (dry run: nothing written).
    assert (
        registry.plan_promotion(
            bicubic, PromoteConfig(min_gain_db=-1.0), sources=[clip], bench_cfg=CLEAN
        ).decision
        == "promoted"
    )
    assert registry.aliases() == {}


def test_margin_decides_between_close_models(store, clip):
    best = toys.register(toys.generator(1.0))
    _promote(best, clip)
    same = toys.register(toys.generator(1.0))
    decision = _promote(same, clip, margin=0.05)
    assert decision.decision == "rejected" and "margin" in decision.reason
    assert registry.aliases()["champion"] == best
    assert _promote(same, clip).decision == "rejected"  # a tie never wins


def test_rollback_restores_the_previous_champion(store, clip, capsys):
    good = toys.register(toys.generator(0.5))
    _promote(good, clip)
    best = toys.register(toys.generator(1.0))
    _promote(best, clip)

    assert main(["rollback"]) == 0
    assert "ROLLED BACK" in capsys.readouterr().out
    assert registry.aliases() == {"champion": good, "champion-x4": good}
    assert registry.history() == {"4": []}
    assert _tags(best)["decision"] == "rolled_back" and _tags(good)["decision"] == "restored"
    demoted, restored = _description(best), _description(good)
    assert f"rolled back: `champion-x4`, `champion` moved back to version {good}" in demoted
    again = "champion again (`champion-x4`, `champion`), restored by a rollback from version"
    assert f"{again} {best}" in restored
    # The promotion's record survives: its table, and both decisions in the card's history
    # and in the run's evaluation.json.
    assert "**PROMOTED**" in demoted and "| bicubic |" in demoted
    history = parse(demoted)["History"]
    assert history.index("promoted:") < history.index("rollback:")
    log = _evaluation_json(best)["decisions"]
    assert [e["decision"] for e in log] == ["promoted", "rolled_back"]
    assert log[0]["candidate_metrics"]["bench_psnr"] > 0

    assert main(["rollback"]) == 1  # nothing older: an error, aliases untouched
    assert "no previous champion-x4" in capsys.readouterr().err
    assert registry.aliases() == {"champion": good, "champion-x4": good}


def _artifact_dir(version: str) -> Path:
    client = _client()
    source = client.get_model_version(MODEL_NAME, version).source  # models:/m-<id>
    logged = client.get_logged_model(source.removeprefix("models:/"))
    return Path(urlparse(logged.artifact_location).path)


def test_an_evaluation_error_leaves_the_registry_untouched(store, clip):
    good = toys.register(toys.generator(0.5))
    _promote(good, clip)
    best = toys.register(toys.generator(1.0))
    before = (registry.aliases(), _tags(best), _tags(good), registry.history())
    shutil.rmtree(_artifact_dir(good))  # the champion can no longer be loaded

    with pytest.raises(ModelNotFound):
        _promote(best, clip)
    assert (registry.aliases(), _tags(best), _tags(good), registry.history()) == before
    assert "decision" not in _tags(best)


def test_a_concurrent_alias_change_is_refused(store, clip):
    good = toys.register(toys.generator(0.5))
    _promote(good, clip)
    best = toys.register(toys.generator(1.0))
    plan = registry.plan_promotion(best, sources=[clip], bench_cfg=CLEAN)
    assert plan.decision == "promoted"
    # Meanwhile another promotion moves the champion.
    other = toys.register(toys.generator(0.8))
    _client().set_registered_model_alias(MODEL_NAME, "champion-x4", other)

    with pytest.raises(PromotionConflict, match="champion-x4"):
        registry.apply(plan)
    assert registry.aliases() == {"champion": good, "champion-x4": other}
    assert "decision" not in _tags(best)


def test_one_champion_per_scale(store, tmp_path):
    clip = write_clip(tmp_path / "bench.avi", n=4, h=48, w=64, seed=3)
    x4 = toys.register(toys.generator(0.5))
    _promote(x4, clip)
    x2 = toys.register(toys.generator(0.0, scale=2))  # bicubic x2: passes a -1 dB floor
    decision = _promote(x2, clip, min_gain_db=-1.0)
    assert decision.decision == "promoted" and decision.moves == ["champion-x2"]
    assert registry.aliases() == {"champion": x4, "champion-x4": x4, "champion-x2": x2}
    # With x2 as the default scale, `champion` (a x4 model) is not replaced by a x2 one.
    x2b = toys.register(toys.generator(0.0, scale=2))
    refused = _promote(x2b, clip, min_gain_db=-1.0, default_scale=2)
    assert refused.decision == "rejected" and "another scale" in refused.reason
    assert registry.aliases()["champion"] == x4


def test_benchmark_footage_in_training_is_refused(store, clip):
    from videoboost.data.dataset import source_hash

    dataset = {"version": "abc", "sources": [{"path": "x", "content_hash": source_hash(clip)}]}
    leaky = toys.register(toys.generator(1.0), dataset=dataset)
    with pytest.raises(BenchmarkLeak, match=r"bench\.avi"):
        _promote(leaky, clip)
    assert registry.aliases() == {} and "decision" not in _tags(leaky)


def test_evaluate_logs_to_the_version_its_run_and_the_active_run(store, clip):
    import mlflow

    version = toys.register(toys.generator(1.0))
    with mlflow.start_run(experiment_id=setup()) as active:
        report, where = registry.evaluate_and_log(version, sources=[clip], cfg=BENCH, log=True)
    tags = _tags(version)
    assert set(tags) == {"scale", "bench_psnr_gain"}
    assert float(tags["bench_psnr_gain"]) == pytest.approx(report.metrics["bench_psnr_gain"], 1e-3)
    text = _description(version)
    assert f"`{report.benchmark_version}`" in text and "| bicubic |" in text
    assert "(no decision)" in text
    for run_id in (_client().get_model_version(MODEL_NAME, version).run_id, active.info.run_id):
        metrics = _client().get_run(run_id).data.metrics
        assert metrics["bench_psnr"] == pytest.approx(report.metrics["bench_psnr"])
    assert len(where) == 3
    # A custom benchmark is not logged unless asked: the UI's bench_* keep one meaning.
    _, where = registry.evaluate_and_log(version, sources=[clip], cfg=CLEAN)
    assert where == []


def test_cli_promote_exit_codes_and_output(store, clip, capsys):
    args = ["--videos", str(clip), "--frames", "3", "--fps-runs", "0"]
    assert main(["promote", *args]) == 4  # nothing registered yet
    assert "no version" in capsys.readouterr().err

    best = toys.register(toys.generator(1.0))
    capsys.readouterr()  # drop Keras' progress output of the registration
    assert main(["promote", best, *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PROMOTED") and "dry run" in out and registry.aliases() == {}
    assert main(["promote", best, *args]) == 0
    assert capsys.readouterr().out.startswith("PROMOTED")

    worse = toys.register(toys.generator(0.5))
    capsys.readouterr()
    assert main(["promote", worse, *args]) == 0  # a rejection is a decision, not an error
    out = capsys.readouterr().out
    assert out.startswith("REJECTED") and "challenger" in out and "bench_psnr_gain" in out
    assert main(["promote", best, *args]) == 0
    assert capsys.readouterr().out.startswith("UNCHANGED")
    assert _tags(best)["decision"] == "promoted"  # its record is kept
    assert main(["promote", "99", *args]) == 4
    assert main(["rollback", "--scale", "2"]) == 1


def test_store_down_is_a_clear_error(monkeypatch, capsys):
    # Nothing listens on port 9: each attempt is refused at once (no HTTP retries).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert main(["rollback"]) == 5
    err = capsys.readouterr().err
    assert "MLflow store http://127.0.0.1:9" in err and "MLFLOW_TRACKING_URI" in err


def _claims(version: str) -> set[str]:
    """The aliases a version's card says it holds now (its Status line)."""
    status = parse(_description(version)).get("Status", "")
    claims = set()
    if ": champion (" in status or ": champion again" in status:
        claims.add("champion")
    if ": `challenger`:" in status:
        claims.add("challenger")
    return claims


def test_every_version_card_states_its_decision_and_agrees_with_the_aliases(store, clip):
    """After a run of promotions and a rollback: every version's description has its decision
    and the bicubic baseline, its tags are the small set, and no card or tag claims an alias
    the registry does not give it."""
    for alpha in (0.5, 1.0, 0.8, 0.0, 0.9):  # champion, better, challenger, floor, challenger
        _promote(toys.register(toys.generator(alpha)), clip)
    assert main(["rollback"]) == 0
    current = registry.aliases()
    assert set(current) == {"champion", "champion-x4", "challenger"}
    allowed = {"tier", "scale", "dataset_version", *registry.VERSION_TAGS}
    versions = [str(v) for v in range(1, 6)]
    for version in versions:
        text, tags = _description(version), _tags(version)
        assert set(tags) <= allowed, f"version {version} tags {sorted(tags)}"
        assert "**PROMOTED**" in text or "**REJECTED**" in text
        assert "| bicubic |" in text and "**vs bicubic**" in text
        held = {a.split("-")[0] for a, v in current.items() if v == version}
        assert _claims(version) == held, f"version {version}: {parse(text)['Status']}"
    # The newest card that says "champion again" is the version the alias points at.
    assert "restored" in _tags(current["champion"]).values()


def test_a_video_tier_candidate_is_scored_on_the_champions_tracks(store, clip):
    """A video-tier candidate (a window of 3 frames) against a single-frame champion: both are
    scored on the same benchmark and tracks, the video track included, and the gate decides
    on those same numbers."""
    champion = toys.register(toys.generator(0.5))
    assert _promote(champion, clip).decision == "promoted"
    candidate = toys.register(toys.video_generator(1.0))
    result = _promote(candidate, clip, bench=BENCH)
    cand, champ = result.candidate_report.metrics, result.champion_report.metrics
    assert set(cand) == set(champ)
    assert "bench_psnr_gain_video" in cand and "video" in result.candidate_report.tracks
    # The gate's per-track deltas are the reports' own: the decision follows from them.
    for track in result.candidate_report.tracks:
        key = "bench_psnr" if track == "clean" else f"bench_psnr_{track}"
        assert f"{track} {cand[key] - champ[key]:+.2f}" in result.summary()
    mean_delta = cand["bench_psnr_mean"] - champ["bench_psnr_mean"]
    assert result.decision == ("promoted" if mean_delta > 0.05 else "rejected")
    assert "video clips (CRF 23)" in _description(candidate)
