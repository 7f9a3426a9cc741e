from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from videoboost.config import DatasetConfig

# Keep a developer's real servers and stores out of the tests (httpx's clean_environ idea).
_SCRUBBED = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "BENTOML_HOME",
    "PREFECT_API_URL",
    "PREFECT_HOME",
    "VIDEOBOOST_HOME",
    "VIDEOBOOST_BASE_DIR",
)


@pytest.fixture(autouse=True)
def clean_environ(tmp_path_factory, monkeypatch):
    for key in _SCRUBBED:
        monkeypatch.delenv(key, raising=False)
    home = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("VIDEOBOOST_HOME", str(home))
    # No shipped base unless a test asks for one: runs start where each test says.
    monkeypatch.setenv("VIDEOBOOST_BASE_DIR", str(tmp_path_factory.mktemp("no-bases")))
    for key, value in {
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # `videoboost upscale` runs TensorFlow float32 unless a test asks for `auto` (with
        # --runtime auto): auto times and converts every runtime for each new model and input
        # size, ~6 CPU-s a call, and its choice is tested in tests/evaluation/.
        "VIDEOBOOST_RUNTIME": "tf-f32",
    }.items():
        monkeypatch.setenv(key, value)
    yield home
    os.environ.pop("VIDEOBOOST_HOME", None)


@pytest.fixture
def tiny_cfg() -> DatasetConfig:
    """A dataset config sized for 128x96 synthetic clips: x4, LR frames of 32x24."""
    from tiny import tiny_dataset_config

    return tiny_dataset_config()


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """One real `bentoml serve` of a tiny champion's bento for the whole session (see
    tests/bento.py): ``client`` sends the API token."""
    from bento import shared_server

    with shared_server(tmp_path_factory.mktemp("served")) as server:
        yield server


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's test harness (a real server in a subprocess, its SQLite database in a temp
    folder), one per test process for the flow and Dask tests. It sets Prefect's settings, not
    os.environ, so a CLI test that starts its own server is not affected."""
    from prefect.testing.utilities import prefect_test_harness

    # 300 s: on two cores shared with training jobs the server's start alone took over 120 s.
    with prefect_test_harness(server_startup_timeout=300):
        yield


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """A tiny random x4 generator saved as .keras (for CLI, path and fault tests)."""
    from tiny import tiny_generator

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_generator(4).save(path)
    return path


@pytest.fixture(scope="session")
def train_dataset(tmp_path_factory) -> Path:
    """The tiny built x4 training dataset (tests/tiny.py's), built once for the session; tests
    read it and never change it."""
    from tiny import training_dataset

    return training_dataset(tmp_path_factory.mktemp("train-data"))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, train_dataset) -> Path:
    """A tiny fast x4 base made the real way: a short run packed into a checkpoint file, then
    ``videoboost base export`` (its card scored on the held-out benchmark). Returns the
    ``.keras`` path; its folder is a base folder (``VIDEOBOOST_BASE_DIR``)."""
    from tiny import tiny_train_cfg

    root = tmp_path_factory.mktemp("tiny-base")
    saved = {k: os.environ.get(k) for k in _SCRUBBED}
    for key in _SCRUBBED:
        os.environ.pop(key, None)
    os.environ["VIDEOBOOST_HOME"] = str(root / "state")
    try:
        from videoboost.mlops.tracking import train_run
        from videoboost.training.base import export_base

        file = root / "fast-x4.vbckpt"
        train_run(train_dataset, tiny_train_cfg(), progress=False,
                  register_model=False, checkpoint_file=file)  # fmt: skip
        return export_base(file, root / "bases")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# Under pytest-xdist (`make test` runs two workers), each worker builds its own session
# fixtures. Tests of the most expensive ones go to one worker as a group (`--dist loadgroup`),
# so a bento is built and served once and one Prefect server starts, not one per worker. The
# tiny base joins the Prefect group: the flow tests need both, and it is built once that way.
_GROUPED_BY_FIXTURE = {"served": "served", "prefect_server": "prefect", "tiny_base": "prefect"}


# tryfirst: xdist's own hook turns the marker into the node id's ``@group`` suffix, the only
# thing its scheduler reads; run after it, the marks came too late and every group was split.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        names = getattr(item, "fixturenames", ())
        group = next((g for f, g in _GROUPED_BY_FIXTURE.items() if f in names), None)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
