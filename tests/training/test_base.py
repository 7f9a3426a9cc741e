"""Base generators: export from a checkpoint file with a scored card, and where a run starts
(``--init base|champion|none|URI``)."""

from __future__ import annotations

import json

import pytest

from videoboost.errors import ModelNotFound


def test_export_writes_the_model_and_a_card_that_holds(tiny_base, monkeypatch):
    import keras

    from videoboost.training.base import file_sha256, read_card, render_card, score_base

    card = read_card(tiny_base)
    assert card["sha256"] == file_sha256(tiny_base)
    assert card["tier"] == "fast" and card["scale"] == 4
    t = card["training"]
    assert t["steps"] == 40 and t["epochs"] == 2 and t["batch_size"] == 8
    assert t["stretches"][0]["host_cpu"] and t["stretches"][0]["commit"]
    assert card["corpus"]["manifest_sha256"] and card["degradation"]["profile"] == "clean"
    assert any("videoboost base export" in line for line in card["reproduce"])
    # Re-scored on the held-out benchmark that the export built and cached in the fixture's
    # state folder (tests/conftest.py's tiny_base: <root>/state, bases in <root>/bases): the
    # same benchmark, read back instead of degraded and encoded again.
    built = tiny_base.parent.parent / "state"
    assert any((built / "benchmarks").iterdir())
    monkeypatch.setenv("VIDEOBOOST_HOME", str(built))
    tracks, _ = score_base(keras.models.load_model(tiny_base, compile=False))
    assert set(tracks) == set(card["benchmark"]["tracks"]) >= {"clean", "h264_crf30"}
    for track, scores in tracks.items():
        assert scores["bench_psnr"] == pytest.approx(
            card["benchmark"]["tracks"][track]["bench_psnr"], abs=0.02
        )
    md = tiny_base.with_suffix(".md").read_text()
    assert md == render_card(card) and "| h264_crf30 |" in md


def _gen_cfg(**kw):
    from videoboost.config import GeneratorConfig

    return GeneratorConfig(**{"tier": "fast", "filters": 8, "scale": 4, **kw})


def test_init_none_base_and_champion_start_where_they_say(tiny_base, monkeypatch, clean_environ):
    import toys

    from videoboost.mlops.bases import resolve_init

    toys.fresh_store(clean_environ)  # an empty store, migrated once per process, not per test

    cfg = _gen_cfg()
    assert resolve_init("none", cfg)[0] is None
    with pytest.raises(ModelNotFound, match="no fast x4 base is shipped"):
        resolve_init("base", cfg)  # the tests' default base folder is empty
    uri, why = resolve_init("champion", cfg)
    assert uri is None and "cold start" in why and "no champion" in why

    monkeypatch.setenv("VIDEOBOOST_BASE_DIR", str(tiny_base.parent))
    assert resolve_init("base", cfg)[0] == str(tiny_base)
    uri, why = resolve_init("champion", cfg)  # no champion yet: the shipped base
    assert uri == str(tiny_base) and "no champion" in why
    # A base of another width does not fit: a cold start, said so.
    uri, why = resolve_init("champion", _gen_cfg(filters=16))
    assert uri is None and "does not fit" in why

    import mlflow

    from videoboost.mlops.tracking import CHAMPION, MODEL_NAME

    # A champion that fits (fast, 8 filters, x4); its weights do not matter here, so the
    # untrained one (alpha 0: bicubic), not the toy's short training run.
    version = toys.register(toys.generator(0.0))
    mlflow.MlflowClient().set_registered_model_alias(MODEL_NAME, CHAMPION, version)
    uri, why = resolve_init("champion", cfg)
    assert uri == "champion" and f"version {version}" in why
    assert resolve_init("base", cfg)[0] == str(tiny_base)  # base still means the base


def test_a_run_from_the_base_names_its_card(tiny_base, monkeypatch, train_dataset, clean_environ):
    import mlflow
    import toys
    from tiny import tiny_train_cfg

    from videoboost.mlops.tracking import train_run

    toys.fresh_store(clean_environ)
    monkeypatch.setenv("VIDEOBOOST_BASE_DIR", str(tiny_base.parent))
    # The lineage tags are the run's from its start: one short epoch, nothing registered.
    cfg = tiny_train_cfg().model_copy(update={"pretrain_epochs": 1, "steps_per_epoch": 2})
    result = train_run(train_dataset, cfg, progress=False, init=str(tiny_base),
                       register_model=False)  # fmt: skip
    tags = mlflow.MlflowClient().get_run(result["run_id"]).data.tags
    assert tags["parent_model_uri"] == str(tiny_base)
    assert tags["parent_base"] == "fast-x4" and tags["parent_base_card"] == "fast-x4.json"


def test_register_base_once(tiny_base, monkeypatch, clean_environ):
    import mlflow
    import toys

    from videoboost.mlops.bases import register_base
    from videoboost.mlops.tracking import MODEL_NAME

    toys.fresh_store(clean_environ)
    monkeypatch.setenv("VIDEOBOOST_BASE_DIR", str(tiny_base.parent))
    assert register_base("quality", 4) is None  # none shipped of that tier
    first = register_base("fast", 4)
    assert first["registered"] and first["version"] == "1"
    again = register_base("fast", 4)
    assert not again["registered"] and again["version"] == "1"
    client = mlflow.MlflowClient()
    (mv,) = client.search_model_versions(f"name='{MODEL_NAME}'")
    card = json.loads(tiny_base.with_suffix(".json").read_text())
    assert mv.tags["base"] == "fast-x4" and mv.tags["base_sha256"] == card["sha256"]
    assert "shipped base `models/base/fast-x4.keras`" in mv.description
    metrics = client.get_run(first["run_id"]).data.metrics
    clean = card["benchmark"]["tracks"]["clean"]["bench_psnr_gain"]
    assert metrics["bench_psnr_gain"] == pytest.approx(clean)
    assert metrics["bench_psnr_gain_h264_crf30"] == pytest.approx(
        card["benchmark"]["tracks"]["h264_crf30"]["bench_psnr_gain"]
    )
