"""Typed flow parameters (pydantic, so Prefect validates them and shows them in the UI).

No ``from __future__ import annotations`` here: Prefect reads these annotations at runtime.
"""

from pydantic import BaseModel, Field

from videoboost.config import DatasetConfig, PromoteConfig, TrainConfig
from videoboost.data.sources import SAMPLE_CLIP as _SAMPLE_CLIP
from videoboost.data.sources import TRAIN_SOURCES

SAMPLE_CLIP = str(_SAMPLE_CLIP)


class RetrainParams(BaseModel):
    """What one retraining run uses; every field has a working default."""

    sources: list[str] = Field(
        default_factory=lambda: [str(p) for p in TRAIN_SOURCES],
        description="Training footage: videos, stills, folders (default: the bundled corpus).",
    )
    dataset_dir: str | None = Field(
        None, description="Where the dataset is built (default: <state>/datasets/<name>)."
    )
    dataset: DatasetConfig = DatasetConfig()
    train: TrainConfig = TrainConfig()
    init: str | None = Field(
        "champion",
        description="Warm start: 'champion' (the default: each retrain builds on the last; while "
        "there is no champion of this tier and scale, the shipped base of them, else a cold "
        "start), 'base' (the shipped base), 'none' (or null) for a cold start, or a model URI.",
    )
    register_base: bool = Field(
        True,
        description="Register the shipped base of the run's tier and scale as a version (once) "
        "and put it through the gate before training, so an empty registry starts from it.",
    )
    promote: PromoteConfig = PromoteConfig()
    benchmark_videos: list[str] | None = Field(
        None, description="Held-out footage for promotion (default: the bundled benchmark)."
    )
    benchmark_frames: int | None = Field(None, ge=1)
    package: bool = Field(True, description="Build a bento when the champion changed.")
