"""The story of the served model, as the page at ``/ui`` tells it: the registered version and
tier, the runtime ``auto`` chose here and its frames/s, the gain on each benchmark track, a
link to the version's MLflow page, and the limits an upload must keep."""

from typing import Any

from service.live import WORKER
from service.openapi import model_facts
from service.settings import CONFIG, IMAGE_LIMIT, MODEL, TOKEN, VIDEO_LIMIT
from videoboost.mlops import serving


def _tier() -> str | None:
    """The version's ``tier`` tag; without one, what the network itself shows."""
    tags = MODEL.info.metadata.get("mlflow_tags") or {}
    tier = tags.get("tier") or MODEL.info.labels.get("tier")
    if tier:
        return str(tier)
    if WORKER.runtime is None:  # the service instance has not started yet
        return None
    return "video" if WORKER.window else None


def _mlflow_url(version: str) -> str | None:
    """The version's page on the tracking server: the server the bento is served beside
    (``MLFLOW_TRACKING_URI``), else the one it was imported from; None for a local store."""
    if not version:
        return None
    from videoboost.mlops.tracking import version_url

    return version_url(version) or MODEL.info.metadata.get("mlflow_version_url") or None


def track_gains() -> dict[str, float]:
    """The gain over bicubic on each benchmark track (dB), clean first."""
    meta, labels = MODEL.info.metadata, MODEL.info.labels
    recorded = meta.get("bench_track_gains")
    if recorded:
        return serving.track_gains(
            {"bench_psnr_gain" + ("" if t == "clean" else f"_{t}"): v for t, v in recorded.items()}
        )
    # A model imported before the tracks were recorded: its version's tags, then its labels.
    return serving.track_gains({**(meta.get("mlflow_tags") or {}), **labels})


def story() -> dict[str, Any]:
    """What ``GET /ui/about.json`` answers."""
    facts = model_facts()
    runtime = WORKER.runtime
    return {
        "model": {
            **facts,
            "tier": _tier(),
            "tracks": track_gains(),
            "mlflow_url": _mlflow_url(facts["version"]),
            "mode": "video window" if WORKER.window else "single-frame",
        },
        "runtime": None
        if runtime is None
        else {
            "name": runtime.name,
            "precision": runtime.precision,
            "fps": round(float(runtime.fps), 1),
            "size": list(runtime.size),
            "how": runtime.how,
            "host": runtime.host,
        },
        "limits": {
            "max_input_pixels": CONFIG.max_input_pixels,
            "max_video_frames": CONFIG.max_video_frames,
            "image_bytes": IMAGE_LIMIT,
            "video_bytes": VIDEO_LIMIT,
            "max_tile": CONFIG.max_tile,
        },
        "token": TOKEN is not None,
    }
