"""Batched, tiled super-resolution inference, independent of any ML framework.

The engine turns a ``predict`` callable (a model) into whole-frame upscaling:

* :func:`prepare_image` normalises any reasonable input (grey, RGBA, 16-bit, float) to
  ``(H, W, 3)`` uint8 RGB and rejects the rest with :class:`InvalidImage`.
* :meth:`Upscaler.upscale_image` splits a large frame into overlapping tiles, predicts them in
  batches and blends them with feathered weights, so memory follows the tile size and there
  are no seams.
* :meth:`Upscaler.upscale_frames` streams a video: frames of equal size are batched, nothing
  is read ahead beyond one batch.
* :func:`plan_output` / :func:`resize_to_height` reach a target height the model's fixed scale
  cannot (Lanczos for the remaining factor), and :func:`apply_postprocess` adds optional
  contrast/brightness/unsharp mask (off by default).

``keras_predict`` adapts a Keras model; TensorFlow is imported only when it is called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from videoboost.config import EngineConfig
from videoboost.data.align import iter_windows, still_window, window_of_channels
from videoboost.errors import VideoBoostError
from videoboost.video.colour import Yuv420, rgb_to_yuv420

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]
"""``(N, h, w, 3)`` float32 RGB in [0, 255] -> ``(N, h*s, w*s, 3)`` float32, about [0, 255]."""


class InvalidImage(VideoBoostError):
    """An image the engine cannot interpret (wrong shape or dtype, empty, NaN, out of range)."""

    exit_code = 2


class ImageTooLarge(VideoBoostError):
    """An image above ``EngineConfig.max_input_pixels``."""

    exit_code = 2


# --------------------------------------------------------------------------- input


def prepare_image(arr: Any, *, max_pixels: int | None = None) -> np.ndarray:
    """Normalise an image to ``(H, W, 3)`` uint8 RGB (contiguous).

    Accepted inputs:

    * shape ``(H, W)`` or ``(H, W, 1)`` (grey: copied to 3 channels), ``(H, W, 2)`` (grey +
      alpha), ``(H, W, 3)`` (RGB), ``(H, W, 4)`` (RGBA). Alpha is dropped, not composited:
      the colour channels are kept as stored, because SR models are trained on RGB and
      compositing on black would darken soft edges. Callers who need alpha should upscale it
      separately.
    * uint8 as is; uint16 as 16-bit full range (``>> 8``); other integer types when every value
      lies in [0, 255]; bool is rejected.
    * float (any width) in **[0, 1]** (the float-image convention of scikit-image, Pillow and
      TF ``convert_image_dtype``), scaled by 255 and rounded. Values outside
      ``[-1/255, 1 + 1/255]`` are rejected rather than guessed at (a [0, 255] float image would
      otherwise come out white); NaN and infinity are rejected.

    Args:
        arr: the image (anything ``np.asarray`` accepts).
        max_pixels: reject images with more than this many pixels (checked before any copy).

    Raises:
        InvalidImage: wrong ndim or channel count, empty, unsupported dtype, NaN/inf, range.
        ImageTooLarge: more than ``max_pixels`` pixels.
    """
    a = np.asarray(arr)
    if a.ndim not in (2, 3):
        raise InvalidImage(f"image must be (H, W) or (H, W, C), got shape {a.shape}")
    if a.ndim == 3 and not 1 <= a.shape[2] <= 4:
        raise InvalidImage(
            f"image must have 1 to 4 channels (grey, grey+alpha, RGB, RGBA), got {a.shape[2]}"
        )
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        raise InvalidImage(f"image is empty (shape {a.shape})")
    if max_pixels is not None and h * w > max_pixels:
        raise ImageTooLarge(
            f"image is {w}x{h} = {h * w} pixels, above the limit of {max_pixels} "
            "(EngineConfig.max_input_pixels); downscale it first or raise the limit"
        )
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] in (2, 4):  # drop alpha (see docstring)
        a = a[:, :, : a.shape[2] - 1]
    a = _to_uint8(a)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    if a.dtype == np.bool_:
        raise InvalidImage("boolean images are not supported; convert to uint8 (0/255) first")
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise InvalidImage(
                f"{a.dtype} image has values in [{lo}, {hi}]; expected [0, 255] "
                "(cast 16-bit data to uint16)"
            )
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise InvalidImage("image contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        tol = 1 / 255
        if lo < -tol or hi > 1 + tol:
            raise InvalidImage(
                f"float image has values in [{lo:g}, {hi:g}]; expected [0, 1] "
                "(divide [0, 255] data by 255 or pass uint8)"
            )
        return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise InvalidImage(f"unsupported image dtype {a.dtype}")


# --------------------------------------------------------------------------- target size


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


def plan_output(
    in_h: int, in_w: int, scale: int, height: int | None = None
) -> tuple[int, int, str]:
    """Output size for an input of ``in_h`` x ``in_w``, a model of ``scale`` and a target height.

    Args:
        in_h, in_w: input size in pixels.
        scale: the model's integer factor.
        height: wanted output height, or None for the model's native ``in_h * scale``.

    Returns:
        ``(out_h, out_w, note)``. With a target height the width keeps the aspect ratio,
        rounded to even (H.264 yuv420p needs it). ``note`` says in words what happens,
        in particular when the target needs more than the model's scale (the rest is
        Lanczos interpolation, which adds no detail) or less (the model output is downscaled).
    """
    if in_h < 1 or in_w < 1 or scale < 1:
        raise ValueError(f"sizes and scale must be positive, got {in_w}x{in_h} x{scale}")
    sr_h, sr_w = in_h * scale, in_w * scale
    native = f"model x{scale}: {in_w}x{in_h} -> {sr_w}x{sr_h}"
    if height is None or height == sr_h:
        return sr_h, sr_w, native
    if height < 1:
        raise ValueError(f"target height must be positive, got {height}")
    out_w = _even(in_w * height / in_h)
    factor = height / in_h
    if height > sr_h:
        note = (
            f"{native}; target {out_w}x{height} needs x{factor:.3g}, more than the model's "
            f"x{scale}: the remaining x{height / sr_h:.3g} is Lanczos interpolation (no new detail)"
        )
    else:
        note = f"{native}; then downscaled to {out_w}x{height} (x{height / sr_h:.3g})"
        if height < in_h:
            note += f"; the target is smaller than the input ({in_w}x{in_h})"
    return height, out_w, note


def resize_to_height(rgb: np.ndarray, height: int) -> np.ndarray:
    """Resize to ``height`` keeping the aspect ratio; width rounded to even.

    Enlarging uses Lanczos (``cv2.INTER_LANCZOS4``). Shrinking uses ``cv2.INTER_AREA``:
    OpenCV's Lanczos does not low-pass when shrinking, so it would alias fine texture.

    Args:
        rgb: ``(H, W, 3)`` uint8.
        height: output height in pixels.

    Returns:
        ``(height, W', 3)`` uint8, the input itself when the size already matches.
    """
    h, w = rgb.shape[:2]
    out_w = _even(w * height / h)
    if (height, out_w) == (h, w):
        return rgb
    shrinking = height * out_w < h * w
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    return cv2.resize(rgb, (out_w, height), interpolation=interp)


# --------------------------------------------------------------------------- post-processing


class PostProcess(BaseModel):
    """Optional finishing of the upscaled frame; the defaults change nothing.

    Applied in this order: contrast around mid-grey, brightness offset, unsharp mask.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    contrast: float = Field(1.0, gt=0, le=3, description="Gain around 127.5; 1 = unchanged.")
    brightness: float = Field(0.0, ge=-255, le=255, description="Offset in grey levels.")
    unsharp_amount: float = Field(0.0, ge=0, le=5, description="0 = no sharpening.")
    unsharp_radius: float = Field(1.0, gt=0, le=20, description="Gaussian sigma, output pixels.")

    @property
    def is_identity(self) -> bool:
        return self.contrast == 1.0 and self.brightness == 0.0 and self.unsharp_amount == 0.0


def apply_postprocess(rgb: np.ndarray, pp: PostProcess | None) -> np.ndarray:
    """Apply ``pp`` to a ``(H, W, 3)`` uint8 image; returns the input unchanged if it is off."""
    if pp is None or pp.is_identity:
        return rgb
    x = rgb.astype(np.float32)
    if pp.contrast != 1.0 or pp.brightness != 0.0:
        x = (x - 127.5) * pp.contrast + (127.5 + pp.brightness)
    if pp.unsharp_amount > 0:
        blurred = cv2.GaussianBlur(x, (0, 0), sigmaX=pp.unsharp_radius)
        x += pp.unsharp_amount * (x - blurred)
    return np.rint(np.clip(x, 0, 255)).astype(np.uint8)


# --------------------------------------------------------------------------- tiling


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``length``, overlapping >= ``overlap``.

    The fewest tiles that satisfy the overlap are spread evenly, so every tile has the same
    size (one batch shape) and no thin sliver tile is left at the end.
    """
    if length <= tile:
        return [0]
    n = -(-(length - overlap) // (tile - overlap))
    return [(i * (length - tile)) // (n - 1) for i in range(n)]


def _ramp(n: int, ramp: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1-D feather weights: linear over ``ramp`` pixels at interior edges, 1 elsewhere.

    Weights never reach 0 (a pixel centre is at +0.5), so every output pixel has weight.
    """
    w = np.ones(n, np.float32)
    if ramp > 0:
        r = np.minimum((np.arange(n, dtype=np.float32) + 0.5) / ramp, 1.0)
        if ramp_start:
            w = np.minimum(w, r)
        if ramp_end:
            w = np.minimum(w, r[::-1])
    return w


def _to_uint8_once(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0.0, 255.0, out=x), out=x).astype(np.uint8)


class Upscaler:
    """Runs a super-resolution ``predict`` over images and frame streams.

    Args:
        predict: ``(N, h, w, 3)`` float32 RGB in [0, 255] -> ``(N, h*scale, w*scale, 3)``
            float32 in about [0, 255] (unclipped: the engine clips once, at the end).
        scale: the model's integer upscaling factor.
        config: tile size, overlap, batch size and input limit.
        window: ``k`` of a video-tier model, which takes ``2k + 1`` aligned frames stacked
            along channels (:mod:`videoboost.data.align`); 0 (default) for a single-frame model.
            :meth:`upscale_frames` then feeds each frame with its neighbours, and
            :meth:`upscale_image` feeds a lone image as a repeated frame.
    """

    def __init__(
        self,
        predict: Predict,
        scale: int,
        config: EngineConfig = EngineConfig(),
        *,
        window: int = 0,
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        if config.tile and config.overlap >= config.tile:
            raise ValueError(f"overlap ({config.overlap}) must be less than tile ({config.tile})")
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.predict = predict
        self.scale = scale
        self.config = config
        self.window = window

    @property
    def mode(self) -> str:
        """What a lone image gets: said in logs and in the service's answers."""
        if not self.window:
            return "single-frame"
        return f"video tier, window of {2 * self.window + 1} (a lone image is repeated)"

    def prepare_image(self, arr: Any) -> np.ndarray:
        """:func:`prepare_image` with this engine's ``max_input_pixels``."""
        return prepare_image(arr, max_pixels=self.config.max_input_pixels)

    def _needs_tiling(self, h: int, w: int) -> bool:
        return self.config.tile > 0 and max(h, w) > self.config.tile

    def _predict(self, batch: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        out = np.asarray(self.predict(batch), dtype=np.float32)
        want = (n, h * self.scale, w * self.scale, 3)
        if out.shape != want:
            raise ValueError(
                f"predict returned shape {out.shape} for input {batch.shape}; expected {want} "
                f"(is the model's scale really {self.scale}?)"
            )
        return out

    def _finish(self, sr: np.ndarray, height: int | None, pp: PostProcess | None) -> np.ndarray:
        if height is not None:
            sr = resize_to_height(sr, height)
        return apply_postprocess(sr, pp)

    def upscale_image(
        self, rgb: Any, *, height: int | None = None, postprocess: PostProcess | None = None
    ) -> np.ndarray:
        """Upscale one image.

        Args:
            rgb: any image :func:`prepare_image` accepts, typically ``(H, W, 3)`` uint8 RGB.
            height: optional output height (see :func:`plan_output`); None = ``H * scale``.
            postprocess: optional finishing; None = off.

        Returns:
            ``(H*scale, W*scale, 3)`` uint8 RGB (or the ``height`` size).

        Raises:
            InvalidImage, ImageTooLarge: from :func:`prepare_image`, before ``predict`` runs.
        """
        lr = still_window(self.prepare_image(rgb), self.window)
        return self._upscale_input(lr, height, postprocess)

    def upscale_stack(
        self,
        stack: np.ndarray,
        *,
        height: int | None = None,
        postprocess: PostProcess | None = None,
    ) -> np.ndarray:
        """Upscale one model input as it is: ``(H, W, 3 * (2k + 1))`` uint8, an aligned window
        (see :mod:`videoboost.data.align`); for a single-frame model the same as :meth:`upscale_image`
        without its input checks."""
        return self._upscale_input(stack, height, postprocess)

    def _upscale_input(
        self, lr: np.ndarray, height: int | None, postprocess: PostProcess | None
    ) -> np.ndarray:
        if self._needs_tiling(*lr.shape[:2]):
            sr = self._upscale_tiled(lr)
        else:
            sr = _to_uint8_once(self._predict(lr[None].astype(np.float32))[0])
        return self._finish(sr, height, postprocess)

    def _upscale_tiled(self, lr: np.ndarray) -> np.ndarray:
        """Tile, predict in batches, feather-blend; memory is one row of tiles, not the frame.

        Tiles are visited row by row. HR rows that no later tile row reaches are final: they
        are normalised, rounded to uint8 and written out, and only the overlap carries over.
        """
        s, tile, overlap, bs = self.scale, self.config.tile, self.config.overlap, self.config.batch
        h, w = lr.shape[:2]
        th, tw = min(tile, h), min(tile, w)
        ys, xs = _tile_starts(h, tile, overlap), _tile_starts(w, tile, overlap)
        ramp = overlap * s
        wx = [_ramp(tw * s, ramp, x > 0, x + tw < w) for x in xs]
        wy = [_ramp(th * s, ramp, y > 0, y + th < h) for y in ys]
        out = np.empty((h * s, w * s, 3), np.uint8)
        acc = np.zeros((th * s, w * s, 3), np.float32)  # HR rows [top, top + th*s)
        wsum = np.zeros((th * s, w * s, 1), np.float32)
        top = 0

        def flush(until: int) -> None:
            """Finalise HR rows [top, until) and shift the accumulator up."""
            nonlocal acc, wsum, top
            k = until - top
            if k <= 0:
                return
            out[top:until] = _to_uint8_once(acc[:k] / wsum[:k])
            acc = np.concatenate([acc[k:], np.zeros((k, *acc.shape[1:]), np.float32)])
            wsum = np.concatenate([wsum[k:], np.zeros((k, *wsum.shape[1:]), np.float32)])
            top = until

        coords = [(iy, ix) for iy in range(len(ys)) for ix in range(len(xs))]
        for b in range(0, len(coords), bs):
            chunk = coords[b : b + bs]
            batch = np.stack([lr[ys[iy] : ys[iy] + th, xs[ix] : xs[ix] + tw] for iy, ix in chunk])
            preds = self._predict(batch.astype(np.float32))
            for (iy, ix), pred in zip(chunk, preds, strict=True):
                flush(ys[iy] * s)  # rows above this tile row are complete
                r0 = ys[iy] * s - top
                x0 = xs[ix] * s
                weight = wy[iy][:, None, None] * wx[ix][None, :, None]
                acc[r0 : r0 + th * s, x0 : x0 + tw * s] += pred * weight
                wsum[r0 : r0 + th * s, x0 : x0 + tw * s] += weight
        flush(h * s)
        return out

    def upscale_frames(
        self,
        frames: Iterable[Any],
        *,
        height: int | None = None,
        postprocess: PostProcess | None = None,
        before: Sequence[Any] = (),
        after: Iterable[Any] = (),
        planar: bool = False,
    ) -> Iterator[np.ndarray | Yuv420]:
        """Upscale a stream of frames lazily, batching frames of equal size.

        At most ``config.batch`` input frames are held (and read ahead) at a time; frames that
        need tiling go one by one (their tiles are batched instead). A video-tier model
        (``window`` k) reads ``k`` frames further ahead: each frame goes in with its aligned
        neighbours (:func:`videoboost.data.align.iter_windows`: clip ends and scene cuts replicate).

        Args:
            frames: iterable of images (see :func:`prepare_image`), e.g. decoded video frames.
            height, postprocess: as in :meth:`upscale_image`.
            before, after: up to ``window`` frames just before and after ``frames`` in the same
                clip (a segment's context): neighbours only, not upscaled. With them a clip
                upscaled in segments equals one pass. Ignored by single-frame models. ``after``
                is read only once ``frames`` is exhausted, so it may be a generator over the
                same stream (a fan-out part's decoder).
            planar: yield :class:`videoboost.video.colour.Yuv420` frames, what the video
                writer encodes, instead of RGB: without ``height`` or ``postprocess`` they are
                made from the model's float output in one step (no uint8 RGB frame exists).

        Yields:
            One ``(H*scale, W*scale, 3)`` uint8 RGB frame (or the ``height`` size) per input,
            in order; with ``planar``, one :class:`Yuv420` frame of that size instead.
        """
        pending: list[np.ndarray] = []
        direct = planar and height is None and (postprocess is None or postprocess.is_identity)

        def emit(rgb: np.ndarray) -> np.ndarray | Yuv420:
            """One frame out: ``rgb`` is uint8, or the model's float32 (ours to overwrite)."""
            if direct:
                return rgb_to_yuv420(rgb, overwrite=True)
            if rgb.dtype != np.uint8:
                rgb = _to_uint8_once(rgb)
            rgb = self._finish(rgb, height, postprocess)
            return rgb_to_yuv420(rgb) if planar else rgb

        def run() -> Iterator[np.ndarray | Yuv420]:
            batch = np.stack(pending).astype(np.float32)
            pending.clear()
            sr = self._predict(batch)
            for one in sr:
                yield emit(one)

        inputs: Iterable[np.ndarray] = (self.prepare_image(item) for item in frames)
        if self.window:
            inputs = iter_windows(
                inputs,
                self.window,
                before=[self.prepare_image(f) for f in before],
                after=(self.prepare_image(f) for f in after),
            )
        for lr in inputs:
            if self._needs_tiling(*lr.shape[:2]):
                if pending:
                    yield from run()
                yield emit(self._upscale_tiled(lr))
                continue
            if pending and pending[0].shape != lr.shape:
                yield from run()
            pending.append(lr)
            if len(pending) >= self.config.batch:
                yield from run()
        if pending:
            yield from run()


# --------------------------------------------------------------------------- Keras adapter


def keras_predict(model: Any, *, value_range: float = 255.0) -> Predict:
    """Wrap a Keras model as a :data:`Predict` callable.

    The model runs inside one ``tf.function`` whose input signature leaves batch, height and
    width open, so tiles and frames of any size reuse one graph. Old-style generators (bicubic
    ``UpSampling2D`` skip, which cannot trace with open sizes) are rebuilt when loaded
    (:func:`models.legacy.modernize`, called by ``tracking.load_generator``); hand those in
    modernized.

    Args:
        model: a Keras model mapping ``(N, h, w, 3)`` float32 to ``(N, h*s, w*s, 3)``.
        value_range: the pixel range the model works in: 255.0 (default) for models that take
            and return [0, 255], 1.0 for models trained on [0, 1].

    Returns:
        ``predict(batch)`` with batch ``(N, h, w, 3)`` float32 in [0, 255], returning
        ``(N, h*s, w*s, 3)`` float32 in about [0, 255]. Safe to call from several threads.
    """
    import tensorflow as tf  # lazy: the core imports without TensorFlow

    factor = float(value_range) / 255.0

    def call(x):
        y = model(x * factor, training=False)
        return tf.cast(y, tf.float32) / factor

    channels = int(model.inputs[0].shape[-1]) if getattr(model, "inputs", None) else 3
    run = tf.function(
        call, input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)]
    )

    def predict(batch: np.ndarray) -> np.ndarray:
        return run(tf.convert_to_tensor(batch, tf.float32)).numpy()

    predict.run = run  # exposed for tests/benchmarks (trace count)
    return predict


def set_tf_threads(intra: int | None = None, inter: int = 1) -> None:
    """Give TensorFlow's CPU kernels ``intra`` threads (None = every core).

    TF's defaults were seen to run single-threaded on small machines; explicit threads
    roughly halved wall time. Only effective before TF runs its first op: later calls keep
    the running settings (and log that).
    """
    import os

    import tensorflow as tf

    intra = intra or os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        log.debug("TensorFlow already initialised; thread settings left as they are")


__all__ = [
    "ImageTooLarge",
    "InvalidImage",
    "PostProcess",
    "Predict",
    "Upscaler",
    "apply_postprocess",
    "infer_scale",
    "infer_window",
    "keras_predict",
    "plan_output",
    "prepare_image",
    "resize_to_height",
    "set_tf_threads",
    "still_predict",
]


def still_predict(predict: Predict, window: int) -> Predict:
    """``predict`` of a video-tier model (``window`` k) made to take single frames, each
    repeated into a window (:func:`videoboost.data.align.still_window`, batched): for frames that
    are independent pictures, not a clip. Input that already has the window's channels passes
    unchanged; ``window`` 0 returns ``predict`` itself."""
    if not window:
        return predict

    def on_frames(batch: np.ndarray) -> np.ndarray:
        if batch.shape[-1] == 3:
            batch = np.concatenate([batch] * (2 * window + 1), axis=-1)
        return predict(batch)

    return on_frames


def infer_window(generator) -> int:
    """``k`` of a Keras generator's input window (0 = a single-frame model), from its input
    channels: ``3 * (2k + 1)``."""
    channels = generator.inputs[0].shape[-1] if getattr(generator, "inputs", None) else 3
    return window_of_channels(int(channels or 3))


def infer_scale(generator) -> int:
    """The integer upscale factor of a Keras generator, measured on an 8x8 input (no metadata
    to trust)."""
    c = 3 * (2 * infer_window(generator) + 1)
    out = generator(np.zeros((1, 8, 8, c), np.float32), training=False)
    return int(out.shape[1]) // 8
