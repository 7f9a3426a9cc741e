"""Batch upscaling: whole folders of images and videos (``jobs``) and the Dask fan-out of
long videos (``fanout``).

``videoboost.batch`` was one module before the stages; its names still resolve here (with a
``DeprecationWarning`` naming ``videoboost.batch.jobs``).
"""

from __future__ import annotations


def __getattr__(name: str):
    import importlib
    import warnings

    jobs = importlib.import_module("videoboost.batch.jobs")
    if name.startswith("__") or not hasattr(jobs, name):
        raise AttributeError(f"module 'videoboost.batch' has no attribute {name!r}")
    warnings.warn(
        f"videoboost.batch.{name} moved to videoboost.batch.jobs.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(jobs, name)
