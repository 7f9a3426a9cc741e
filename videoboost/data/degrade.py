"""Making the low-res input from a high-res frame.

Default is the SR benchmark convention (DIV2K, Set5): antialiased bicubic, as MATLAB's
``imresize``; Pillow's BICUBIC resize matches it within a grey level. OpenCV's INTER_CUBIC does
not antialias when shrinking, and a model trained on one downscale loses up to 2 dB on the other.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from videoboost.config import DegradeConfig, RealDegradeConfig


def mod_crop(hr: np.ndarray, scale: int) -> np.ndarray:
    """Crop ``(H, W, C)`` so both sides are multiples of ``scale`` (top-left anchored)."""
    h, w = hr.shape[:2]
    return hr[: h - h % scale, : w - w % scale]


def resize_bicubic(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Antialiased bicubic resize of an RGB uint8 image (Pillow, MATLAB convention)."""
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))


def downscale(hr: np.ndarray, scale: int, method: str = "bicubic") -> np.ndarray:
    """Shrink a mod-cropped HR frame ``(H, W, 3)`` uint8 by ``scale``.

    ``bicubic`` and ``bilinear`` antialias (Pillow), ``area`` averages each ``scale`` x
    ``scale`` block; all three keep pixel centres where they were (no shift).
    """
    h, w = hr.shape[:2]
    size = (w // scale, h // scale)
    if method == "area":
        return cv2.resize(hr, size, interpolation=cv2.INTER_AREA)
    if method == "bilinear":
        return np.asarray(Image.fromarray(hr).resize(size, Image.Resampling.BILINEAR))
    return resize_bicubic(hr, *size)


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline every metric is compared against: ``(h, w, 3)`` -> ``(h*s, w*s, 3)``."""
    h, w = lr.shape[:2]
    return resize_bicubic(lr, w * scale, h * scale)


def degrade(
    hr: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Make the LR input for a HR frame.

    Args:
        hr: ``(H, W, 3)`` uint8 RGB, sides multiples of ``cfg.scale`` (see :func:`mod_crop`).
        cfg: degradation settings.
        rng: source of the random degradations; pass a seeded one for reproducible datasets.

    Returns:
        ``(H/s, W/s, 3)`` uint8 RGB.
    """
    if hr.shape[0] % cfg.scale or hr.shape[1] % cfg.scale:
        raise ValueError(f"HR size {hr.shape[:2]} is not a multiple of scale {cfg.scale}")
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    img = hr
    if cfg.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), cfg.blur_sigma)
    lr = downscale(img, cfg.scale, cfg.method)
    if cfg.noise_sigma > 0:
        noisy = lr.astype(np.float32) + rng.normal(0, cfg.noise_sigma, lr.shape).astype(np.float32)
        lr = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if cfg.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", lr[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG re-compression failed")
        lr = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(lr)


# --------------------------------------------------------------------------- real-file damage


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """``rgb`` (``(h, w, 3)`` uint8) JPEG-coded at ``quality`` (OpenCV/libjpeg, 4:2:0) and back."""
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG coding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def h264_roundtrip(frames: list[np.ndarray] | np.ndarray, crf: int, preset: str = "medium"):
    """Frames coded with H.264 (libx264 through PyAV, yuv420p) and decoded back.

    A list of consecutive frames is coded as one clip (an I-frame, then P/B-frames, as in a
    real file); a single frame as a lone I-frame. Odd sides are padded by one edge pixel for
    4:2:0 and cropped back, so the output is aligned with the input pixel for pixel (no
    shift). One encoder thread, and the frames converted to yuv420p before the encoder sees
    them: x264's output then depends only on the pixels and the CRF. (Left to ``encode``, PyAV's
    own conversion gave 2-4 different bitstreams for the same frames, within and across
    processes, on PyAV 18.1.)

    Args:
        frames: ``(n, h, w, 3)`` uint8 RGB (or a list of such frames, all one size).
        crf: x264 constant rate factor (0 lossless .. 51); real files sit around 20-30.
        preset: x264 preset; ``medium`` is what most files were made with.

    Returns:
        ``(n, h, w, 3)`` uint8 RGB.
    """
    import io

    import av

    frames = np.asarray(frames)
    n, h, w = frames.shape[:3]
    ph, pw = h + h % 2, w + w % 2
    if (ph, pw) != (h, w):
        frames = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset, "threads": "1"}
        for f in frames:
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), "rgb24")
            out.mux(stream.encode(rgb.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    buf.seek(0)
    decoded = []
    with av.open(buf, "r", format="h264") as inp:
        for frame in inp.decode(video=0):
            decoded.append(frame.to_ndarray(format="rgb24")[:h, :w])
    if len(decoded) != n:
        raise RuntimeError(f"H.264 round trip gave {len(decoded)} frames for {n}")
    return np.stack(decoded)


def _gaussian_kernel(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """A normalised 2-D Gaussian, sides ``sigma_x``/``sigma_y`` rotated by ``theta``; odd size,
    centred, so convolving with it shifts nothing."""
    radius = int(np.ceil(3 * max(sigma_x, sigma_y)))
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).astype(np.float32)


def sample_recipe(cfg: RealDegradeConfig, rng: np.random.Generator) -> dict:
    """One random draw of the ``real`` profile: a recipe for :func:`apply_recipe`."""
    recipe: dict = {"kernel": str(rng.choice(list(cfg.kernels)))}
    if rng.random() < cfg.blur_prob:
        sx = float(rng.uniform(*cfg.blur_sigma))
        if rng.random() < cfg.aniso_prob:
            recipe["blur"] = (sx, float(rng.uniform(*cfg.blur_sigma)), float(rng.uniform(0, np.pi)))
        else:
            recipe["blur"] = (sx, sx, 0.0)
    if rng.random() < cfg.noise_prob:
        recipe["noise"] = {
            "sigma": float(rng.uniform(*cfg.noise_sigma)),
            "poisson": bool(rng.random() < cfg.poisson_share),
            "grey": bool(rng.random() < 0.4),
        }
    codec = rng.random()
    if codec < cfg.jpeg_prob:
        recipe["jpeg"] = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    elif codec < cfg.jpeg_prob + cfg.h264_prob:
        recipe["h264"] = int(rng.integers(cfg.h264_crf[0], cfg.h264_crf[1] + 1))
        if rng.random() < cfg.h264_pframe_share:
            recipe["h264_motion"] = (float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2)))
    if recipe["kernel"] == "bicubic" and len(recipe) == 1:
        # Nothing drawn but the clean kernel: that is the clean LR, which training already
        # takes at `clean_share`; a stored variant must add a degradation.
        recipe["h264"] = int(rng.integers(cfg.h264_crf[0], cfg.h264_crf[1] + 1))
    recipe["noise_seed"] = int(rng.integers(2**31))
    return recipe


def describe_recipe(recipe: dict) -> str:
    """A short label of a recipe, e.g. ``blur1.2x0.6/area/gauss3.1/h264-crf28``."""
    parts = []
    if "blur" in recipe:
        sx, sy, _ = recipe["blur"]
        parts.append(f"blur{sx:.1f}" if sx == sy else f"blur{sx:.1f}x{sy:.1f}")
    parts.append(recipe["kernel"])
    if "noise" in recipe:
        n = recipe["noise"]
        kind = "poisson" if n["poisson"] else "gauss"
        parts.append(f"{kind}{'-grey' if n['grey'] else ''}{n['sigma']:.1f}")
    if "jpeg" in recipe:
        parts.append(f"jpeg-q{recipe['jpeg']}")
    if "h264" in recipe:
        parts.append(f"h264-crf{recipe['h264']}" + ("-p" if "h264_motion" in recipe else ""))
    return "/".join(parts)


def apply_recipe(hr: np.ndarray, scale: int, recipe: dict) -> np.ndarray:
    """Degrade ``hr`` (``(H, W, 3)`` uint8, sides multiples of ``scale``) by ``recipe``.

    Order as in a camera and an encoder: optical blur (on the HR frame, sigma given in LR
    pixels), the shrink, sensor noise, then the codec.
    """
    img = hr
    if "blur" in recipe:
        sx, sy, theta = recipe["blur"]
        kernel = _gaussian_kernel(sx * scale, sy * scale, theta)
        img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    lr = downscale(img, scale, recipe["kernel"])
    if "noise" in recipe:
        n = recipe["noise"]
        rng = np.random.default_rng(recipe["noise_seed"])
        x = lr.astype(np.float32)
        shape = lr.shape[:2] + ((1,) if n["grey"] else (3,))
        noise = rng.normal(0.0, n["sigma"], shape).astype(np.float32)
        if n["poisson"]:  # shot noise: its deviation grows with the square root of the signal
            noise = noise * np.sqrt(np.clip(x, 0, 255) / 128.0)
        lr = np.clip(np.rint(x + noise), 0, 255).astype(np.uint8)
    if "jpeg" in recipe:
        lr = jpeg_roundtrip(lr, recipe["jpeg"])
    if "h264" in recipe:
        if "h264_motion" in recipe:
            # A P-frame: the frame after a copy of itself moved by a sub-pixel step, so x264
            # predicts it with motion compensation and codes the residual, as inside a clip.
            dx, dy = recipe["h264_motion"]
            move = np.float32([[1, 0, dx], [0, 1, dy]])
            before = cv2.warpAffine(lr, move, lr.shape[1::-1], flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
            lr = h264_roundtrip(np.stack([before, lr]), recipe["h264"])[1]
        else:
            lr = h264_roundtrip(lr[None], recipe["h264"])[0]
    return np.ascontiguousarray(lr)


def real_variants(
    hr: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """``cfg.real.variants`` LR variants of ``hr``, each from a fresh :func:`sample_recipe`.

    Returns:
        ``((k, H/s, W/s, 3) uint8, [recipe label, ...])``; the same ``rng`` state gives the
        same variants.
    """
    recipes = [sample_recipe(cfg.real, rng) for _ in range(cfg.real.variants)]
    lrs = np.stack([apply_recipe(hr, cfg.scale, r) for r in recipes])
    return lrs, [describe_recipe(r) for r in recipes]
