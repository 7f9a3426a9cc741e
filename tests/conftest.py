from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from videoboost.config import DatasetConfig, DegradeConfig, SamplingConfig

# Keep a developer's real servers and stores out of the tests (httpx's clean_environ idea).
_SCRUBBED = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "BENTOML_HOME",
    "PREFECT_API_URL",
    "PREFECT_HOME",
    "VIDEOBOOST_HOME",
)


@pytest.fixture(autouse=True)
def clean_environ(tmp_path_factory, monkeypatch):
    for key in _SCRUBBED:
        monkeypatch.delenv(key, raising=False)
    home = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("VIDEOBOOST_HOME", str(home))
    for key, value in {
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }.items():
        monkeypatch.setenv(key, value)
    yield home
    os.environ.pop("VIDEOBOOST_HOME", None)


@pytest.fixture
def tiny_cfg() -> DatasetConfig:
    """A dataset config sized for 128x96 synthetic clips: x4, LR frames of 32x24."""
    return DatasetConfig(
        degrade=DegradeConfig(scale=4),
        sampling=SamplingConfig(dedupe_threshold=0.5),
        min_lr_side=8,
        min_per_split=2,
    )


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """One real `bentoml serve` of a tiny champion's bento for the whole session (see
    tests/bento.py): ``client`` sends the API token."""
    from bento import shared_server

    with shared_server(tmp_path_factory.mktemp("served")) as server:
        yield server


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """A tiny random x4 generator saved as .keras (for CLI, path and fault tests)."""
    from tiny import tiny_generator

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_generator(4).save(path)
    return path
