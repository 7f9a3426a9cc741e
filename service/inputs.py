"""Input checks of the service: upload parts, decoded images and videos, parameters, and the
fields the API signatures (and so the OpenAPI page) describe."""

import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Le
from bentoml.exceptions import BadInput
from pydantic import AfterValidator, BeforeValidator, Field
from starlette.datastructures import UploadFile

from service.errors import PayloadTooLarge, UnsupportedMediaType, http_error, public
from service.settings import CONFIG, MODEL, MODEL_SCALE
from videoboost.errors import SourceError
from videoboost.inference.engine import ImageTooLarge, InvalidImage, PostProcess, plan_output
from videoboost.inference.images import read_image

IMAGE_FORMATS = frozenset({"PNG", "JPEG"})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg"})
GENERIC_TYPES = frozenset({"", "application/octet-stream"})  # curl's default for unknown names
MIN_TILE = 32  # smaller tiles are mostly overlap


def media_type(upload: UploadFile) -> str:
    return (upload.content_type or "").split(";")[0].strip().lower()


def part_checker(field: str, accepted: Callable[[str], bool], wanted: str):
    """A pydantic before-validator refusing upload parts of the wrong media type (415).

    It runs on the raw multipart part, before BentoML writes it to a temp file. A
    BentoMLException raised in a validator is not wrapped by pydantic, so its status stands.
    """

    def check(obj: Any) -> Any:
        if isinstance(obj, UploadFile):
            media = media_type(obj)
            if not (media in GENERIC_TYPES or accepted(media)):
                raise UnsupportedMediaType(f"`{field}` is {media[:60]}; send {wanted}")
            obj.filename = safe_suffix(obj.filename)
        elif not isinstance(obj, Path):
            raise UnsupportedMediaType(f"`{field}` must be a file part; send {wanted}")
        return obj

    return check


_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


def safe_suffix(filename: str | None) -> str | None:
    """What is left of a client's file name: a plain extension like ``.mp4``, or None.

    BentoML appends the part's file name to the name of the temp file it writes the upload to;
    a name with ``../``, 300 characters or a NUL byte would be a path trick or a 500. Only
    the extension is kept (a decoder may probe by it); the temp file is BentoML's
    ``mkstemp`` (mode 0600) in a per-request ``mkdtemp`` folder (0700), emptied after the
    request.
    """
    suffix = PurePosixPath(filename or "").suffix
    return suffix if _SUFFIX.fullmatch(suffix) else None


def decode_frame(path: Path) -> np.ndarray:
    """Decode an uploaded frame while the request is parsed, before it joins a batch.

    Bad frames then fail their own request (400/413/415) instead of the whole batch.
    """
    try:
        return read_upload(path, "frame")
    finally:
        path.unlink(missing_ok=True)


def read_upload(path: Path, what: str) -> np.ndarray:
    """Decode an uploaded image, mapping our errors to 400/413/415 (named without the temp path)."""
    if path.stat().st_size == 0:
        raise BadInput(f"{what}: the upload is empty (0 bytes); send a PNG or JPEG file")
    try:
        with path.open("rb") as fp:
            return read_image(fp, max_pixels=CONFIG.max_input_pixels, formats=IMAGE_FORMATS)
    except (InvalidImage, ImageTooLarge) as exc:
        raise http_error(exc, what) from exc


image_part = part_checker("image", IMAGE_TYPES.__contains__, "a PNG or JPEG image")
ImageUpload = Annotated[Path, BeforeValidator(image_part)]
FrameUpload = Annotated[
    Path,
    BeforeValidator(part_checker("frames", IMAGE_TYPES.__contains__, "PNG or JPEG frames")),
    AfterValidator(decode_frame),
]
video_part = part_checker("video", lambda m: m.startswith("video/"), "a video file (video/*)")
VideoUpload = Annotated[Path, BeforeValidator(video_part)]
Tile = Annotated[int, Ge(0), Le(CONFIG.max_tile)]
Height = Annotated[int, Ge(16), Le(8640)]
Scale = Annotated[int, Ge(1), Le(8)]
ImageFormat = Literal["png", "jpeg", "webp"]
Quality = Annotated[int, Ge(1), Le(100)]
Compression = Annotated[int, Ge(0), Le(9)]

# What the OpenAPI page shows beside each field. No field gets an `example` that differs from
# its default: "Try it out" fills the form with examples and sends them.
_X = f"×{MODEL_SCALE}" if MODEL_SCALE else "the model's factor"
IMAGE_FIELD = Field(description="The low-resolution picture: a PNG or JPEG file.")
FRAMES_FIELD = Field(description="One or more PNG or JPEG frames, upscaled in order.")
VIDEO_FIELD = Field(description="The video: MP4, MOV, MKV, WebM... (anything FFmpeg reads).")
SCALE_FIELD = Field(
    description=f"Leave empty: the model upscales {_X}. If given, it must be that factor."
)
TILE_FIELD = Field(
    description=f"Side of the low-res tiles in pixels: 0 (the whole picture at once) or "
    f"{MIN_TILE} to {CONFIG.max_tile}. Tiles overlap and their seams are blended.",
)
HEIGHT_FIELD = Field(
    description="Output height in pixels, e.g. `720`; the aspect ratio is kept. Empty: the "
    f"model's factor ({_X}). Beyond it the rest is a Lanczos resize, said in the "
    "`X-VideoBoost-Note` header.",
)
FORMAT_FIELD = Field(
    description="Encoding of the answer: `png` (lossless, the default), or `jpeg` / `webp` "
    "(lossy, smaller; `quality` applies). JPEG is the cheapest to make: a 720p PNG costs "
    "about as much CPU as the fast model itself.",
)
QUALITY_FIELD = Field(description="JPEG / WebP quality, 1 to 100; ignored for PNG.")
COMPRESSION_FIELD = Field(
    description="PNG zlib level, 0 (stored: fastest, largest) to 9 (smallest, slowest); "
    "1 is fast at little cost in size. Ignored for JPEG / WebP.",
)
POSTPROCESS_FIELD = Field(
    description='Optional finishing, JSON, e.g. `{"unsharp_amount": 0.5}`. The defaults '
    "change nothing.",
)


def check_options(scale: int | None, tile: int, model_scale: int | None) -> None:
    if scale is not None and model_scale is not None and scale != model_scale:
        raise BadInput(
            f"scale={scale} is not available: this model ({MODEL.tag}) upscales "
            f"x{model_scale}; leave scale out, or ask for a size with height="
        )
    if 0 < tile < MIN_TILE:
        raise BadInput(f"tile={tile} is too small: use 0 (no tiling) or at least {MIN_TILE}")


def check_output(h: int, w: int, height: int | None, model_scale: int | None) -> None:
    """Bound the output a target height makes: at most the model's output for the largest
    input allowed. Without it a 1-pixel-high strip with height=8640 would ask for a
    picture of gigabytes."""
    if height is None or model_scale is None:
        return
    out_h, out_w, _ = plan_output(h, w, model_scale, height)
    limit = CONFIG.max_input_pixels * model_scale**2
    if out_h * out_w > limit:
        raise BadInput(
            f"height={height} would make a {out_w}x{out_h} output from {w}x{h}, above the "
            f"output limit of {limit} pixels (max_input_pixels x scale^2); ask for less"
        )


def source_reason(exc: SourceError, path: Path) -> str:
    """A video error without the upload's temp path (FFmpeg quotes it, we prefix it)."""
    text = str(exc).removeprefix(f"{path}: ")
    text = re.sub(r"\[Errno -?\d+\] ", "", text)
    return public(text.replace(f": '{path}'", "").replace(str(path), "the upload"))


def check_video(path: Path, height: int | None, model_scale: int | None):
    """Probe an uploaded video (PyAV, no frame decoded but the first) against the limits.

    Returns:
        The :class:`videoboost.video.pipeline.VideoProbe`.

    Raises:
        BadInput: not a readable video, or ``height`` over the output limit.
        PayloadTooLarge: frames above ``max_input_pixels``, or more than ``max_video_frames``
            frames (when the container says how many).
    """
    from videoboost.video.pipeline import probe

    try:
        info = probe(path, count_frames=False)
    except SourceError as exc:
        raise BadInput(f"video: {source_reason(exc, path)}") from None
    if info.width * info.height > CONFIG.max_input_pixels:
        raise PayloadTooLarge(
            f"video frames are {info.width}x{info.height} = {info.width * info.height} "
            f"pixels, above the limit of {CONFIG.max_input_pixels} pixels"
        )
    if info.frame_count > CONFIG.max_video_frames:
        raise PayloadTooLarge(
            f"video has {info.frame_count} frames, above the limit of "
            f"{CONFIG.max_video_frames} frames; split it"
        )
    check_output(info.height, info.width, height, model_scale)
    return info


def postprocess_header(pp: PostProcess | None) -> str:
    return pp.model_dump_json() if pp is not None and not pp.is_identity else "off"
