"""Prefect flows on a real (temporary) Prefect server, with a real MLflow store in tmp."""

import numpy as np
import pytest
import yaml
from media import moving_frames, write_video

from videoboost.config import DatasetConfig, DegradeConfig, SamplingConfig

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def tiny_dataset_cfg() -> DatasetConfig:
    return DatasetConfig(
        degrade=DegradeConfig(scale=4),
        sampling=SamplingConfig(dedupe_threshold=0),
        patch=8,
        patches_per_frame=4,
        min_per_split=2,
    )


def test_blank_source_fails_at_validation_before_training(prefect_server, tmp_path):
    import mlflow

    from flows.params import RetrainParams
    from flows.retrain import retrain
    from videoboost.tracking import setup

    # A clip that ends in black: the validation segment has no usable pair.
    frames = moving_frames(24) + [np.zeros((96, 128, 3), np.uint8)] * 10
    clip = write_video(tmp_path / "fade_to_black.avi", frames)
    params = RetrainParams(
        sources=[str(clip)], dataset_dir=str(tmp_path / "ds"), dataset=tiny_dataset_cfg()
    )
    state = retrain(params, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="split"):
        state.result()
    assert not (tmp_path / "ds").exists()
    assert list(tmp_path.glob("ds.rejected-*")), "the failing GX report is kept"
    setup()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("videoboost")
    assert client.search_runs([exp.experiment_id]) == []


def test_prefect_yaml_deployments_reference_importable_flows():
    import importlib

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"]: d for d in spec["deployments"]}
    assert set(names) == {"retrain-weekly", "batch-upscale"}
    assert names["retrain-weekly"]["schedules"][0]["cron"]
    assert "schedules" not in names["batch-upscale"]
    for d in spec["deployments"]:
        module, func = d["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), func)
        # Parameters in prefect.yaml must validate against the flow's own signature.
        flow.validate_parameters(d.get("parameters", {}))
