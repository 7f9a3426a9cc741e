"""Where VideoBoost keeps its state, and the environment every entry point starts from.

Defaults are project-local (``./.state`` or ``$VIDEOBOOST_HOME``)::

    .state/mlflow.db        MLflow tracking + registry (SQLite)
    .state/mlartifacts/     MLflow artifacts (models, images, reports)
    .state/bentoml/         BENTOML_HOME: models and bentos
    .state/prefect/         PREFECT_HOME: Prefect's local database and settings
    .state/datasets/        datasets built by ``videoboost run``

``MLFLOW_TRACKING_URI``, ``BENTOML_HOME`` and ``PREFECT_HOME`` win when set. A team shares
one store by pointing ``MLFLOW_TRACKING_URI`` at PostgreSQL (``postgresql://...``) or an MLflow
server, with ``VIDEOBOOST_ARTIFACT_ROOT`` (a shared folder or ``s3://bucket/prefix``) for the
artifacts, and Prefect at a server whose database is PostgreSQL.
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


# Seconds a Prefect server may take to answer. Idle it takes ~11 s; with 2 cores loaded by
# other work a first start (database migrations) took 118 s. Waiting ends early when the
# server process exits, so a generous bound only costs time when a server hangs.
PREFECT_STARTUP_TIMEOUT = 300


def home() -> Path:
    """The state folder: ``$VIDEOBOOST_HOME`` or ``./.state``."""
    return Path(os.environ.get("VIDEOBOOST_HOME") or Path.cwd() / ".state").resolve()


# Tracking URIs that are a database MLflow opens in-process: with no server in between, the
# experiment's artifact location is where every client writes its artifacts.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def artifact_root() -> Path:
    """The local artifact folder of a single-machine store: ``<state>/mlartifacts``."""
    return home() / "mlartifacts"


def artifact_location(uri: str | None = None) -> str | None:
    """Where a new experiment keeps its artifacts (a URI), or None to let the store decide.

    ``$VIDEOBOOST_ARTIFACT_ROOT`` wins: a shared folder (every client must see the same path)
    or an object store URI (``s3://bucket/prefix``; MLflow reads the usual AWS variables and
    ``MLFLOW_S3_ENDPOINT_URL`` for S3-compatible stores). Otherwise a database store (SQLite,
    PostgreSQL, ...) or a bare path keeps them under the state folder, not ``./mlruns`` of
    whatever the working directory is, and a tracking server uses its own
    ``--artifacts-destination``.
    """
    explicit = os.environ.get("VIDEOBOOST_ARTIFACT_ROOT")
    if explicit:
        if "://" in explicit:
            return explicit.rstrip("/")
        return Path(explicit).expanduser().resolve().as_uri()
    uri = uri or tracking_uri()
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme in ("", *DATABASE_SCHEMES):
        return artifact_root().as_uri()
    return None


def default_tracking_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def tracking_uri() -> str:
    return with_driver(os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri())


def with_driver(uri: str) -> str:
    """A ``postgresql://`` URI with the driver VideoBoost ships (psycopg2) spelled out.

    SQLAlchemy 2.1 made psycopg 3 the default driver of ``postgresql://``; the lock has
    psycopg2-binary, so a plain URI would fail with "No module named 'psycopg'". Any other URI
    (``postgresql+psycopg://`` included) is returned unchanged.
    """
    if uri.startswith("postgresql://"):
        return "postgresql+psycopg2://" + uri.removeprefix("postgresql://")
    return uri


# Library chatter that says nothing to a user of VideoBoost (each checked to be harmless).
_QUIET_WARNINGS = (
    "`shuffle=True` was passed",  # Keras about tf.data input, which we shuffle ourselves
    "The specified dataset source can be interpreted",  # MLflow guessing a local path's kind
    "Hint: Inferred schema contains integer",  # MLflow on the manifest's integer columns
)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, or None for any other store.

    Handles SQLite's URI filenames too (``sqlite:///file:/path/db?mode=ro&uri=true``): taken
    literally, their folder would be a relative ``file:`` directory in the working directory.
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///")
    if path.startswith("file:"):
        path = path.removeprefix("file:").split("?", 1)[0]
    if not path or path.startswith(":memory:"):
        return None
    return Path(path)


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
        # Prefect's default, 20 s, is too short on busy cores (also used by `videoboost run`).
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(PREFECT_STARTUP_TIMEOUT),
        # TF's C++ INFO chatter buries our own output; warnings and errors still show.
        "TF_CPP_MIN_LOG_LEVEL": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    for message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message))
    for key in ("BENTOML_HOME", "PREFECT_HOME"):
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
    db = sqlite_path(os.environ["MLFLOW_TRACKING_URI"])
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return {k: os.environ[k] for k in ("MLFLOW_TRACKING_URI", "BENTOML_HOME", "PREFECT_HOME")}
