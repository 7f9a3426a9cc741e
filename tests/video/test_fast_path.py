"""The fast path (the model's float frames straight to yuv420p) against the RGB path (uint8
RGB, then swscale): the written frames agree within a stated tolerance, for odd sizes,
rotated and 10-bit sources too, and the fast path loses nothing against the model's frames.

Tolerances, on 8-bit levels, at CRF 0 (lossless x264, so only the conversions differ):

* luma: at most 1 level apart (one rounding instead of two), and at least as close to the
  luma of the model's float frames;
* chroma: the fast path averages each 2x2 block, swscale filters differently; on these
  smooth pictures the planes agree within a mean of 1.5 levels.

At the default CRF 18 the fast path's PSNR-Y against the model's frames is within 0.1 dB of
the RGB path's (in practice equal or better).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from videoboost.config import EngineConfig
from videoboost.inference.engine import Upscaler, _to_uint8_once
from videoboost.video.colour import _Y_ROW, Yuv420, rgb_to_yuv420
from videoboost.video.pipeline import VideoWriter, probe, upscale_video

SCALE = 2


def _model_frame(i: int, h: int, w: int) -> np.ndarray:
    """A float32 'model output': smooth colour gradients, a moving square, a little noise,
    and values a little outside [0, 255] as a real generator gives."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack(
        [255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin((x + y + i) / 9)],
        axis=-1,
    )
    rgb[h // 4 : h // 2, (3 * i) % (w // 2) :][:, : w // 4] = (250, 30, 40)
    rgb += np.random.default_rng(i).normal(0, 2, rgb.shape).astype(np.float32)
    rgb[0, 0] = (-6.0, 262.0, 128.0)  # out of range: both paths clip
    return rgb.astype(np.float32)


def _write(path: Path, frames, crf: int) -> Path:
    with VideoWriter(path, Fraction(25), crf=crf) as writer:
        for f in frames:
            writer.write(f)
    return path


def _planes(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            a = f.to_ndarray(format="yuv420p")
            h = a.shape[0] * 2 // 3
            w = a.shape[1]
            flat = a.reshape(-1)
            q = (h // 2) * (w // 2)
            out.append(
                (
                    a[:h].astype(np.int16),
                    flat[h * w : h * w + q].reshape(h // 2, w // 2).astype(np.int16),
                    flat[h * w + q :].reshape(h // 2, w // 2).astype(np.int16),
                )
            )
        return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.transform(np.clip(rgb, 0, 255), _Y_ROW).astype(np.float64)


def _psnr_y(path: Path, model: list[np.ndarray]) -> float:
    vals = []
    for (y, _, _), ref in zip(_planes(path), model, strict=True):
        h, w = ref.shape[:2]
        mse = np.mean((y[:h, :w] - _luma(ref)) ** 2)
        vals.append(10 * np.log10(255**2 / max(mse, 1e-10)))
    return float(np.mean(vals))


@pytest.mark.parametrize("size", [(48, 64), (35, 63)], ids=["even", "odd"])
def test_fast_path_writes_the_rgb_paths_frames(tmp_path, size):
    h, w = size
    model = [_model_frame(i, h, w) for i in range(6)]
    old = _write(tmp_path / "rgb.mp4", [_to_uint8_once(m.copy()) for m in model], crf=0)
    new = _write(tmp_path / "fast.mp4", [rgb_to_yuv420(m) for m in model], crf=0)

    a, b = probe(old, count_frames=True), probe(new, count_frames=True)
    assert (a.width, a.height, a.frame_count) == (b.width, b.height, b.frame_count)
    assert (b.width, b.height) == (w + w % 2, h + h % 2)  # odd sizes padded to even, both
    for (y0, u0, v0), (y1, u1, v1), ref in zip(_planes(old), _planes(new), model, strict=True):
        assert np.abs(y0 - y1).max() <= 1
        want = _luma(ref)
        assert np.abs(y1[:h, :w] - want).mean() <= np.abs(y0[:h, :w] - want).mean()
        assert np.abs(u0 - u1).mean() <= 1.5 and np.abs(v0 - v1).mean() <= 1.5


def test_fast_path_keeps_the_quality_at_the_default_crf(tmp_path):
    model = [_model_frame(i, 72, 128) for i in range(8)]
    old = _write(tmp_path / "rgb.mp4", [_to_uint8_once(m.copy()) for m in model], crf=18)
    new = _write(tmp_path / "fast.mp4", [rgb_to_yuv420(m) for m in model], crf=18)
    assert _psnr_y(new, model) >= _psnr_y(old, model) - 0.1


def test_odd_frames_are_padded_by_edge_replication():
    rgb = _model_frame(0, 5, 7)
    yuv = rgb_to_yuv420(rgb)
    assert (yuv.shape, yuv.padded) == ((5, 7), (6, 8))
    y, cb, cr = yuv.planes()
    assert np.array_equal(y[5, :7], y[4, :7]) and np.array_equal(y[:5, 7], y[:5, 6])
    assert cb.shape == cr.shape == (3, 4)


def test_rgb_to_yuv420_leaves_its_input_alone_unless_allowed():
    rgb = _model_frame(1, 8, 8)
    kept = rgb.copy()
    rgb_to_yuv420(rgb)
    assert np.array_equal(rgb, kept)
    rgb_to_yuv420(rgb, overwrite=True)
    assert rgb.min() >= 0 and rgb.max() <= 255


def _nearest_predict(batch: np.ndarray) -> np.ndarray:
    up = batch.repeat(SCALE, axis=1).repeat(SCALE, axis=2)
    return up * 1.02 - 2.0  # a little out of range at both ends, like a real generator


def test_upscaler_planar_frames_match_its_rgb_frames():
    up = Upscaler(_nearest_predict, SCALE, EngineConfig(tile=0, batch=3))
    lrs = [(_model_frame(i, 9, 13)).clip(0, 255).astype(np.uint8) for i in range(5)]
    rgb = list(up.upscale_frames(lrs))
    planar = list(up.upscale_frames(lrs, planar=True))
    assert all(isinstance(p, Yuv420) for p in planar)
    for r, p in zip(rgb, planar, strict=True):
        assert p.shape == r.shape[:2] == (18, 26)
        y_old = rgb_to_yuv420(r).planes()[0].astype(int)
        assert np.abs(p.planes()[0].astype(int) - y_old).max() <= 1
    # With a target height the frames go through RGB (resize), then one conversion.
    sized = list(up.upscale_frames(lrs, planar=True, height=12))
    assert sized[0].shape == (12, 18)


def _rotated_source(path: Path, n: int, rotation: int, *, pix_fmt: str, codec: str) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 40, 22, pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(n):
            rgb = _model_frame(i, 22, 40).clip(0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    "rotation, pix_fmt, codec, suffix",
    [
        (90, "yuv420p", "libx264", ".mp4"),
        (0, "yuv420p10le", "ffv1", ".mkv"),
    ],
    ids=["rotated", "10-bit"],
)
def test_a_job_on_the_fast_path_matches_the_rgb_path(tmp_path, rotation, pix_fmt, codec, suffix):
    src = _rotated_source(tmp_path / f"src{suffix}", 7, rotation, pix_fmt=pix_fmt, codec=codec)
    up = Upscaler(_nearest_predict, SCALE, EngineConfig(tile=0, batch=2))
    outs = {}
    for planar in (False, True):
        dst = tmp_path / f"out_{planar}.mp4"
        upscale_video(
            src,
            dst,
            lambda frames, p=planar: up.upscale_frames(frames, planar=p),
            segment_frames=3,
            crf=0,
            job_key=str(planar),
        )
        outs[planar] = dst
    a, b = probe(outs[False], count_frames=True), probe(outs[True], count_frames=True)
    upright = (22, 40) if rotation % 180 else (40, 22)
    assert (b.width, b.height) == (a.width, a.height) == (upright[0] * SCALE, upright[1] * SCALE)
    assert a.frame_count == b.frame_count == 7 and a.fps == b.fps == 25
    for (y0, u0, v0), (y1, u1, v1) in zip(_planes(outs[False]), _planes(outs[True]), strict=True):
        assert np.abs(y0 - y1).max() <= 1
        assert np.abs(u0 - u1).mean() <= 1.5 and np.abs(v0 - v1).mean() <= 1.5
