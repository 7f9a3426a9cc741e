"""Typed flow parameters (pydantic, so Prefect validates them and shows them in the UI).

No ``from __future__ import annotations`` here: Prefect reads these annotations at runtime.
"""

from pathlib import Path

from pydantic import BaseModel, Field

from videoboost.config import DatasetConfig, PromoteConfig, TrainConfig

SAMPLE_CLIP = str(Path(__file__).resolve().parent.parent / "data" / "sample" / "bigbuckbunny.mp4")


class RetrainParams(BaseModel):
    """What one retraining run uses; every field has a working default."""

    sources: list[str] = Field(default_factory=lambda: [SAMPLE_CLIP])
    dataset_dir: str | None = Field(
        None, description="Where the dataset is built (default: <state>/datasets/<name>)."
    )
    dataset: DatasetConfig = DatasetConfig()
    train: TrainConfig = TrainConfig()
    promote: PromoteConfig = PromoteConfig()
    benchmark_videos: list[str] | None = Field(
        None, description="Held-out footage for promotion (default: the bundled benchmark)."
    )
    benchmark_frames: int | None = Field(None, ge=1)
    package: bool = Field(True, description="Build a bento when the champion changed.")
