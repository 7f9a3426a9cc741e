"""Prefect flows on a real (temporary) Prefect server, with a real MLflow store in tmp."""

import numpy as np
import pytest
import yaml
from media import moving_frames, write_video
from tiny import tiny_retrain_params

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _short(params):
    """``params``' training cut to one epoch of 2 steps, for retrains whose training is not
    what the test checks."""
    return params.train.model_copy(update={"pretrain_epochs": 1, "steps_per_epoch": 2})


def test_blank_source_fails_at_validation_before_training(
    prefect_server, tmp_path, tiny_cfg, clean_environ
):
    import mlflow
    import toys

    from flows.params import RetrainParams
    from flows.retrain import retrain
    from videoboost.mlops.tracking import setup

    # A clip that ends in black: the validation segment has no usable pair.
    frames = moving_frames(24) + [np.zeros((96, 128, 3), np.uint8)] * 10
    clip = write_video(tmp_path / "fade_to_black.avi", frames)
    params = RetrainParams(sources=[str(clip)], dataset_dir=str(tmp_path / "ds"), dataset=tiny_cfg)
    state = retrain(params, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="split"):
        state.result()
    assert not (tmp_path / "ds").exists()
    assert list(tmp_path.glob("ds.rejected-*")), "the failing GX report is kept"
    if not (clean_environ / "mlflow.db").exists():  # the flow opened no store: an empty one,
        toys.fresh_store(clean_environ)  # migrated once per process, not per test
    setup()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("videoboost")
    assert client.search_runs([exp.experiment_id]) == []


def test_prefect_yaml_deployments_reference_importable_flows():
    import importlib

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"]: d for d in spec["deployments"]}
    assert set(names) == {"retrain-weekly", "batch-upscale", "batch-upscale-dask"}
    assert names["retrain-weekly"]["schedules"][0]["cron"]
    assert "schedules" not in names["batch-upscale"]
    for d in spec["deployments"]:
        module, func = d["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), func)
        # Parameters in prefect.yaml must validate against the flow's own signature.
        flow.validate_parameters(d.get("parameters", {}))


def test_every_retraining_path_trains_the_real_profile_by_default():
    """make run, the retrain flow's defaults and the weekly deployment all learn from coded,
    noisy LR variants; the demo input of make run is genuinely low-bitrate H.264."""
    from flows.main_job import DEMO_CRF, MAIN_JOB_DATASET
    from flows.params import RetrainParams

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    weekly = next(d for d in spec["deployments"] if d["name"] == "retrain-weekly")
    deployed = RetrainParams.model_validate(weekly["parameters"]["params"])
    assert deployed.dataset.degrade.profile == "real"
    assert deployed.train.pretrain_epochs is None  # the 20-minute budget is not capped
    assert RetrainParams(sources=["x.mp4"]).dataset.degrade.profile == "real"
    assert MAIN_JOB_DATASET.degrade.profile == "real"
    assert DEMO_CRF >= 28


@pytest.mark.slow
def test_retrain_end_to_end_then_cache_hit(prefect_server, tmp_path, tiny_cfg, clean_environ):
    import mlflow
    import toys

    from flows.retrain import retrain
    from videoboost.mlops.tracking import MODEL_NAME

    toys.fresh_store(clean_environ)  # an empty store, migrated once per process, not per test
    params = tiny_retrain_params(tmp_path, tiny_cfg)
    first = retrain(params)
    assert first["dataset"]["validation"] == "passed" and not first["dataset"]["cached"]
    assert first["run"]["version"] == "1"
    assert first["promotion"]["decision"] == "promoted"
    assert first["bento"] and first["bento"].startswith("videoboost:")

    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "1"
    run = client.get_run(first["run"]["run_id"])
    assert run.data.tags["dataset_version"] == first["dataset"]["version"]

    # The second candidate cannot clear a 100 dB margin: a decision that moves no alias, so
    # nothing is packaged (and no second bento is built).
    # How long it trains does not matter to that decision: one short epoch.
    strict = params.promote.model_copy(update={"margin": 100.0})
    second = retrain(params.model_copy(update={"promote": strict, "train": _short(params)}))
    assert (
        second["dataset"]["cached"] and second["dataset"]["version"] == first["dataset"]["version"]
    )
    assert second["run"]["version"] == "2"
    # The second retrain builds on the first: warm-started from the champion, lineage recorded.
    assert second["run"]["warm_start"] == f"models:/{MODEL_NAME}@champion"
    assert client.get_run(second["run"]["run_id"]).data.tags["parent_version"] == "1"
    cards = {v: client.get_model_version(MODEL_NAME, v).description for v in ("1", "2")}
    assert f"warm start from `models:/{MODEL_NAME}@champion` (version 1)" in cards["2"]
    assert "cold start" in cards["1"]
    assert second["promotion"]["decision"] == "rejected" and second["bento"] is None
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "1"
    # Every version: its decision and the bicubic baseline in its description, few tags.
    for v, card in cards.items():
        tags = client.get_model_version(MODEL_NAME, v).tags
        # runtime_fidelity: the bento build's check of every runtime (one JSON tag).
        assert set(tags) <= {"tier", "scale", "dataset_version", "decision", "bench_psnr_gain",
                             "runtime_fidelity"}  # fmt: skip
        assert tags["decision"] in {"promoted", "rejected"}
        assert f"**{tags['decision'].upper()}**" in card and "| bicubic |" in card, card
    # A local store has no web pages: the artifacts say so instead of linking nowhere.
    assert second["run"]["pages"] == dict.fromkeys(("run", "report", "images", "version"))
    artifacts = _artifacts(second["run"]["run_id"], client)
    assert {"evaluation.json", "dataset"} <= artifacts


def _artifacts(run_id, client):
    return {a.path for a in client.list_artifacts(run_id)}


def test_retrain_artifacts_link_mlflow_pages_or_say_why_not(monkeypatch):
    """Prefect shows http links only: pages of a tracking server, or a note for a local store."""
    from flows.links import md_link, mlflow_pages, no_server_note

    pages = mlflow_pages("abc", "7", "3")
    assert pages == dict.fromkeys(("run", "report", "images", "version"))
    assert "mlflow ui --backend-store-uri sqlite:///" in no_server_note()
    assert md_link("run", None, "(no server)") == "run (no server)"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:57011/")
    pages = mlflow_pages("abc", "7", "3")
    # The URL parameter opens MLflow 3.17's model-training view instead of its GenAI one.
    view = "?workflowType=machine_learning"
    run = "http://127.0.0.1:57011/#/experiments/7/runs/abc"
    assert pages["run"] == run + view
    assert pages["report"] == run + "/artifacts/dataset/data_docs/local_site/index.html" + view
    assert (
        pages["version"] == "http://127.0.0.1:57011/#/models/videoboost-generator/versions/3" + view
    )
    assert no_server_note() == ""
    assert md_link("run", pages["run"]) == f"[run]({pages['run']})"


@pytest.mark.slow
def test_batch_upscale_reports_bad_video_and_keeps_good_ones(prefect_server, tmp_path, model_file):
    from flows.batch import batch_upscale
    from videoboost.video.pipeline import probe

    model = model_file  # the session's tiny random x4 generator
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_video(inputs / "a.avi", moving_frames(6, h=32, w=48))
    write_video(inputs / "b.avi", moving_frames(5, h=32, w=48, seed=3))
    (inputs / "broken.mp4").write_bytes(b"\x00\x00 not a video at all" * 64)
    out = tmp_path / "out"
    state = batch_upscale([str(inputs)], out_dir=str(out), model=str(model), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"broken\.mp4") as err:
        state.result()
    assert "1 of 3 inputs failed" in str(err.value)
    for name, frames in (("a.mp4", 6), ("b.mp4", 5)):
        info = probe(out / name)
        assert (info.width, info.height, info.frame_count) == (192, 128, frames)
    assert not (out / "broken.mp4").exists()


@pytest.mark.slow
def test_first_retrain_registers_the_shipped_base_once_and_starts_from_it(
    prefect_server, tmp_path, tiny_cfg, tiny_base, monkeypatch, clean_environ
):
    import mlflow
    import toys

    from flows.retrain import retrain
    from videoboost.mlops.tracking import MODEL_NAME

    toys.fresh_store(clean_environ)
    monkeypatch.setenv("VIDEOBOOST_BASE_DIR", str(tiny_base.parent))
    params = tiny_retrain_params(tmp_path, tiny_cfg, package=False)
    first = retrain(params)
    base = first["base"]
    assert base["registered"] and base["version"] == "1"
    assert base["promotion"]["decision"] == "promoted"  # an empty registry: the base is champion
    assert first["run"]["version"] == "2"
    assert first["run"]["warm_start"] == f"models:/{MODEL_NAME}@champion"
    client = mlflow.MlflowClient()
    tags = client.get_run(first["run"]["run_id"]).data.tags
    assert tags["parent_version"] == "1"  # the candidate fine-tuned from the base

    # Again: the base is found, not registered twice. What this run trains does not matter
    # here, so one short epoch (the dataset is a cache hit).
    second = retrain(params.model_copy(update={"train": _short(params)}))
    assert not second["base"]["registered"] and second["base"]["version"] == "1"
    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2", "3"]
    assert [str(v.version) for v in versions if v.tags.get("base")] == ["1"]
