"""Reading frames: videos (any container OpenCV opens) and folders of stills, streamed.

Frames are yielded one at a time as RGB ``uint8`` arrays of shape ``(H, W, 3)``, so memory
stays constant whatever the length of the video. Videos come out upright: OpenCV applies
rotation metadata (phone clips), as :mod:`videoboost.video.pipeline` does for upscaling.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from videoboost.config import SamplingConfig
from videoboost.errors import SourceError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video as OpenCV reports it (frame_count is the container's claim; width
    and height are upright, rotation metadata applied, like the frames)."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``index`` is its position in the source (0-based)."""

    index: int
    rgb: np.ndarray  # (H, W, 3) uint8, RGB


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"{path}: no such file; check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty (0 bytes); re-export or re-copy it")


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video and read its metadata.

    Raises:
        SourceError: missing, empty, not a video, or no decodable frame.
    """
    path = Path(path)
    _check_file(path)
    cap = cv2.VideoCapture(str(path))
    # Phone clips store landscape pixels plus rotation metadata: train on what viewers see.
    # On by default for the FFmpeg backend; set so a changed default cannot go unnoticed.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{path}: OpenCV cannot open it as a video (corrupt or not a video file)")
    info = VideoInfo(
        path=path,
        fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
        frame_count=max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
    )
    if info.width <= 0 or info.height <= 0:
        cap.release()
        raise SourceError(f"{path}: the video reports no picture size (corrupt or audio-only)")
    return cap, info


def read_video_info(path: str | Path) -> VideoInfo:
    cap, info = open_video(path)
    cap.release()
    return info


def _thumb(rgb: np.ndarray) -> np.ndarray:
    # A 64 px grey thumbnail makes the duplicate test cheap and blind to sensor noise.
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    side = 64 / max(h, w)
    size = (max(1, round(w * side)), max(1, round(h * side)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def clip_picks(total: int, sampling: SamplingConfig) -> set[int] | None:
    """Indices a video of ``total`` frames keeps under ``sampling.max_frames_per_clip``: that
    many of its every-k frames, one from the middle of each of as many equal parts of it, so
    a long clip gives frames from all of its length, not from its opening. None when no cap
    is set or the clip is short enough."""
    cap = sampling.max_frames_per_clip
    candidates = range(0, total, sampling.every)
    if cap is None or len(candidates) <= cap:
        return None
    n = len(candidates)
    return {candidates[(2 * k + 1) * n // (2 * cap)] for k in range(cap)}


def clip_length(path: str | Path, sampling: SamplingConfig) -> int:
    """The frame count :func:`sample_frames` needs to spread a per-clip cap over a video, or 0
    when no cap is set (reading the container's header is then not worth it)."""
    return read_video_info(path).frame_count if sampling.max_frames_per_clip else 0


def sample_frames(
    frames: Iterator[Frame], sampling: SamplingConfig, total: int = 0
) -> Iterator[Frame]:
    """Apply every-k (or, for a video of ``total`` frames, the per-clip picks), near-duplicate
    skipping and the caps, lazily. Without ``total`` (an unknown frame count) the per-clip cap
    still holds, on the first frames, like ``max_frames``."""
    picks = clip_picks(total, sampling)
    caps = [c for c in (sampling.max_frames, sampling.max_frames_per_clip) if c is not None]
    limit = min(caps, default=None)
    kept = 0
    last: np.ndarray | None = None
    for frame in frames:
        if picks is not None:
            if frame.index not in picks:
                continue
        elif frame.index % sampling.every:
            continue
        if sampling.dedupe_threshold > 0:
            thumb = _thumb(frame.rgb)
            if (
                last is not None
                and thumb.shape == last.shape
                and float(np.mean(np.abs(thumb - last))) < sampling.dedupe_threshold
            ):
                continue
            last = thumb
        yield frame
        kept += 1
        if limit is not None and kept >= limit:
            return


def iter_video_frames(path: str | Path) -> Iterator[Frame]:
    """Decode every frame of a video, in order.

    Raises:
        SourceError: as :func:`open_video`, or when not a single frame decodes.
    """
    cap, info = open_video(path)
    try:
        index = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield Frame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise SourceError(f"{info.path}: no frame could be decoded (truncated or zero-frame video)")


def read_image(path: str | Path) -> np.ndarray:
    """Read a still as RGB uint8 ``(H, W, 3)`` (greyscale and alpha are converted)."""
    path = Path(path)
    _check_file(path)
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # drops alpha, expands grey, 16-bit -> 8-bit
    if img is None:
        raise SourceError(f"{path}: not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))


def iter_image_folder(folder: str | Path) -> Iterator[Frame]:
    """Stills of a folder in name order, as frames (index = position in that order)."""
    folder = Path(folder)
    images = list_images(folder)
    if not images:
        raise SourceError(
            f"{folder}: the folder holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    for index, path in enumerate(images):
        yield Frame(index, read_image(path))


def iter_source(path: str | Path, sampling: SamplingConfig | None = None) -> Iterator[Frame]:
    """Frames of a video file, a single image or a folder of stills, sampled."""
    path = Path(path)
    sampling = sampling or SamplingConfig()
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder; check the path")
    if path.is_dir():
        # Distinct photos, not a frame sequence: every-k and near-duplicate skipping are for
        # video; only the per-source cap applies.
        return sample_frames(iter_image_folder(path), SamplingConfig(
            max_frames=sampling.max_frames, dedupe_threshold=0))  # fmt: skip
    if is_image(path):
        return iter([Frame(0, read_image(path))])
    return sample_frames(iter_video_frames(path), sampling, clip_length(path, sampling))
