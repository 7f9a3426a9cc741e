"""Where VideoBoost keeps its state, and the environment every entry point starts from.

Defaults are project-local (``./.state`` or ``$VIDEOBOOST_HOME``)::

    .state/mlflow.db        MLflow tracking + registry (SQLite)
    .state/mlartifacts/     MLflow artifacts (models, images, reports)
    .state/bentoml/         BENTOML_HOME: models and bentos
    .state/prefect/         PREFECT_HOME: Prefect's local database and settings
    .state/datasets/        datasets built by ``videoboost run``

``MLFLOW_TRACKING_URI``, ``BENTOML_HOME`` and ``PREFECT_HOME`` win when set.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

# MLflow and BentoML accept only the literal "true"; these stop DNS look-ups offline.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def home() -> Path:
    """The state folder: ``$VIDEOBOOST_HOME`` or ``./.state``."""
    return Path(os.environ.get("VIDEOBOOST_HOME") or Path.cwd() / ".state").resolve()


def artifact_root() -> Path:
    return home() / "mlartifacts"


def default_tracking_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


# Library chatter that says nothing to a user of VideoBoost (each checked to be harmless).
_QUIET_WARNINGS = (
    "`shuffle=True` was passed",  # Keras about tf.data input, which we shuffle ourselves
    "The specified dataset source can be interpreted",  # MLflow guessing a local path's kind
    "Hint: Inferred schema contains integer",  # MLflow on the manifest's integer columns
)


def configure_environment() -> dict[str, str]:
    """Fill in defaults for the stack's environment variables (never overrides a set one).

    Must run before Prefect or BentoML are imported: both read their home at import.
    Returns the effective values, for logging.
    """
    root = home()
    defaults = {
        **TELEMETRY_OFF,
        "MLFLOW_TRACKING_URI": default_tracking_uri(),
        "BENTOML_HOME": str(root / "bentoml"),
        "PREFECT_HOME": str(root / "prefect"),
        # TF's C++ INFO chatter buries our own output; warnings and errors still show.
        "TF_CPP_MIN_LOG_LEVEL": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    for message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message))
    for key in ("BENTOML_HOME", "PREFECT_HOME"):
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
    if os.environ["MLFLOW_TRACKING_URI"].startswith("sqlite:///"):
        Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    return {k: os.environ[k] for k in ("MLFLOW_TRACKING_URI", "BENTOML_HOME", "PREFECT_HOME")}
