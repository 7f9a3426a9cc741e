"""Measuring a runtime: the model's identity, real probe frames, agreement with tf-f32, timing.

Part of :mod:`videoboost.evaluation.runtime_select`, which re-exports these names.
"""

from __future__ import annotations

import hashlib
import statistics
import time

import numpy as np

from videoboost.inference.engine import Predict

# Agreement with tf-f32 is PSNR on Y of the uint8 outputs against tf-f32's uint8 outputs. If a
# runtime adds an error of MSE d to a model whose own error against the truth is MSE e, it
# loses 10*log10(1 + d/e) dB. The fast tier scores ~32 dB (e ~ 41), smooth footage up to
# ~38 dB (e ~ 10); at 50 dB agreement (d = 0.65) the loss is at most 0.07 dB at 32 dB and
# 0.27 dB only on footage a model already gets within 38 dB of the truth. The benchmark check
# at `bento build` (:func:`benchmark_fidelity`) measures the loss itself.
MIN_AGREEMENT_DB = 50.0


def model_key(generator) -> str:
    """A digest of the weights: the same model gives the same key wherever it was loaded from."""
    h = hashlib.sha256()
    for w in generator.get_weights():
        a = np.ascontiguousarray(w)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def probe_frames(
    height: int, width: int, n: int = 2, *, every: int = 29, offset: int = 5, window: int = 0
) -> list[np.ndarray]:
    """``n`` real LR frames ``(1, height, width, 3)`` float32 from the bundled sample clip.

    Real footage, not noise: precision loss shows on edges and flat areas, which noise lacks.
    Falls back to smooth synthetic frames when the clip cannot be read. With ``window`` k (a
    video-tier model) each is the aligned window of the frame and its ``k`` neighbours a side,
    ``(1, height, width, 3 * (2k + 1))``, as the engine feeds it.
    """
    import cv2

    from videoboost.data.align import is_cut, stack_window, still_window, window_indices
    from videoboost.data.sources import SAMPLE_CLIP

    frames: list[np.ndarray] = []
    recent: list[np.ndarray] = []  # the last 2k + 1 frames read, for a window's neighbours
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    i = 0
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        recent = [*recent, cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)]
        recent = recent[-(2 * window + 1) :]
        centre = i - window  # the centre lags k frames: its following neighbours are read
        if centre >= 0 and centre % every == offset:
            c = len(recent) - 1 - window
            cuts = [j > 0 and is_cut(recent[j - 1], recent[j]) for j in range(len(recent))]
            order = window_indices(len(recent), c, window, cuts)
            frames.append(stack_window(recent, order, c)[None].astype(np.float32))
        i += 1
    cap.release()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    while len(frames) < n:
        base = 127 + 90 * np.sin(xx / (3 + len(frames))) * np.cos(yy / 5)
        rgb = np.stack([base, base[::-1], base[:, ::-1]], -1) + rng.normal(0, 4, (height, width, 3))
        still = still_window(np.clip(rgb, 0, 255).astype(np.float32), window)
        frames.append(still[None])
    return frames


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(np.asarray(x, np.float32), 0, 255)).astype(np.uint8)


def agreement_db(predict: Predict, reference: list[np.ndarray], frames: list[np.ndarray]) -> float:
    """PSNR on Y (dB) of ``predict``'s uint8 output against the reference outputs; worst frame."""
    from videoboost.evaluation.metrics import psnr_y

    worst = float("inf")
    for lr, want in zip(frames, reference, strict=True):
        got = _uint8(predict(lr))
        if got.shape != want.shape:
            return float("-inf")
        worst = min(worst, min(psnr_y(g, w) for g, w in zip(got, want, strict=True)))
    return worst


def time_interleaved(
    predicts: dict[str, Predict], frame: np.ndarray, *, rounds: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median wall seconds per call of each predict, round by round so noise hits all alike."""
    for fn in predicts.values():
        for _ in range(warmup):
            fn(frame)
    times: dict[str, list[float]] = {k: [] for k in predicts}
    for _ in range(rounds):
        for name, fn in predicts.items():
            t0 = time.perf_counter()
            fn(frame)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
