"""Every setting of VideoBoost in one typed place.

Frozen pydantic models: Prefect validates them as flow parameters, MLflow logs them
flat as params (see :func:`flatten`), and a YAML/JSON file can override any field
(``videoboost train --config FILE``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scale = int  # 2..5, validated where it is a field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RealDegradeConfig(_Frozen):
    """The ranges the ``real`` profile draws from, afresh for every stored variant.

    Modelled on what low-res files people own have been through (the Real-ESRGAN recipe, cut
    to one pass): optical blur before the shrink, a shrink kernel, sensor noise, then a codec.
    Every range is a config value, so it is part of the dataset's version and logged to MLflow.

    The shares were chosen on the held-out benchmark (README, Real footage): mostly codec damage
    (what real files share), little blur and noise, and 30 % clean crops. Half the variants blurred
    and 40 % noisy (Real-ESRGAN's mix) cost 0.25 dB on clean input for no gain on coded input
    after 3 minutes of the fast tier.
    """

    variants: int = Field(
        6,
        ge=1,
        le=32,
        description="Degraded LR variants stored per frame (each with its own random draw); "
        "training picks one per crop, so one frame teaches many degradations.",
    )
    clean_share: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Share of training crops taken from the clean shrink instead of a variant, "
        "so clean input keeps its quality.",
    )
    blur_prob: float = Field(0.15, ge=0, le=1, description="Share of variants blurred first.")
    blur_sigma: tuple[float, float] = Field(
        (0.2, 0.7),
        description="Gaussian blur sigma range, in LR pixels (x scale in HR pixels); beyond "
        "~0.7 the model learns to sharpen so hard that clean input suffers.",
    )
    aniso_prob: float = Field(
        0.4, ge=0, le=1, description="Share of the blurs that are anisotropic (random angle)."
    )
    kernels: tuple[Literal["bicubic", "area", "bilinear"], ...] = Field(
        ("bicubic", "area", "bilinear"), min_length=1, description="Shrink kernels, equally likely."
    )
    noise_prob: float = Field(0.15, ge=0, le=1, description="Share of variants given noise.")
    noise_sigma: tuple[float, float] = Field(
        (1.0, 5.0), description="Noise sigma range, grey levels (0-255) at mid-grey."
    )
    poisson_share: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Share of the noisy variants whose noise grows with brightness "
        "(Poisson-like, shot noise), the rest Gaussian; 40 % of either is grey (luma only).",
    )
    jpeg_prob: float = Field(0.35, ge=0, le=1, description="Share of variants JPEG-coded.")
    jpeg_quality: tuple[int, int] = Field((30, 90), description="JPEG quality range.")
    h264_prob: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Share of variants H.264-coded (libx264 through PyAV, yuv420p); the rest "
        "of the variants after JPEG and H.264 keep their uncoded pixels.",
    )
    h264_pframe_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of the H.264 variants coded as a P-frame: the frame follows a copy "
        "of itself moved by a random sub-pixel step, as in a clip, so motion-compensated "
        "prediction and its residual coding leave their own artefacts (the benchmark codes "
        "clips); the rest are lone I-frames.",
    )
    h264_crf: tuple[int, int] = Field(
        (18, 34),
        description="x264 CRF range. A lone I-frame gets a finer quantiser than the P/B frames "
        "of a clip at the same CRF, so the range reaches past the benchmark's CRF 30; at 38 "
        "frames were so damaged that clean input lost more than coded input gained.",
    )

    @model_validator(mode="after")
    def _check(self) -> RealDegradeConfig:
        for name in ("blur_sigma", "noise_sigma", "jpeg_quality", "h264_crf"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name}: the range ({lo}, {hi}) must be 0 <= low <= high")
        if self.jpeg_prob + self.h264_prob > 1:
            raise ValueError("jpeg_prob + h264_prob must be at most 1 (one codec per variant)")
        if not (self.jpeg_quality[0] >= 5 and self.jpeg_quality[1] <= 100):
            raise ValueError("jpeg_quality must lie in 5..100")
        if self.h264_crf[1] > 51:
            raise ValueError("h264_crf must lie in 0..51")
        return self


class DegradeConfig(_Frozen):
    """How a low-res input is made from a high-res frame."""

    profile: Literal["clean", "real"] = Field(
        "real",
        description="clean = one fixed degradation (the fields below); real = the clean LR "
        "plus `real.variants` randomly degraded, codec-damaged LR variants per frame.",
    )
    real: RealDegradeConfig = RealDegradeConfig()
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
    max_frames_per_clip: int | None = Field(
        None,
        ge=1,
        description="Cap of kept frames per video, spread evenly over its length (among the "
        "every-k frames, by the container's frame count) rather than its first frames, so a "
        "long clip cannot swamp the other sources; None = no cap.",
    )
    dedupe_threshold: float = Field(
        1.0,
        ge=0,
        description="Skip a frame whose mean absolute difference (grey levels, on a 64 px thumbnail) "
        "to the last kept frame is below this; 0 = keep duplicates.",
    )


class DatasetConfig(_Frozen):
    """How a versioned dataset of whole LR/HR frames is built from sources."""

    degrade: DegradeConfig = DegradeConfig()
    sampling: SamplingConfig = SamplingConfig()
    min_lr_side: int = Field(
        32,
        ge=8,
        le=1024,
        description="Frames whose LR side is shorter are skipped: training crops need room.",
    )
    val_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share held out for validation: the last part (in time) of each video, and "
        "that share of the stills of a folder (chosen by content hash, so stable).",
    )
    window: int = Field(
        0,
        ge=0,
        le=2,
        description="Also store each frame's k neighbours a side (video: the adjacent frames; "
        "stills: synthetic camera motion), degraded like the frame, for the video tier; 0 = off.",
    )
    prescale: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(
        {},
        description="Per source (its content hash): area-downscale factor applied to its frames "
        "before they are used as HR, for heavily compressed footage whose codec artefacts would "
        "otherwise be learnt as detail (the corpus manifest's `prescale` entries).",
    )
    shard_frames: int = Field(16, ge=1, description="Frames per npz shard.")
    min_frame_std: float = Field(
        2.0, ge=0, description="Reject near-constant HR frames (grey levels)."
    )
    min_per_split: int = Field(
        2, ge=1, description="Validation fails below this many frames per split."
    )
    seed: int = 0

    @property
    def scale(self) -> int:
        return self.degrade.scale


class GeneratorConfig(_Frozen):
    """Generator architecture. ``tier`` picks the builder in ``models.networks.GENERATORS``."""

    tier: Literal["fast", "quality", "video"] = "fast"
    scale: int = Field(4, ge=2, le=5)
    window: int = Field(
        None, ge=0, le=2, description="video tier: neighbouring frames a side (k of a 2k+1 "
        "window; default 1); the single-frame tiers take 0."
    )  # fmt: skip
    trunk: Literal["fast", "quality"] = Field(
        "fast", description="video tier: the kind of trunk the aligned window is fused into."
    )
    filters: int = Field(
        None, ge=4, description="Width of every conv (fast) or of the trunk (quality); "
        "default per tier (TIER_DEFAULTS)."
    )  # fmt: skip
    blocks: int = Field(
        None, ge=1, description="fast: 3x3 convs between the first and the head; quality: "
        "residual blocks; default per tier (TIER_DEFAULTS)."
    )  # fmt: skip
    damage_code: int = Field(
        0, ge=0, le=64, description="fast/quality: width of a blind estimate of how damaged the "
        "input is (a code pooled from the LR pixels alone) that scales every block's features; "
        "0 (default) builds no estimator. A study candidate (bench/scaling.py), not a tier default."
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _tier_defaults(cls, data: Any) -> Any:
        # Width and depth mean different things per tier, so an unset one takes its tier's
        # measured default rather than one number shared by both.
        if isinstance(data, dict):
            tier = data.get("tier", "fast")
            filters, blocks = TIER_DEFAULTS.get(tier, (None, None))
            data = dict(data)
            if data.get("filters") is None:
                data["filters"] = filters
            if data.get("blocks") is None:
                data["blocks"] = blocks
            if data.get("window") is None:
                data["window"] = 1 if tier == "video" else 0
        return data

    @model_validator(mode="after")
    def _window_only_for_video(self) -> GeneratorConfig:
        if self.tier == "video" and self.window < 1:
            raise ValueError("the video tier needs window >= 1 (k neighbours a side)")
        if self.tier != "video" and self.window:
            raise ValueError(f"the {self.tier} tier sees one frame; window applies to 'video'")
        if self.tier == "video" and self.damage_code:
            raise ValueError("damage_code applies to the single-frame tiers (fast, quality)")
        return self


# (filters, blocks) of each tier, measured on 2 CPU cores (README, "Training benchmark"): the
# fast tier is a plain stack of 3x3 convs 32 wide (14 % more multiply-adds per pixel than
# ESPCN's 5x5/64 layout, 0.2 dB better for the same minutes), the quality tier 8 residual blocks 32 wide.
# The video tier defaults to the fast trunk's size, so the two compare at the same width and depth.
TIER_DEFAULTS: dict[str, tuple[int, int]] = {"fast": (32, 3), "quality": (32, 8), "video": (32, 3)}


class DiscriminatorConfig(_Frozen):
    filters: int = Field(32, ge=4, description="Width of the first block; doubles every block.")
    blocks: int = Field(3, ge=1, le=6, description="Strided blocks; output is a patch map.")


class TrainConfig(_Frozen):
    """Everything a training run needs besides the dataset."""

    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    batch_size: int = Field(
        16,
        ge=1,
        description="Global batch: split evenly over all replicas (of all workers), so it must "
        "be a multiple of the replica count; the same value trains the same model on any strategy.",
    )
    strategy: Literal["default", "mirrored", "multi_worker"] = Field(
        "default",
        description="tf.distribute strategy (see videoboost.training.distribute): default = one device; "
        "mirrored = data-parallel replicas on the local `devices`; multi_worker = "
        "MultiWorkerMirroredStrategy over the cluster in the TF_CONFIG environment variable.",
    )
    devices: tuple[str, ...] | None = Field(
        None,
        description="mirrored only: devices to replicate on, e.g. ['/gpu:0', '/gpu:1']; "
        "None = every local GPU, else the CPU.",
    )
    crop: int = Field(
        32,
        ge=8,
        le=512,
        description="LR side of the random crops drawn every step (HR side is crop * scale).",
    )
    steps_per_epoch: int = Field(200, ge=1)
    pretrain_epochs: int | None = Field(
        None,
        ge=0,
        description="Phase 1: L1 pixel loss only. None = 5 epochs without `minutes`, no cap "
        "with `minutes` (the budget ends the run); a number with `minutes` is a cap (0 = none).",
    )
    minutes: float | None = Field(
        None,
        gt=0,
        description="Wall-clock budget of the whole run (both phases, summed over resumes); "
        "None = run the configured epochs. Under a budget the learning rate follows the elapsed "
        "time instead of the step count, so the run is no longer bit-for-bit repeatable.",
    )
    gan_share: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="With `minutes` and `gan_epochs` > 0: share of the budget kept for phase 2.",
    )
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
    val_frames: int = Field(8, ge=1, description="Validation frames scored per epoch.")
    val_max_side: int = Field(
        256,
        ge=16,
        description="Validation frames larger than this (LR pixels a side) are centre-cropped to "
        "it: a 1080p photo otherwise costs seconds of every epoch's (and the budget's) time.",
    )
    gan_max_loss_db: float = Field(
        0.1,
        ge=0,
        description="The adversarial phase may cost the generator at most this much PSNR on the "
        "held-out benchmark against the end of the pixel phase; beyond it the pixel-phase "
        "weights are kept (and the run says so).",
    )
    sample_every: int = Field(1, ge=1, description="Log a comparison image every k epochs.")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Pixel phase: stop after this many epochs without a better val_psnr. "
        "None = 5 without `minutes`, off with `minutes` (the budget and its learning-rate "
        "schedule decide; the best epoch's weights are kept either way).",
    )
    seed: int = 0
    deterministic: bool = Field(
        True,
        description="TF op determinism: the same seed and data give the same model. Not under "
        "`minutes` (the clock makes a run unrepeatable anyway); it also rules out XLA.",
    )
    threads: int = Field(2, ge=1, description="TF intra-op threads (TF defaults often use one).")
    precision: Literal["float32", "mixed_bfloat16", "auto"] = Field(
        "float32",
        description="Training arithmetic: mixed_bfloat16 runs the trunk in bfloat16 on the "
        "host's matrix units (weights, the bicubic skip and the losses stay float32); auto picks "
        "it where the CPU has AMX (avx512_bf16 alone measured no faster). The trained "
        "generator is float32 either way.",
    )
    jit_compile: bool = Field(
        True,
        description="XLA for the train step (default strategy, no op determinism): measured "
        "1.6x (fast) and 1.4x (quality) faster steps on 2 CPU cores. Possible since the bicubic "
        "skip became a convolution (the resize op had no XLA kernel).",
    )


DEFAULT_PRETRAIN_EPOCHS = 5  # phase 1 epochs of a run without a time budget
DEFAULT_PATIENCE = 5


class BenchmarkConfig(_Frozen):
    """The held-out benchmark: which frames, and how throughput is measured.

    ``frames`` and ``segments`` (the frame selection) are part of the benchmark's version; the
    throughput settings and ``threads`` are not (they change no score).
    """

    frames: int = Field(24, ge=1, description="Frames per video (cap).")
    segments: int = Field(
        3,
        ge=1,
        description="Runs of consecutive frames per video, spread evenly over its length "
        "(flicker is measured within a run); fewer when a run would have under 2 frames.",
    )
    tracks: tuple[str, ...] = Field(
        ("clean", "h264_crf23", "h264_crf30", "jpeg_q50", "video"),
        min_length=1,
        description="Input kinds each model is scored on, all made from the same frames: "
        "`clean` (the antialiased bicubic shrink), `h264_crfNN` (that shrink coded with libx264 "
        "at CRF NN, yuv420p; a video's runs as clips, a still as one frame), `jpeg_qNN` (JPEG "
        "at quality NN), `video` (the video sources alone, their runs coded as H.264 clips at "
        "CRF 23 and scored per clip; not part of the mean over tracks, which already holds "
        "those frames). Each is scored against bicubic of the same input.",
    )
    fps_warmup: int = Field(2, ge=1, description="Untimed 720p runs first (graph tracing).")
    fps_runs: int = Field(5, ge=0, description="Timed 720p runs (median); 0 = skip throughput.")
    threads: int = Field(2, ge=1, description="TF intra-op threads while evaluating.")

    @model_validator(mode="after")
    def _check_tracks(self) -> BenchmarkConfig:
        for name in self.tracks:
            parse_track(name)
        if len(set(self.tracks)) != len(self.tracks):
            raise ValueError(f"tracks are listed twice: {self.tracks}")
        if self.tracks[0] != "clean":
            # The clean track carries the historical keys (bench_psnr_gain, the bicubic floor).
            raise ValueError(f"the first track must be 'clean': {self.tracks}")
        return self


# The video track's input: the video sources' runs coded as H.264 clips at this CRF, what a
# typical real file holds (see videoboost.evaluation.benchmark).
VIDEO_TRACK_CRF = 23


def parse_track(name: str) -> tuple[str, int | None]:
    """``"clean"`` -> ``("clean", None)``, ``"h264_crf30"`` -> ``("h264", 30)``,
    ``"jpeg_q50"`` -> ``("jpeg", 50)``, ``"video"`` -> ``("video", 23)``; anything else is a
    ``ValueError``."""
    import re

    if name == "clean":
        return "clean", None
    if name == "video":  # the video sources as clips, coded as a typical real file is
        return "video", VIDEO_TRACK_CRF
    m = re.fullmatch(r"h264_crf(\d{1,2})|jpeg_q(\d{1,3})", name)
    if m and m[1] is not None and int(m[1]) <= 51:
        return "h264", int(m[1])
    if m and m[2] is not None and 5 <= int(m[2]) <= 100:
        return "jpeg", int(m[2])
    raise ValueError(
        f"unknown benchmark track {name!r}: use clean, video, h264_crfNN (NN 0-51) or jpeg_qNN "
        "(5-100)"
    )


class PromoteConfig(_Frozen):
    min_gain_db: float = Field(0.5, description="Floor over bicubic on the clean track, dB.")
    tolerance_db: float = Field(
        0.1,
        ge=0,
        description="May be this much worse than champion on PSNR (the mean over the tracks).",
    )
    track_tolerance_db: float = Field(
        0.5,
        ge=0,
        description="May be at most this much worse than the champion on any single track "
        "(clean, each coded one), whatever the mean says. 0.5 dB: the first `real` model gives "
        "up a few tenths on clean input for a dB or more on coded input, and must replace a "
        "`clean` champion; a loss past half a dB on one kind of input is a visible regression "
        "(README, Promotion).",
    )
    margin: float = Field(0.05, ge=0, description="Must beat champion on primary metric by this.")
    primary_metric: Literal["bench_psnr_mean", "bench_psnr", "bench_ssim"] = Field(
        "bench_psnr_mean",
        description="bench_psnr_mean = PSNR averaged over the benchmark's tracks (clean and "
        "coded input weigh the same); bench_psnr / bench_ssim = the clean track only.",
    )
    default_scale: int = Field(4, ge=2, le=5)


class EngineConfig(_Frozen):
    # 512: frames up to 512 px run whole; at 256 a 320x180 frame would run as two overlapping
    # tiles (1.6x the work) for no memory benefit.
    tile: int = Field(512, ge=0, description="LR tile side; 0 = never tile.")
    overlap: int = Field(8, ge=0, description="LR pixels of overlap between tiles.")
    batch: int = Field(4, ge=1)
    max_input_pixels: int = Field(3840 * 2160, ge=1)


class UpscaleConfig(_Frozen):
    """Defaults of ``videoboost upscale`` and the service: inference plus video encoding."""

    tile: int = Field(512, ge=0, description="LR tile side; frames up to it run whole, 0 = never.")
    overlap: int = Field(8, ge=0, description="LR pixels of overlap between tiles.")
    batch: int = Field(4, ge=1, description="Frames (or tiles) per model call.")
    segment_frames: int = Field(
        64, ge=1, description="Video frames per resumable segment (work lost to a crash)."
    )
    crf: int = Field(18, ge=0, le=51, description="x264 quality; 18 is visually lossless.")
    # superfast: 45.6 dB on Y at CRF 18 against medium's 45.9, for 28 instead of 101 CPU-ms a
    # 720p frame (README, Video benchmark); the encoder was the slowest stage at medium.
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ] = Field("superfast", description="x264 speed/size trade-off.")
    runtime: Literal["auto", "tf-f32", "tf-bf16", "ov-f32", "ov-bf16", "ov-int8"] = Field(
        "auto",
        description="Inference runtime; auto times each one this CPU supports on the model and "
        "keeps the fastest whose output agrees with tf-f32 (videoboost.evaluation.runtime_select).",
    )

    def engine(self, max_input_pixels: int | None = None, tile: int | None = None) -> EngineConfig:
        """The :class:`EngineConfig` for these settings (``tile``/budget overridable)."""
        return EngineConfig(
            tile=self.tile if tile is None else tile,
            overlap=self.overlap,
            batch=self.batch,
            max_input_pixels=max_input_pixels or EngineConfig().max_input_pixels,
        )


class ServeConfig(UpscaleConfig):
    """The BentoML service: which model, request limits, batching.

    Every field can be set with ``--arg key=value`` when serving from source or building
    (``bentoml build`` records them; serving a built bento ignores ``--arg``), and with an
    environment variable ``VIDEOBOOST_SERVE_<KEY>`` (e.g. ``VIDEOBOOST_SERVE_MAX_BATCH_SIZE=1``),
    which wins over both.
    """

    model: str | None = Field(
        None,
        description="BentoML model tag to serve; None = the store's latest videoboost-generator. "
        "`videoboost bento build` pins the imported version here.",
    )
    max_input_pixels: int = Field(
        1920 * 1080,
        ge=1,
        description="Pixel budget of one image or video frame; above it the answer is HTTP 413. "
        "Full HD in is 8K out at x4 (~100 MB of RGB), the most one response should hold.",
    )
    max_image_mb: float = Field(32, gt=0, description="Upload limit of one image request.")
    max_video_mb: float = Field(
        256,
        gt=0,
        description="Upload limit of one video job; BentoML keeps task input and result in its "
        "SQLite result store (base64), so this bounds its size.",
    )
    max_video_frames: int = Field(9000, ge=1, description="Frame budget of one video job.")
    video_jobs: int = Field(
        1,
        ge=1,
        description="Video jobs run at once, on their own threads; more wait in the task queue. "
        "They never take the request threads of /upscale and /upscale_frames.",
    )
    max_tile: int = Field(1024, ge=32, description="Largest tile a request may ask for.")
    max_batch_size: int = Field(
        1,
        ge=1,
        description="Adaptive batching: frames per model call; 1 = batching off, the default: on "
        "CPU it cost 15-20 % of throughput (README, Serving). A GPU deployment sets 8.",
    )
    max_latency_ms: int = Field(
        30000,
        ge=100,
        description="Adaptive batching: the queueing budget. BentoML answers 503 once it predicts "
        "a request cannot finish within it; at 1 s a CPU worker answered 503 under 64 concurrent "
        "requests, 30 s never did (request deadlines are traffic.timeout's job).",
    )
    threads: int = Field(0, ge=0, description="TF intra-op threads; 0 = all cores.")


class DaskConfig(_Frozen):
    """Batch upscaling fanned out on a Dask cluster (the ``batch-upscale`` flow's ``dask``).

    Off unless asked for, by the flow parameter or by ``VIDEOBOOST_DASK_<FIELD>`` variables in
    the flow's environment (see :meth:`from_env`); without either the flow runs as before, in
    threads of one process.
    """

    address: str | None = Field(
        None,
        min_length=1,
        pattern=r"^\S+$",
        description="Scheduler of a running cluster, e.g. tcp://10.0.0.5:8786; None = start a "
        "LocalCluster for the run and close it afterwards.",
    )
    workers: int = Field(2, ge=1, description="LocalCluster worker processes (not with address).")
    threads_per_worker: int = Field(
        1,
        ge=1,
        description="LocalCluster tasks at once per worker: 1, as one task keeps TF's threads busy.",
    )
    split_frames: int = Field(
        600,
        ge=1,
        description="A video longer than this is split at keyframes into parts of at least this "
        "many frames, each upscaled by a task of its own, then stitched (no re-encode).",
    )
    timeout_s: float = Field(
        30, gt=0, description="Give up connecting to the scheduler after this many seconds."
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> DaskConfig | None:
        """The config from ``VIDEOBOOST_DASK_ADDRESS``, ``VIDEOBOOST_DASK_WORKERS``, ... or None.

        None when no such variable is set (Dask stays off). A bad value raises ``ValueError``
        naming the variable.
        """
        import os

        from pydantic import ValidationError

        env = os.environ if environ is None else environ
        values = {
            name: env[f"VIDEOBOOST_DASK_{name.upper()}"]
            for name in cls.model_fields
            if env.get(f"VIDEOBOOST_DASK_{name.upper()}", "").strip()
        }
        if not values:
            return None
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(
                f"VIDEOBOOST_DASK_{str(first['loc'][0]).upper()}={values[first['loc'][0]]!r}: "
                f"{first['msg']}"
            ) from None


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
