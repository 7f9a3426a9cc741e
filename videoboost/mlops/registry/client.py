"""Store access for the promotion gate: the MLflow client, retries, and the registry's tags.

MLflow is imported through :mod:`videoboost.mlops.tracking`, lazily; every call to the store
goes through :func:`_call`, which retries a store that is down for a moment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from videoboost.mlops.tracking import _mlflow, with_store_retries

HISTORY_TAG = "champion_history"
HISTORY_LIMIT = 50
VERSION_TAGS = ("decision", "bench_psnr_gain")  # written by decisions, beside tracking's

T = TypeVar("T")


def _client():
    # Artifact progress bars (leak check, model loading) would bury the decision in stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return _mlflow().MlflowClient()


def _call(fn: Callable[[], T], what: str) -> T:
    return with_store_retries(fn, what)


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"
