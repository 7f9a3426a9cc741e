"""Every setting of VideoBoost in one typed place.

Frozen pydantic models: Prefect validates them as flow parameters, MLflow logs them
flat as params (see :func:`flatten`), and a YAML/JSON file can override any field
(``videoboost train --config FILE``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scale = int  # 2..5, validated where it is a field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DegradeConfig(_Frozen):
    """How a low-res input is made from a high-res frame."""

    scale: int = Field(4, ge=2, le=5, description="Integer downscale factor.")
    method: Literal["bicubic", "area"] = Field(
        "bicubic",
        description="bicubic = antialiased (MATLAB imresize / Pillow), the SR convention.",
    )
    blur_sigma: float = Field(0.0, ge=0, description="Gaussian blur sigma in HR pixels, 0 = off.")
    noise_sigma: float = Field(
        0.0, ge=0, description="Gaussian noise sigma in grey levels (0-255)."
    )
    jpeg_quality: int | None = Field(
        None, ge=5, le=100, description="JPEG re-compression, None = off."
    )
    seed: int = 0


class SamplingConfig(_Frozen):
    """Which frames of a video are used."""

    every: int = Field(1, ge=1, description="Keep every k-th frame.")
    max_frames: int | None = Field(None, ge=1, description="Cap of kept frames per source.")
    dedupe_threshold: float = Field(
        1.0,
        ge=0,
        description="Skip a frame whose mean absolute difference (grey levels, on a 64 px thumbnail) "
        "to the last kept frame is below this; 0 = keep duplicates.",
    )


class DatasetConfig(_Frozen):
    """How a versioned patch dataset is built from sources."""

    degrade: DegradeConfig = DegradeConfig()
    sampling: SamplingConfig = SamplingConfig()
    patch: int = Field(32, ge=8, le=256, description="LR patch side; HR patch side is patch*scale.")
    patches_per_frame: int = Field(8, ge=1)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    shard_size: int = Field(512, ge=1, description="Patch pairs per npz shard.")
    min_patch_std: float = Field(
        2.0, ge=0, description="Reject near-constant HR patches (grey levels)."
    )
    min_per_split: int = Field(
        4, ge=1, description="Validation fails below this many pairs per split."
    )
    seed: int = 0

    @property
    def scale(self) -> int:
        return self.degrade.scale


class GeneratorConfig(_Frozen):
    """Generator architecture. ``tier`` picks the builder in ``models.networks.GENERATORS``."""

    tier: Literal["fast", "quality"] = "fast"
    scale: int = Field(4, ge=2, le=5)
    filters: int = Field(64, ge=4, description="fast: first conv width; quality: trunk width.")
    blocks: int = Field(8, ge=1, description="quality: residual blocks (ignored by fast).")


class DiscriminatorConfig(_Frozen):
    filters: int = Field(32, ge=4, description="Width of the first block; doubles every block.")
    blocks: int = Field(3, ge=1, le=6, description="Strided blocks; output is a patch map.")


class TrainConfig(_Frozen):
    """Everything a training run needs besides the dataset."""

    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    batch_size: int = Field(16, ge=1)
    steps_per_epoch: int = Field(200, ge=1)
    pretrain_epochs: int = Field(5, ge=0, description="Phase 1: L1 pixel loss only.")
    gan_epochs: int = Field(0, ge=0, description="Phase 2: pixel + adversarial loss.")
    learning_rate: float = Field(1e-3, gt=0)
    gan_learning_rate: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(100, ge=0)
    min_learning_rate: float = Field(1e-5, ge=0)
    pixel_weight: float = Field(1.0, ge=0)
    adv_weight: float = Field(5e-3, ge=0)
    perceptual_weight: float = Field(0.0, ge=0)
    gan_type: Literal["standard", "ragan"] = "ragan"
    pretrain_discriminator_steps: int = Field(0, ge=0, description="D warm-up on real HR first.")
    vgg_weights: str | None = Field(
        None, description="Local VGG19 .h5 for perceptual loss; never downloaded."
    )
    augment: bool = True
    val_frames: int = Field(8, ge=1, description="Whole validation frames scored per epoch.")
    sample_every: int = Field(1, ge=1, description="Log a comparison image every k epochs.")
    early_stopping_patience: int = Field(5, ge=1)
    seed: int = 0
    threads: int = Field(2, ge=1, description="TF intra-op threads (TF defaults often use one).")


class PromoteConfig(_Frozen):
    min_gain_db: float = Field(0.5, description="Floor over bicubic, dB.")
    tolerance_db: float = Field(
        0.1, ge=0, description="May be this much worse than champion on PSNR."
    )
    margin: float = Field(0.05, ge=0, description="Must beat champion on primary metric by this.")
    primary_metric: Literal["bench_psnr", "bench_ssim"] = "bench_psnr"
    default_scale: int = Field(4, ge=2, le=5)


class EngineConfig(_Frozen):
    tile: int = Field(256, ge=0, description="LR tile side; 0 = never tile.")
    overlap: int = Field(8, ge=0, description="LR pixels of overlap between tiles.")
    batch: int = Field(4, ge=1)
    max_input_pixels: int = Field(3840 * 2160, ge=1)


def flatten(cfg: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config to ``{"generator.tier": "fast", ...}`` (for MLflow params)."""
    out: dict[str, Any] = {}
    for key, value in cfg:
        name = f"{prefix}{key}"
        if isinstance(value, BaseModel):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict of overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix in {".yaml", ".yml"}:
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)
