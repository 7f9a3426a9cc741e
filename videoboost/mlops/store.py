"""MLflow at the edge, the store itself: names, the client with retries, the experiment, and
links into the UI. Tracking URI comes from ``MLFLOW_TRACKING_URI``, else a SQLite store
under the state folder (see :mod:`videoboost.state`)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from videoboost import state
from videoboost.errors import ModelNotFound, StoreUnavailable
from videoboost.mlops.version_card import ML_VIEW

EXPERIMENT = "videoboost"
MODEL_NAME = "videoboost-generator"
CHAMPION = "champion"
CHALLENGER = "challenger"
PIP_REQUIREMENTS = ["tensorflow-cpu==2.21.*", "keras==3.*", "numpy"]
# The only tags a model version carries: a dozen more pushed everything else out of view in the
# UI. Scores, lineage and decisions are in its description and in the run's evaluation.json.
# (Promotion adds ``decision`` and ``bench_psnr_gain``, see videoboost.mlops.registry.)
VERSION_TAGS = ("tier", "scale", "dataset_version")
EVALUATION_JSON = "evaluation.json"  # on the training run: lineage, scores, every decision

T = TypeVar("T")


def _mlflow():
    # Bounded HTTP retries: MLflow's defaults retry a dead server for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # MLflow logs every failed store query with a full traceback before raising it; the
    # exception still reaches with_store_retries, which words it in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    import mlflow

    return mlflow


def safe_uri(uri: str) -> str:
    """``uri`` without its password (``postgresql://user:***@host/db``), for messages."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", uri)


def with_store_retries(
    fn: Callable[[], T], what: str, attempts: int | None = None, wait: float | None = None
) -> T:
    """Run ``fn`` against the tracking store; retry transient failures, then fail clearly.

    ``attempts`` (default ``VIDEOBOOST_STORE_ATTEMPTS``, 3) and ``wait`` (seconds before the
    n-th retry is n x wait; default ``VIDEOBOOST_STORE_RETRY_WAIT``, 1.0). A locked SQLite
    store already waits up to 20 s per attempt inside MLflow.
    """
    attempts = attempts or int(os.environ.get("VIDEOBOOST_STORE_ATTEMPTS") or 3)
    if wait is None:
        wait = float(os.environ.get("VIDEOBOOST_STORE_RETRY_WAIT") or 1.0)
    last: Exception | None = None
    for i in range(attempts):
        try:
            return fn()
        except Exception as exc:  # MLflow raises many types for a dead/locked store
            if isinstance(exc, ModelNotFound):
                raise
            last = exc
            if i + 1 < attempts:
                time.sleep(wait * (i + 1))
    # The database's own words (e.g. "database is locked"), not SQLAlchemy's notes around them.
    noise = ("(raised as a result", "[SQL:", "[parameters:", "(Background on this error")
    lines = [line.strip() for line in str(last).splitlines() if line.strip()]
    detail = next((line for line in lines if not line.startswith(noise)), "")
    raise StoreUnavailable(
        f"MLflow store {safe_uri(state.tracking_uri())} failed while {what}: "
        f"{type(last).__name__}: {safe_uri(detail)}. Check that the server is running "
        "and the store is writable, or point MLFLOW_TRACKING_URI at a reachable store."
    ) from last


def setup() -> str:
    """Point MLflow at the store and return the project's experiment id (created if needed)."""
    mlflow = _mlflow()
    uri = state.tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(state.with_driver(os.environ.get("MLFLOW_REGISTRY_URI") or uri))

    def _experiment() -> str:
        exp = mlflow.get_experiment_by_name(EXPERIMENT)
        location = state.artifact_location(uri)
        if exp is None:
            # Without this tag MLflow 3.17's UI opens the experiment in its GenAI view (traces,
            # tokens); this is a model-training experiment.
            return mlflow.create_experiment(
                EXPERIMENT,
                artifact_location=location,
                tags={"mlflow.experimentKind": "custom_model_development"},
            )
        # The location is fixed when the experiment is created: say so rather than silently
        # writing elsewhere than VIDEOBOOST_ARTIFACT_ROOT asks.
        if os.environ.get("VIDEOBOOST_ARTIFACT_ROOT") and not exp.artifact_location.startswith(
            location
        ):
            warnings.warn(
                f"experiment {EXPERIMENT!r} at {uri} keeps its artifacts at "
                f"{exp.artifact_location}, not VIDEOBOOST_ARTIFACT_ROOT ({location}): the "
                "location is set when the experiment is created",
                stacklevel=2,
            )
        return exp.experiment_id

    return with_store_retries(_experiment, "opening the experiment")


def ui_base() -> str | None:
    """The MLflow UI's address when the store is a tracking server (``http(s)://``), else None:
    a SQLite or file store has no web address until someone runs ``mlflow ui`` on it."""
    uri = state.tracking_uri()
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def run_url(run_id: str, experiment_id: str) -> str | None:
    """The run's page on the tracking server (None for a local store: see :func:`ui_base`)."""
    base = ui_base()
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}{ML_VIEW}" if base else None


def version_url(version: str) -> str | None:
    """The model version's page on the tracking server (None for a local store)."""
    base = ui_base()
    return f"{base}/#/models/{MODEL_NAME}/versions/{version}{ML_VIEW}" if base else None


def artifact_url(run_id: str, experiment_id: str, path: str) -> str | None:
    """The run page's artifact view opened on ``path`` (the UI renders images and HTML there;
    the server's raw download route sends every file as an attachment)."""
    base = ui_base()
    page = f"{base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}"
    return page + ML_VIEW if base else None


def ui_command() -> str:
    """How to open the UI on the current store (for messages where there is no URL)."""
    uri = state.tracking_uri()
    if ui_base():
        return f"open {ui_base()}"
    return f"`.venv/bin/mlflow ui --backend-store-uri {safe_uri(uri)} --host 127.0.0.1 --port 5000`"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"
