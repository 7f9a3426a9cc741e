"""The model's RGB straight to the planar YUV 4:2:0 that x264 encodes, in one step.

The RGB path rounds the model's float output to uint8 RGB, and swscale then converts that to
yuv420p inside :meth:`videoboost.video.write.VideoWriter.write`: two passes over every output
frame outside the model, with a rounding between them. :func:`rgb_to_yuv420` goes from the
float (or uint8) frame to the encoder's planes directly: clip to [0, 255], the BT.709
limited-range matrix the stream is tagged with, chroma as the mean of each 2x2 block
(centre-sited, as JPEG and MPEG-1), each value rounded once. A :class:`Yuv420` frame is what
:meth:`VideoWriter.write` then hands to x264 with one copy and no conversion.

Odd sizes are padded to even by one replicated row/column at the bottom/right, as the RGB
path pads them; :attr:`Yuv420.width` / :attr:`Yuv420.height` keep the size before padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# BT.709: Y = Kr R + Kg G + Kb B; limited range scales Y to [16, 235] and Cb/Cr to [16, 240].
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
_MATRIX = np.array(
    [
        [_KR, _KG, _KB],
        [-_KR / (2 * (1 - _KB)), -_KG / (2 * (1 - _KB)), 0.5],
        [0.5, -_KG / (2 * (1 - _KR)), -_KB / (2 * (1 - _KR))],
    ]
) * np.array([[219 / 255], [224 / 255], [224 / 255]])
# cv2.transform takes an offset column: [M | (16, 128, 128)].
_AFFINE = np.hstack([_MATRIX, [[16.0], [128.0], [128.0]]]).astype(np.float32)
_Y_ROW = np.ascontiguousarray(_AFFINE[:1])


@dataclass(frozen=True, eq=False)
class Yuv420:
    """One frame as x264 takes it: planar YUV 4:2:0, BT.709 limited range, even size.

    Attributes:
        data: ``(H * 3 // 2, W)`` uint8 in I420 layout: the ``(H, W)`` luma rows, then the
            ``(H/2, W/2)`` Cb plane and the Cr plane, each stored row after row. ``H`` and
            ``W`` are even.
        width, height: the picture's size before padding to even (what the model made).
    """

    data: np.ndarray
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` before padding, as an RGB frame's ``shape[:2]``."""
        return self.height, self.width

    @property
    def padded(self) -> tuple[int, int]:
        """``(H, W)`` as encoded: the size rounded up to even."""
        return self.data.shape[0] * 2 // 3, self.data.shape[1]

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of ``(y, cb, cr)``: ``(H, W)``, ``(H/2, W/2)``, ``(H/2, W/2)`` uint8."""
        h, w = self.padded
        flat = self.data.reshape(-1)
        q = (h // 2) * (w // 2)
        y = flat[: h * w].reshape(h, w)
        cb = flat[h * w : h * w + q].reshape(h // 2, w // 2)
        cr = flat[h * w + q :].reshape(h // 2, w // 2)
        return y, cb, cr

    def to_frame(self):
        """An ``av.VideoFrame`` in ``yuv420p`` tagged BT.709 limited range (one copy)."""
        import av
        from av.video.reformatter import ColorRange, Colorspace

        frame = av.VideoFrame.from_ndarray(self.data, format="yuv420p")
        frame.colorspace = Colorspace.ITU709
        frame.color_range = ColorRange.MPEG
        return frame


def rgb_to_yuv420(rgb: np.ndarray, *, overwrite: bool = False) -> Yuv420:
    """Convert one RGB frame to :class:`Yuv420` in one step (no uint8 RGB in between).

    Args:
        rgb: ``(H, W, 3)`` RGB, float32 in about [0, 255] (a model's raw output: values
            outside are clipped, as the RGB path clips them) or uint8. Any size >= 1x1.
        overwrite: allow clipping a float32 ``rgb`` in place (saves a copy of the frame;
            the caller must not need it afterwards).

    Returns:
        The frame, padded to even by edge replication when its size is odd.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"frames must be (H, W, 3) RGB, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    if rgb.dtype == np.float32:
        x = np.clip(rgb, 0.0, 255.0, out=rgb if overwrite else None)
    elif rgb.dtype == np.uint8:
        x = rgb.astype(np.float32)
    else:
        raise ValueError(f"frames must be float32 or uint8 RGB, got {rgb.dtype}")
    if h % 2 or w % 2:
        x = cv2.copyMakeBorder(x, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    hh, ww = x.shape[:2]
    out = np.empty((hh * 3 // 2, ww), np.uint8)
    # convertScaleAbs rounds half to even and saturates, like np.rint + clip; the values are
    # never negative here (the RGB was clipped), so its abs changes nothing.
    cv2.convertScaleAbs(cv2.transform(x, _Y_ROW), dst=out[:hh])
    # The mean of each 2x2 block: a linear resize by exactly 1/2 samples between the four.
    # The matrix is linear, so averaging RGB first equals averaging Cb/Cr, on a quarter of
    # the pixels.
    small = cv2.resize(x, (ww // 2, hh // 2), interpolation=cv2.INTER_LINEAR)
    chroma = cv2.convertScaleAbs(cv2.transform(small, _AFFINE))
    q = (hh // 2) * (ww // 2)
    flat = out.reshape(-1)
    cv2.extractChannel(chroma, 1, dst=flat[hh * ww : hh * ww + q].reshape(hh // 2, ww // 2))
    cv2.extractChannel(chroma, 2, dst=flat[hh * ww + q :].reshape(hh // 2, ww // 2))
    return Yuv420(out, w, h)


__all__ = ["Yuv420", "rgb_to_yuv420"]
