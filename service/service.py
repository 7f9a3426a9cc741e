"""The VideoBoost bento: the generator as an online image API and a batch video job.

Endpoints (all POST, multipart/form-data):

* ``/upscale`` -- field ``image`` (PNG/JPEG) -> the upscaled PNG. Optional fields ``scale``
  (must equal the model's), ``tile``, ``height``, ``postprocess`` (JSON), and the answer's
  encoding: ``format`` (png, jpeg, webp), ``quality`` (JPEG/WebP) and ``compression`` (PNG).
* ``/upscale_frames`` -- fields ``frames`` (one or more PNG/JPEG) -> a JSON list of base64 PNGs,
  in order; ``format``, ``quality``, ``compression`` as above. With adaptive batching on
  (``max_batch_size`` > 1, for GPUs) frames of concurrent requests share model calls and the
  endpoint takes ``frames`` only (a batchable BentoML API takes one argument).
* ``/upscale_video`` -- a BentoML task: ``POST /upscale_video/submit`` with field ``video``,
  then ``GET /upscale_video/status?task_id=`` and ``GET /upscale_video/get?task_id=`` -> MP4
  (H.264, source fps, frame count and audio). Same optional fields as ``/upscale``.

Errors are JSON ``{"error": message}``: 400 for a corrupt or non-image upload or a bad
parameter, 413 above the pixel/upload budget (the limit is in the message), 415 for a request
that is not multipart or an upload of another media type. A form BentoML cannot parse, an
unknown or repeated field, text where a file belongs and a ``height`` asking for more than
``max_input_pixels x scale^2`` output pixels are 400s too. Client file names are never paths,
and no error text names a server path. A video submit is checked (form, parameters, a PyAV
probe of the upload) before BentoML creates the task: a bad one gets its 4xx at once and no
task id. Each rejected request logs one line (no traceback).
``/livez``, ``/readyz`` and ``/metrics`` are BentoML's.

The OpenAPI page (``/``, spec at ``/docs.json``) works as a client: parameters sent the way its
"Try it out" sends them (JSON file parts named ``blob``) are accepted, and the spec is finished
here (:func:`_openapi`): title and description naming the model, its version, scale and
benchmark gain; Markdown descriptions; examples; the 400/413/415 answers.

Security: the server binds to 127.0.0.1 unless told otherwise (``--host 0.0.0.0`` or
``BENTOML_HOST``). With ``VIDEOBOOST_API_TOKEN`` set, every request but the health and metrics
probes needs ``Authorization: Bearer <token>`` (401 otherwise; see :mod:`service.auth`).

The model comes from the BentoML model store (see :mod:`videoboost.mlops.serving`); without one the
service refuses to start, when this module is imported, with a message saying how to import
one. Limits and batching come from :class:`videoboost.config.ServeConfig`, settable with
``--arg key=value`` or ``VIDEOBOOST_SERVE_<KEY>``. Tiling, pre- and post-processing are the core
engine's.
"""

import asyncio
import base64
import inspect
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, get_origin

import bentoml
import numpy as np
from annotated_types import Ge, Le
from bentoml.exceptions import BadInput, BentoMLException, InvalidArgument
from PIL import Image
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from service.auth import TokenGuard, TokenSettingError, api_token
from videoboost.config import ServeConfig
from videoboost.errors import SourceError
from videoboost.inference.engine import (
    ImageTooLarge,
    InvalidImage,
    PostProcess,
    Upscaler,
    infer_window,
    plan_output,
    still_predict,
)
from videoboost.inference.images import (
    RESPONSE_FORMATS,
    UnsupportedImageFormat,
    encode_image,
    read_image,
)
from videoboost.mlops import serving

log = logging.getLogger("bentoml.videoboost")  # under BentoML's configured logger


def _serve_config() -> ServeConfig:
    """Bento arguments (``--arg key=value``, recorded by ``bentoml build``), then environment
    variables ``VIDEOBOOST_SERVE_<KEY>``: serving a built bento ignores ``--arg`` (BentoML
    1.4 replaces them with the recorded ones), so a deployment tunes limits through env."""
    values = dict(vars(bentoml.use_arguments()))
    for name in ServeConfig.model_fields:
        env = os.environ.get(f"VIDEOBOOST_SERVE_{name.upper()}")
        if env is not None:
            values[name] = env
    try:
        return ServeConfig.model_validate(values)
    except ValidationError as exc:
        raise InvalidArgument(f"invalid VideoBoost serve settings: {exc}") from None


CONFIG = _serve_config()
# The LR frame size `auto` times the runtimes at: the benchmark's 320x180 (-> 720p at x4), as
# requests come in all sizes and a choice must be made before the first one.
RUNTIME_PROBE_SIZE = (320, 180)
# Resolved at import so that a missing model stops `bentoml serve` at once with a clear
# message; a failure in __init__ would make BentoML restart the worker forever instead.
MODEL = serving.resolve_model(CONFIG.model)
# The factor recorded at import; VideoBoost.__init__ checks the network agrees. Checks that run
# before the service instance (the video submit check, the OpenAPI page) read it from here.
MODEL_SCALE = int(MODEL.info.metadata.get("scale") or MODEL.info.labels.get("scale") or 0) or None

# Pillow refuses images over 2 x its MAX_IMAGE_PIXELS on its own. Kept at or above our budget,
# ours is the one limit a client can meet, and the one a 413 names.
if Image.MAX_IMAGE_PIXELS is not None:
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, CONFIG.max_input_pixels)

IMAGE_FORMATS = frozenset({"PNG", "JPEG"})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg"})
GENERIC_TYPES = frozenset({"", "application/octet-stream"})  # curl's default for unknown names
MIN_TILE = 32  # smaller tiles are mostly overlap


class UnsupportedMediaType(BentoMLException):
    error_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class PayloadTooLarge(BentoMLException):
    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def _server_roots() -> list[str]:
    """Folders whose paths must not reach a client or the log: temp, stores, the install."""
    roots = {tempfile.gettempdir(), serving.bentoml_home(), sys.prefix, os.getcwd()}
    roots |= {os.path.realpath(r) for r in roots}
    return sorted((r.rstrip("/") for r in roots if len(r.rstrip("/")) > 1), key=len, reverse=True)


# A root, then the rest of the path up to a space, quote or punctuation.
_SERVER_PATH = re.compile(
    "(?:" + "|".join(map(re.escape, _server_roots())) + r")(?![\w.-])(?:/[^\s'\"(),;:]*)?"
)


def _public(text: str) -> str:
    """``text`` without server paths (a temp file's name in an FFmpeg error, for instance)."""
    return _SERVER_PATH.sub("<server path>", text)


def _http_error(exc: Exception, what: str) -> BentoMLException:
    """Our input errors as the HTTP errors BentoML turns into JSON responses."""
    message = str(exc).replace("image: ", f"{what}: ", 1)
    if isinstance(exc, UnsupportedImageFormat):
        return UnsupportedMediaType(message)
    if isinstance(exc, ImageTooLarge):
        return PayloadTooLarge(message)
    return BadInput(message)


def _media_type(upload: UploadFile) -> str:
    return (upload.content_type or "").split(";")[0].strip().lower()


def _part_checker(field: str, accepted: Callable[[str], bool], wanted: str):
    """A pydantic before-validator refusing upload parts of the wrong media type (415).

    It runs on the raw multipart part, before BentoML writes it to a temp file. A
    BentoMLException raised in a validator is not wrapped by pydantic, so its status stands.
    """

    def check(obj: Any) -> Any:
        if isinstance(obj, UploadFile):
            media = _media_type(obj)
            if not (media in GENERIC_TYPES or accepted(media)):
                raise UnsupportedMediaType(f"`{field}` is {media[:60]}; send {wanted}")
            obj.filename = _safe_suffix(obj.filename)
        elif not isinstance(obj, Path):
            raise UnsupportedMediaType(f"`{field}` must be a file part; send {wanted}")
        return obj

    return check


_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


def _safe_suffix(filename: str | None) -> str | None:
    """What is left of a client's file name: a plain extension like ``.mp4``, or None.

    BentoML appends the part's file name to the name of the temp file it writes the upload to;
    a name with ``../``, 300 characters or a NUL byte would be a path trick or a 500. Only
    the extension is kept (a decoder may probe by it); the temp file is BentoML's
    ``mkstemp`` (mode 0600) in a per-request ``mkdtemp`` folder (0700), emptied after the
    request.
    """
    suffix = PurePosixPath(filename or "").suffix
    return suffix if _SUFFIX.fullmatch(suffix) else None


def _decode_frame(path: Path) -> np.ndarray:
    """Decode an uploaded frame while the request is parsed, before it joins a batch.

    Bad frames then fail their own request (400/413/415) instead of the whole batch.
    """
    try:
        return _read_upload(path, "frame")
    finally:
        path.unlink(missing_ok=True)


def _read_upload(path: Path, what: str) -> np.ndarray:
    """Decode an uploaded image, mapping our errors to 400/413/415 (named without the temp path)."""
    if path.stat().st_size == 0:
        raise BadInput(f"{what}: the upload is empty (0 bytes); send a PNG or JPEG file")
    try:
        with path.open("rb") as fp:
            return read_image(fp, max_pixels=CONFIG.max_input_pixels, formats=IMAGE_FORMATS)
    except (InvalidImage, ImageTooLarge) as exc:
        raise _http_error(exc, what) from exc


_image_part = _part_checker("image", IMAGE_TYPES.__contains__, "a PNG or JPEG image")
ImageUpload = Annotated[Path, BeforeValidator(_image_part)]
FrameUpload = Annotated[
    Path,
    BeforeValidator(_part_checker("frames", IMAGE_TYPES.__contains__, "PNG or JPEG frames")),
    AfterValidator(_decode_frame),
]
_video_part = _part_checker("video", lambda m: m.startswith("video/"), "a video file (video/*)")
VideoUpload = Annotated[Path, BeforeValidator(_video_part)]
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


def _log_rejection(where: str, status: int, message: str) -> None:
    """The one log line of a rejected request (``where`` as BentoML words it: ``/path [POST]``).

    A client's mistake is not a server error: no traceback, INFO level. The reason follows the
    status so an operator can answer "why did my call fail" from the log.
    """
    log.info("rejected %s with %d: %s", where, status, _public(message))


def _client_error_status(exc: BaseException | None) -> int | None:
    if isinstance(exc, BentoMLException) and exc.error_code.value < 500:
        return exc.error_code.value
    if isinstance(exc, ValidationError):  # BentoML answers these 400
        return 400
    return None


class OneLineRejections(logging.Filter):
    """BentoML logs every failed request with a traceback (``log_exception``: "Exception on
    /upscale [POST]"), a 400 for a truncated PNG included. On that logger, a client error
    (4xx) becomes one line in :func:`_log_rejection`'s words; a server error keeps its
    traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ClientDisconnect):
            # The body stopped: the client left, or RequestGuard cut an upload over the limit
            # (and logs that 413 itself). The access log has the request either way.
            return False
        status = _client_error_status(exc)
        if status is not None:
            where = record.getMessage().removeprefix("Exception on ")
            record.msg, record.args = "rejected %s with %d: %s", (where, status, _public(str(exc)))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# The logger of bentoml._internal.server.http_app.log_exception, which the service app uses.
logging.getLogger("bentoml._internal.server.http_app").addFilter(OneLineRejections())


class RequestGuard:
    """ASGI middleware: cheap refusals before a body is read, and one error shape.

    * 415 when an upload endpoint gets anything but ``multipart/form-data`` (BentoML would
      try to parse it as JSON and answer a confusing 400);
    * 413 when ``Content-Length`` (or, for chunked uploads, the bytes received) exceeds the
      endpoint's limit, so an oversized upload is never buffered;
    * ``prechecks``: for a route (the video task's submit), a check of the whole request
      before the app sees it; its 4xx is the answer, and the app never runs;
    * BentoML 1.4.40 wraps the message of an exception raised in an API in a one-element list
      (``[{"error": ...}]``); it is unwrapped so every error is ``{"error": message}``, with
      server paths taken out;
    * ``GET /docs.json``: the OpenAPI spec BentoML generates, finished by :func:`_openapi`.
    """

    def __init__(
        self,
        app: Any,
        limits: dict[str, int],
        prechecks: dict[str, Callable] | None = None,
        openapi: Callable[[dict], dict] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.prechecks = prechecks or {}
        self.openapi = openapi

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/")
        if self.openapi is not None and scope["method"] == "GET" and path == "/docs.json":
            await _rewrite_json(self.app, scope, receive, send, self.openapi)
            return
        limit = self.limits.get(path) if scope["method"] == "POST" else None
        if limit is not None:
            headers = Headers(scope=scope)
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "multipart/form-data":
                await _refuse(
                    scope,
                    send,
                    415,
                    f"{scope['path']} takes multipart/form-data (curl -F field=@file), "
                    f"not {media or 'a body without Content-Type'}",
                )
                return
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                await _refuse(scope, send, 413, _too_large(int(length), limit))
                return
        precheck = self.prechecks.get(path) if scope["method"] == "POST" else None
        await _Exchange(self.app, scope, receive, send, limit, precheck).run()


def _too_large(size: int | None, limit: int) -> str:
    got = f"{size / 2**20:.1f} MiB, " if size is not None else ""
    return f"upload is {got}above the limit of {limit / 2**20:g} MiB"


async def _refuse(scope: dict, send: Callable, status: int, message: str) -> None:
    """Answer a request the app never saw, with its one log line."""
    _log_rejection(f"{scope['path']} [{scope['method']}]", status, message)
    await _send_json(send, status, _public(message))


async def _send_json(send: Callable, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _rewrite_json(
    app: Any, scope: dict, receive: Callable, send: Callable, rewrite: Callable[[dict], dict]
) -> None:
    """Run ``app`` and pass its JSON answer (a 200) through ``rewrite``."""
    start: dict = {}
    chunks: list[bytes] = []

    async def capture(message: dict) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    body = b"".join(chunks)
    if start.get("status") == 200:
        body = json.dumps(rewrite(json.loads(body))).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Exchange:
    """One request through the app: counts the upload, runs a precheck, rewrites JSON errors."""

    def __init__(
        self, app, scope, receive, send, limit: int | None, precheck: Callable | None = None
    ) -> None:
        self.app, self.scope, self._receive, self._send = app, scope, receive, send
        self.limit = limit
        self.precheck = precheck
        self.replay: bytes | None = None
        self.received = 0
        self.overflow = False
        self.started = False
        self.error_start: dict | None = None
        self.error_body = b""

    async def receive(self) -> dict:
        if self.replay is not None:  # the body the precheck read, handed to the app once
            body, self.replay = self.replay, None
            return {"type": "http.request", "body": body, "more_body": False}
        message = await self._receive()
        if self.limit is not None and message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.overflow = True
                return {"type": "http.disconnect"}  # stops the app reading more
        return message

    async def send(self, message: dict) -> None:
        if self.overflow:
            return  # the 413 is sent by run()
        if message["type"] == "http.response.start":
            self.started = True
            ctype = Headers(raw=message.get("headers", [])).get("content-type", "")
            if message["status"] >= 400 and ctype.startswith("application/json"):
                self.error_start = message
                return
        elif message["type"] == "http.response.body" and self.error_start is not None:
            self.error_body += message.get("body", b"")
            if message.get("more_body"):
                return
            await self._send_error()
            return
        await self._send(message)

    async def _send_error(self) -> None:
        body = self.error_body
        try:
            data = json.loads(body)
            if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
                data = data[0]
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                data["error"] = _public(data["error"])
            body = json.dumps(data).encode()
        except ValueError:
            pass
        start = self.error_start
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def _read_body(self) -> bytes | None:
        """The whole request body (counted against the limit); None if it did not arrive."""
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                return None  # over the limit, or the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    async def run(self) -> None:
        if self.precheck is not None:
            body = await self._read_body()
            if body is None:
                if self.overflow:
                    await _refuse(self.scope, self._send, 413, _too_large(None, self.limit or 0))
                return
            refusal = await self.precheck(self.scope, body)
            if refusal is not None:
                await _refuse(self.scope, self._send, refusal.error_code.value, str(refusal))
                return
            self.replay = body
        try:
            await self.app(self.scope, self.receive, self.send)
        except Exception:
            if not self.overflow:
                raise
        if self.overflow:
            await _refuse(self.scope, self._send, 413, _too_large(None, self.limit or 0))


def _check_options(scale: int | None, tile: int, model_scale: int | None) -> None:
    if scale is not None and model_scale is not None and scale != model_scale:
        raise BadInput(
            f"scale={scale} is not available: this model ({MODEL.tag}) upscales "
            f"x{model_scale}; leave scale out, or ask for a size with height="
        )
    if 0 < tile < MIN_TILE:
        raise BadInput(f"tile={tile} is too small: use 0 (no tiling) or at least {MIN_TILE}")


def _check_output(h: int, w: int, height: int | None, model_scale: int | None) -> None:
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


def _source_reason(exc: SourceError, path: Path) -> str:
    """A video error without the upload's temp path (FFmpeg quotes it, we prefix it)."""
    text = str(exc).removeprefix(f"{path}: ")
    text = re.sub(r"\[Errno -?\d+\] ", "", text)
    return _public(text.replace(f": '{path}'", "").replace(str(path), "the upload"))


def _check_video(path: Path, height: int | None, model_scale: int | None):
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
        raise BadInput(f"video: {_source_reason(exc, path)}") from None
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
    _check_output(info.height, info.width, height, model_scale)
    return info


def _postprocess_header(pp: PostProcess | None) -> str:
    return pp.model_dump_json() if pp is not None and not pp.is_identity else "off"


# max_batch_size 1 turns adaptive batching off (BentoML requires 2 or more when it is on).
_BATCHING = (
    {
        "batchable": True,
        "max_batch_size": CONFIG.max_batch_size,
        "max_latency_ms": CONFIG.max_latency_ms,
    }
    if CONFIG.max_batch_size > 1
    else {}
)


@bentoml.service(
    name="videoboost",
    workers=1,
    # Sync APIs run in a pool of this many threads; with 1 (the default) a video job would
    # block every image request of the worker. TF runs concurrent calls safely.
    threads=4,
    traffic={"timeout": 600, "max_concurrency": 64},
    # BentoML binds to 0.0.0.0 by default; we serve loopback only unless exposing is asked
    # for explicitly (`bentoml serve --host 0.0.0.0`, or BENTOML_HOST), which overrides this.
    http={"host": "127.0.0.1"},
    # BentoML's access log decodes the request's Content-Type as UTF-8 after the response
    # started: a Latin-1 byte in it (a hostile boundary) dropped the connection mid-answer.
    logging={"access": {"request_content_type": False}},
)
class VideoBoost:
    """The generator behind HTTP: one model per worker, loaded once."""

    # Declared so that `bentoml build` records (and pins) the model in the bento.
    generator_model = bentoml.models.BentoModel(str(MODEL.tag))

    def __init__(self) -> None:
        from videoboost.evaluation.runtime_select import model_key, select
        from videoboost.inference.engine import set_tf_threads
        from videoboost.mlops.tracking import load_generator

        set_tf_threads(CONFIG.threads or None)
        generator, info = load_generator(str(serving.model_file(MODEL)))
        meta_scale = MODEL.info.metadata.get("scale")
        if meta_scale is not None and int(meta_scale) != info["scale"]:
            raise RuntimeError(
                f"{MODEL.tag}: metadata says x{meta_scale}, the network upscales "
                f"x{info['scale']}; re-import the model"
            )
        self.scale = int(info["scale"])
        refused = {
            name: "failed the benchmark check at bento build"
            for name in MODEL.info.labels.get("runtime_refused", "").split(",")
            if name
        }
        self.runtime = select(
            generator,
            size=RUNTIME_PROBE_SIZE,
            runtime=CONFIG.runtime,
            threads=CONFIG.threads or None,
            refused=refused,
            int8_model=serving.int8_model(MODEL),  # made and checked at import (bento build)
            model=f"{MODEL.tag}#{model_key(generator)}",
        )
        # stdout as well as the log: the one line an operator looks for at start-up.
        print(f"videoboost {MODEL.tag}: {self.runtime.line()}", flush=True)
        log.info("%s", self.runtime.line())
        self.predict = self.runtime.predict
        self.window = infer_window(generator)  # a video-tier model's k; 0 = single-frame
        channels = 3 * (2 * self.window + 1)
        self.predict(np.zeros((1, 16, 16, channels), np.float32))  # trace before serving
        self.encoders = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="png")
        # Video jobs get threads of their own: sharing the API thread pool, 20 queued videos
        # held image requests for minutes (bench/load.py: p99 170 s against 5.4 s without).
        self.videos = ThreadPoolExecutor(CONFIG.video_jobs, thread_name_prefix="video")
        self.headers = {
            "X-VideoBoost-Model": str(MODEL.tag),
            "X-VideoBoost-Registry-Version": MODEL.info.labels.get("mlflow_version", ""),
            "X-VideoBoost-Scale": str(self.scale),
            "X-VideoBoost-Runtime": self.runtime.name,
            # What a picture goes through: a video-tier model sees a lone image as a still
            # window (the image repeated), and the answer says so.
            "X-VideoBoost-Mode": self._upscaler().mode,
        }
        log.info("serving %s (x%d) from %s", MODEL.tag, self.scale, info["uri"])

    # ------------------------------------------------------------------ helpers (not APIs)

    def _upscaler(self, tile: int | None = None, batch: int | None = None) -> Upscaler:
        cfg = CONFIG.engine(CONFIG.max_input_pixels, tile)
        if batch is not None:
            cfg = cfg.model_copy(update={"batch": batch})
        return Upscaler(self.predict, self.scale, cfg, window=self.window)

    def _stills_upscaler(self, batch: int) -> Upscaler:
        """For frames that are independent pictures: each goes in alone (a video-tier model
        sees it repeated into a window), still batched with the others."""
        cfg = CONFIG.engine(CONFIG.max_input_pixels, None).model_copy(update={"batch": batch})
        return Upscaler(still_predict(self.predict, self.window), self.scale, cfg)

    @property
    def frames_mode(self) -> str:
        """``X-VideoBoost-Mode`` of ``/upscale_frames``: every frame is upscaled on its own."""
        mode = self.headers["X-VideoBoost-Mode"]
        return f"{mode}; each frame on its own" if self.window else mode

    # ------------------------------------------------------------------ APIs

    @bentoml.api(route="/upscale")
    def upscale(
        self,
        image: Annotated[ImageUpload, IMAGE_FIELD],
        scale: Annotated[Scale | None, SCALE_FIELD] = None,
        tile: Annotated[Tile, TILE_FIELD] = CONFIG.tile,
        height: Annotated[Height | None, HEIGHT_FIELD] = None,
        postprocess: Annotated[PostProcess | None, POSTPROCESS_FIELD] = None,
        format: Annotated[ImageFormat, FORMAT_FIELD] = "png",
        quality: Annotated[Quality, QUALITY_FIELD] = 90,
        compression: Annotated[Compression, COMPRESSION_FIELD] = 1,
    ) -> Annotated[Path, bentoml.validators.ContentType("image/png")]:
        """Upscale one PNG or JPEG image by the model's factor; the answer is a PNG unless
        `format` asks for JPEG or WebP.

        Only `image` is needed; leave the other fields as they are for the model's own factor
        and a PNG.

        ```bash
        curl -F image=@frame.png http://127.0.0.1:3000/upscale -o frame_x4.png
        curl -F image=@frame.png -F height=720 http://127.0.0.1:3000/upscale -o frame_720p.png
        curl -F image=@frame.png -F format=jpeg -F quality=90 http://127.0.0.1:3000/upscale -o x4.jpg
        ```

        The answer's headers name the model (`X-VideoBoost-Model`,
        `X-VideoBoost-Registry-Version`, `X-VideoBoost-Scale`), say how the size was
        reached (`X-VideoBoost-Note`) and what the model ran (`X-VideoBoost-Mode`:
        `single-frame`, or for a video-tier model the image repeated into its window).
        """
        _check_options(scale, tile, self.scale)
        lr = _read_upload(image, "image")
        _check_output(*lr.shape[:2], height, self.scale)
        sr = self._upscaler(tile).upscale_image(lr, height=height, postprocess=postprocess)
        headers = {**self.headers, "X-VideoBoost-Postprocess": _postprocess_header(postprocess)}
        headers["X-VideoBoost-Note"] = plan_output(*lr.shape[:2], self.scale, height)[2]
        data = encode_image(sr, format, quality=quality, compression=compression)
        return Response(data, media_type=RESPONSE_FORMATS[format], headers=headers)

    def _frames_answer(
        self, frames: list[np.ndarray], fmt: str, quality: int, compression: int
    ) -> list[str]:
        """The frames upscaled, encoded and base64'd, in the order given."""
        order = sorted(range(len(frames)), key=lambda i: frames[i].shape)
        # Frames of a request are independent pictures (any sizes, any order), never a clip:
        # a video-tier model does not take one as another's neighbour.
        upscaler = self._stills_upscaler(max(CONFIG.batch, CONFIG.max_batch_size))
        srs = upscaler.upscale_frames(frames[i] for i in order)

        def encode(sr: np.ndarray) -> str:
            data = encode_image(sr, fmt, quality=quality, compression=compression)
            return base64.b64encode(data).decode()

        # Encoding a 720p frame costs about what the model does, and OpenCV releases the GIL
        # while encoding: the encodes overlap the model's next batch and each other.
        encoded = self.encoders.map(encode, srs)
        out: list[str] = [""] * len(frames)
        for i, text in zip(order, encoded, strict=True):
            out[i] = text
        return out

    if _BATCHING:
        # BentoML's batchable APIs take exactly one argument, so with adaptive batching on
        # (GPU deployments) the frames come back as PNGs at the fast level.
        @bentoml.api(route="/upscale_frames", **_BATCHING)
        def upscale_frames(self, frames: Annotated[list[FrameUpload], FRAMES_FIELD]) -> list[str]:
            """Upscale several PNG or JPEG frames; the answer is a JSON list of base64 PNGs,
            in order.

            Frames of concurrent requests share model calls (adaptive batching, up to
            `max_batch_size` frames). The endpoint takes only `frames`: the default tile, no
            post-processing. On this page, press *Add item* once per frame. Each frame is
            upscaled on its own, as by `/upscale` (a video-tier model sees it repeated, not
            its neighbours in the list; `/upscale` says so in `X-VideoBoost-Mode`).

            ```bash
            curl -F frames=@a.png -F frames=@b.png http://127.0.0.1:3000/upscale_frames
            ```
            """
            return self._frames_answer(frames, "png", 90, 1)

    else:

        @bentoml.api(route="/upscale_frames")
        def upscale_frames(
            self,
            frames: Annotated[list[FrameUpload], FRAMES_FIELD],
            ctx: bentoml.Context,
            format: Annotated[ImageFormat, FORMAT_FIELD] = "png",
            quality: Annotated[Quality, QUALITY_FIELD] = 90,
            compression: Annotated[Compression, COMPRESSION_FIELD] = 1,
        ) -> list[str]:
            """Upscale several PNG or JPEG frames; the answer is a JSON list of base64 images
            (PNG unless `format` says otherwise), in order.

            The frames of one request share model calls; the default tile, no
            post-processing. On this page, press *Add item* once per frame. Each frame is
            upscaled on its own, as by `/upscale`: a video-tier model sees it repeated, not
            its neighbours in the list (send a clip to `/upscale_video`). The
            `X-VideoBoost-Mode` header says which.

            ```bash
            curl -F frames=@a.png -F frames=@b.png http://127.0.0.1:3000/upscale_frames
            curl -F frames=@a.png -F format=jpeg http://127.0.0.1:3000/upscale_frames
            ```
            """
            ctx.response.headers.update({**self.headers, "X-VideoBoost-Mode": self.frames_mode})
            return self._frames_answer(frames, format, quality, compression)

    @bentoml.task(route="/upscale_video")
    async def upscale_video(
        self,
        video: Annotated[VideoUpload, VIDEO_FIELD],
        scale: Annotated[Scale | None, SCALE_FIELD] = None,
        tile: Annotated[Tile, TILE_FIELD] = CONFIG.tile,
        height: Annotated[Height | None, HEIGHT_FIELD] = None,
        postprocess: Annotated[PostProcess | None, POSTPROCESS_FIELD] = None,
    ) -> Annotated[Path, bentoml.validators.ContentType("video/mp4")]:
        """Upscale a video; the answer is an H.264 MP4 with the source's frame rate, frame
        count and audio (copied).

        A task: `POST /upscale_video/submit` checks the upload at once (a file that is not a
        readable video, or one over a limit, is refused there and no task is made) and
        answers a `task_id`; then poll `GET /upscale_video/status?task_id=…` until
        `completed` and fetch `GET /upscale_video/get?task_id=…`.

        ```bash
        curl -F video=@clip.mp4 http://127.0.0.1:3000/upscale_video/submit
        curl "http://127.0.0.1:3000/upscale_video/status?task_id=ID"
        curl "http://127.0.0.1:3000/upscale_video/get?task_id=ID" -o clip_x4.mp4
        ```
        """
        # The MP4 is returned as bytes in a Response: BentoML 1.4.40 never completes a task
        # that returns a Path. At most `video_jobs` run at once, on their own threads.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.videos, self._video_job, video, scale, tile, height, postprocess
        )

    def _video_job(
        self,
        video: Path,
        scale: int | None,
        tile: int,
        height: int | None,
        postprocess: PostProcess | None,
    ) -> Response:
        from videoboost.video.pipeline import upscale_video

        # Checked again: the submit check does not cover POST /upscale_video nor /retry.
        _check_options(scale, tile, self.scale)
        info = _check_video(video, height, self.scale)
        upscaler = self._upscaler(tile)
        seen = 0

        def process(frames: list[np.ndarray], before=(), after=()):
            nonlocal seen  # containers without a frame count are bounded here
            seen += len(frames)
            if seen > CONFIG.max_video_frames:
                raise PayloadTooLarge(
                    f"video has more than {CONFIG.max_video_frames} frames, the limit; split it"
                )
            return upscaler.upscale_frames(
                frames, height=height, postprocess=postprocess, before=before, after=after
            )

        with tempfile.TemporaryDirectory(prefix="videoboost-") as tmp:
            dst = Path(tmp) / "upscaled.mp4"
            try:
                result = upscale_video(
                    video,
                    dst,
                    process,
                    segment_frames=CONFIG.segment_frames,
                    context=upscaler.window,  # a video-tier window sees across segments
                    crf=CONFIG.crf,
                    preset=CONFIG.preset,
                )
            except SourceError as exc:
                raise BadInput(
                    f"the video cannot be decoded: {_source_reason(exc, video)}"
                ) from None
            data = dst.read_bytes()
        note = plan_output(info.height, info.width, self.scale, height)[2]
        headers = {
            **self.headers,
            "X-VideoBoost-Note": note + (f"; {result.note}" if result.note else ""),
            "X-VideoBoost-Frames": str(result.frames),
            "X-VideoBoost-Fps": str(result.fps),
            "X-VideoBoost-Postprocess": _postprocess_header(postprocess),
            "Content-Disposition": 'attachment; filename="upscaled.mp4"',
        }
        return Response(data, media_type="video/mp4", headers=headers)


_JSON_PART_MAX = 64 * 1024  # bytes: a parameter is a number or a small object


class _FormShape:
    """What an API's form may hold: its fields, which are files, which may repeat."""

    def __init__(self, spec: type, route: str) -> None:
        self.spec = spec
        self.route = route
        self.fields = dict(spec.model_fields)
        self.files = set(spec.multipart_fields)
        self.lists = {k for k, f in self.fields.items() if get_origin(f.annotation) is list}


async def _read_form(request: Request, route: str) -> FormData:
    try:
        return await request.form()  # cached on the request: BentoML reuses it
    except (HTTPException, MultiPartException) as exc:
        detail = getattr(exc, "detail", None) or getattr(exc, "message", "")
        raise BadInput(
            f"{route}: the multipart body cannot be parsed ({detail}); send it the way curl -F does"
        ) from None


def _json_value(name: str, text: str | bytes, *, strict: bool) -> Any:
    """A form value as BentoML reads it: JSON when it parses, else the text itself.

    Refuses what BentoML would answer 500 to: JSON nested too deep for Python's parser, and
    (``strict``, for JSON parts) bytes that are not UTF-8 JSON.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise BadInput(f"`{name}`: the JSON is nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        if strict:
            raise BadInput(
                f"`{name}`: the application/json part is not valid UTF-8 JSON; "
                f"send a JSON value such as null or 4"
            ) from None
        return text


async def _check_value_part(name: str, part: UploadFile) -> Any:
    """A parameter sent as a file part: accepted when it is JSON, as the OpenAPI page sends it.

    Swagger's "Try it out" builds a FormData in which every JSON-typed field is a Blob, so
    ``scale`` arrives as ``name="scale"; filename="blob"`` with ``Content-Type:
    application/json`` and the body ``null``. BentoML reads such a part as JSON; a real file
    (an image, binary data) in a parameter field stays a 400.
    """
    if _media_type(part) != "application/json":
        raise BadInput(
            f"`{name}` must be a plain value (curl -F {name}=...) or an application/json "
            "part, not a file"
        )
    data = await part.read(_JSON_PART_MAX + 1)
    await part.seek(0)  # BentoML reads the part again
    if len(data) > _JSON_PART_MAX:
        raise BadInput(f"`{name}`: the JSON part is over {_JSON_PART_MAX // 1024} KiB")
    return _json_value(name, data, strict=True)


async def _check_form(form: FormData, shape: _FormShape) -> dict[str, Any]:
    """Refuse a form BentoML would mishandle; returns the parameter values as BentoML reads
    them (JSON-decoded; file fields left out).

    BentoML 1.4.40 answers 500 for a value field sent as a non-UTF-8 file part and for a file
    field sent as text (which it would try to download as a URL); unknown and repeated fields
    it ignores silently. Each is a 400 here naming the field.
    """
    seen: set[str] = set()
    values: dict[str, Any] = {}
    for key, value in form.multi_items():
        name = key[:40]
        if key not in shape.fields:
            raise BadInput(f"unknown field `{name}`: {shape.route} takes {', '.join(shape.fields)}")
        if key in seen and key not in shape.lists:
            raise BadInput(f"`{name}` is given more than once; send it once")
        seen.add(key)
        if key in shape.files:
            if not isinstance(value, UploadFile):
                raise BadInput(
                    f"`{name}` must be a file part (curl -F {name}=@file); "
                    "text and URLs are not accepted"
                )
        elif isinstance(value, UploadFile):
            values[key] = await _check_value_part(name, value)
        else:
            values[key] = _json_value(name, value, strict=False)
    return values


def _guard_form(spec: type, route: str) -> type:
    """The API's input model, checking the multipart form before BentoML validates it.

    BentoML 1.4.40 answers 500 for a multipart body it cannot parse (starlette's 400 is lost);
    here that, and everything :func:`_check_form` refuses, is a 400 naming the field, and
    pydantic's errors become one readable line.
    """
    shape = _FormShape(spec, route)

    class Input(spec):
        @classmethod
        async def from_http_request(cls, request, serde):
            await _check_form(await _read_form(request, route), shape)
            try:
                return await super().from_http_request(request, serde)
            except ValidationError as exc:
                raise BadInput(_validation_message(exc)) from None

    return Input


def _validation_message(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in errors[:5]
    )


def _spill(upload: UploadFile, suffix: str | None) -> Path:
    """Copy an upload to a private temp file (0600) named ``videoboost-probe-*<suffix>``."""
    fd, name = tempfile.mkstemp(prefix="videoboost-probe-", suffix=suffix or "")
    with os.fdopen(fd, "wb") as out:
        upload.file.seek(0)
        shutil.copyfileobj(upload.file, out, 2**20)
    return Path(name)


async def _check_video_submit(scope: dict, body: bytes) -> BentoMLException | None:
    """The checks of ``upscale_video``, run on ``POST /upscale_video/submit`` before BentoML
    stores the request and makes a task: the form, the parameters, the media type, then a PyAV
    probe of the upload (readable, frame size, frame count, output size).

    BentoML 1.4's submit route stores any request and answers a task id; the task parses the
    input later, so a corrupt video's 400 appeared only on ``/get``. Returns the refusal, or
    None to let the request through (the task checks again, cheaply).
    """

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    method = VideoBoost.apis["upscale_video"]
    request = Request(scope, replay)
    spilled: Path | None = None
    try:
        values = await _check_form(await _read_form(request, method.route), _SUBMIT_SHAPE)
        upload = (await request.form()).get("video")
        if isinstance(upload, UploadFile):
            suffix = _safe_suffix(upload.filename)  # before _video_part reduces the name to it
            _video_part(upload)  # 415 before anything is written
            spilled = await asyncio.to_thread(_spill, upload, suffix)
            values["video"] = spilled
        try:
            checked = method.input_spec.model_validate(values)
        except ValidationError as exc:
            raise BadInput(_validation_message(exc)) from None
        _check_options(checked.scale, checked.tile, MODEL_SCALE)
        await asyncio.to_thread(_check_video, checked.video, checked.height, MODEL_SCALE)
    except BentoMLException as exc:
        return exc
    finally:
        await request.close()
        if spilled is not None:
            spilled.unlink(missing_ok=True)
    return None


# --------------------------------------------------------------------------- the OpenAPI page


def _model_facts() -> dict[str, Any]:
    """What the page says about the model: name, registry version, tag, scale, gain."""
    labels, meta = MODEL.info.labels, MODEL.info.metadata
    tags = meta.get("mlflow_tags") or {}
    gain = meta.get("bench_psnr_gain")
    if gain is None:  # a model imported before the gain was recorded in its metadata
        gain, _ = serving.benchmark_gain({**tags, **labels})
    return {
        "name": labels.get("mlflow_model") or serving.BENTO_MODEL,
        "version": labels.get("mlflow_version") or meta.get("registry_version") or "",
        "tag": str(MODEL.tag),
        "scale": MODEL_SCALE,
        "gain": float(gain) if gain is not None and math.isfinite(float(gain)) else None,
    }


def _limits_text() -> str:
    return (
        f"at most {CONFIG.max_input_pixels} pixels per image or video frame; uploads up to "
        f"{CONFIG.max_image_mb:g} MiB per image request and {CONFIG.max_video_mb:g} MiB per "
        f"video; videos up to {CONFIG.max_video_frames} frames"
    )


def _info(facts: dict[str, Any], version: str) -> dict[str, Any]:
    x = f"×{facts['scale']}" if facts["scale"] else ""
    model = f"{facts['name']} v{facts['version']}" if facts["version"] else facts["tag"]
    gain = (
        f"**{facts['gain']:+.2f} dB** PSNR over bicubic on the held-out benchmark"
        if facts["gain"] is not None
        else "not benchmarked yet (no `bench_psnr_gain` on this model version)"
    )
    token = (
        "\n\nEvery call needs the header `Authorization: Bearer <token>` (the server's "
        "`VIDEOBOOST_API_TOKEN`); without it the answer is 401."
        if _TOKEN is not None
        else ""
    )
    title = f"VideoBoost {x} · {model}"
    # BentoML's page hides info.title (its index.css), showing only the version badge: the
    # description repeats the title as its heading so the page shows it.
    description = f"""\
# {title}

VideoBoost upscales images and videos **{x}** with the GAN generator **{facts["name"]}**, \
registry version **{facts["version"] or "none (a file import)"}** (BentoML model \
`{facts["tag"]}`).

Benchmark gain: {gain}.

| endpoint | send (multipart/form-data) | answer |
|---|---|---|
| `POST /upscale` | `image`: a PNG or JPEG | the upscaled PNG (JPEG or WebP with `format`) |
| `POST /upscale_frames` | `frames`: one or more PNG/JPEG | a JSON list of base64 PNGs (or \
JPEG/WebP) |
| `POST /upscale_video/submit` | `video`: MP4, MOV, MKV, WebM... | `{{"task_id": …}}`; then \
`GET /upscale_video/status` and `GET /upscale_video/get` (the MP4) |

The other fields are optional: leave them empty (or `null`) for the model's own factor.

**Limits**: {_limits_text()}.

**Errors** are JSON `{{"error": "…"}}`: **400** bad input (a corrupt or unreadable upload, \
a missing or unknown field, a parameter out of range), **413** over a limit (the limit is \
in the message), **415** not `multipart/form-data`, or an upload of another media \
type.{token}
"""
    return {"title": title, "version": version, "description": description}


_ERROR_SCHEMA = {
    "type": "object",
    "title": "Error",
    "properties": {"error": {"type": "string", "description": "What was wrong, in one line."}},
    "required": ["error"],
}


def _error_responses(route: str) -> dict[str, Any]:
    """400/413/415 for an upload route, each with an example answer."""
    what = {"/upscale": "image", "/upscale_frames": "frame"}.get(route, "video")
    side = math.isqrt(CONFIG.max_input_pixels) + 1  # a square picture just over the budget
    if what == "video":
        bad = "video: cannot be read as a video (corrupt or not a video): Invalid data found"
        big = (
            f"video frames are {side}x{side} = {side * side} pixels, above the limit of "
            f"{CONFIG.max_input_pixels} pixels"
        )
        wrong = "`video` is image/png; send a video file (video/*)"
        kinds, mb = "not `video/*`", CONFIG.max_video_mb
    else:
        bad = f"{what}: not a readable image (corrupt or another file type)"
        big = (
            f"{what}: image is {side}x{side} = {side * side} pixels, above the limit of "
            f"{CONFIG.max_input_pixels} pixels; downscale it first"
        )
        wrong = (
            f"`{what}s` is image/gif; send PNG or JPEG frames"
            if what == "frame"
            else ("`image` is image/gif; send a PNG or JPEG image")
        )
        kinds, mb = "not PNG or JPEG", CONFIG.max_image_mb

    def answer(description: str, example: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"},
                    "example": {"error": example},
                }
            },
        }

    return {
        "400": answer(
            "Bad input: an upload that is empty, corrupt or not readable, a missing, unknown "
            "or repeated field, a file where a value belongs, a parameter out of range, a "
            "`scale` other than the model's, or a `height` over the output limit.",
            bad,
        ),
        "413": answer(
            f"Over a limit: more than {CONFIG.max_input_pixels} pixels per image or frame, or "
            f"an upload over {mb:g} MiB"
            + (f", or more than {CONFIG.max_video_frames} frames" if what == "video" else "")
            + ". The message names the limit.",
            big,
        ),
        "415": answer(
            f"The body is not `multipart/form-data`, or the upload is {kinds}.",
            wrong,
        ),
        "500": answer(
            "A server error; the server log has its traceback.",
            "An unexpected error has occurred, please check the server log.",
        ),
    }


_TASK_DOCS = {
    "submit": "Start an upscaling task. The upload is checked at once: a file that is not a "
    "readable video, a parameter out of range or a video over a limit gets its 400/413/415 "
    "here, and no task is made. Otherwise the answer is the `task_id` to poll.",
    "status": "The task's state: `in_progress`, then `completed` or `failed`.",
    "get": "The task's result: the MP4 once `completed`; a failed task answers its error "
    "(e.g. 400 for a video that cannot be decoded part-way).",
    "retry": "Run a finished task again with the same input.",
    "cancel": "Not supported by BentoML's local server (always 400).",
}


def _openapi(spec: dict) -> dict:
    """Finish the OpenAPI spec BentoML generates for ``/docs.json``.

    BentoML 1.4.40 builds it in ``_bentoml_sdk/service/openapi.py`` with no hook for the
    title, the task routes' descriptions or the error answers (``generate_spec`` is called
    on every request from the app's ``openapi_spec_view``). Field descriptions come from the
    API signatures (pydantic ``Field``) and operation descriptions from the (Markdown)
    docstrings; this adds what only the served model knows or BentoML does not document:

    * ``info``: a title and a Markdown description naming the model, its registry version,
      BentoML tag, scale and benchmark gain, the endpoints, limits and errors (BentoML's is
      the service name and the bento's README; its contact is BentoML's team);
    * the 400/413/415 answers of the upload routes, with examples (BentoML lists a generic
      400, 404 and 500);
    * examples of the JSON answers, and descriptions of the task routes.
    """
    spec["info"] = _info(_model_facts(), str(spec.get("info", {}).get("version", "")))
    spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    paths = spec.get("paths", {})
    video = VideoBoost.apis["upscale_video"].route
    for route in ("/upscale", "/upscale_frames", video, f"{video}/submit"):
        operation = paths.get(route, {}).get("post")
        if operation is None:
            continue
        responses = operation.setdefault("responses", {})
        responses.pop("404", None)  # nothing is looked up by id on an upload
        responses.update(_error_responses(route))
        operation["responses"] = dict(sorted(responses.items()))
    for method in VideoBoost.apis.values():
        # The collapsed operation shows the summary: the docstring's first paragraph.
        summary, _, rest = (method.doc or "").partition("\n\n")
        for route in (method.route, f"{method.route}/submit"):
            if "post" in paths.get(route, {}):
                paths[route]["post"]["summary"] = " ".join(summary.split())
                paths[route]["post"]["description"] = rest
    for name, text in _TASK_DOCS.items():
        for operation in paths.get(f"{video}/{name}", {}).values():
            # submit keeps the task's own description (its curl lines) after this one
            rest = operation.get("description", "") if name == "submit" else ""
            operation["description"] = f"{text}\n\n{rest}".strip()
    examples = {
        ("/upscale_frames", "post"): ["iVBORw0KGgoAAAANSUhEUgAA…", "iVBORw0KGgoAAAANSUhEUgAA…"],
        (f"{video}/submit", "post"): {"task_id": "4b1e0c2f9a…", "status": "in_progress"},
        (f"{video}/status", "get"): {
            "task_id": "4b1e0c2f9a…",
            "status": "completed",
            "created_at": "2026-11-30T12:00:00",
            "executed_at": "2026-11-30T12:00:09",
        },
    }
    for (route, verb), example in examples.items():
        ok = paths.get(route, {}).get(verb, {}).get("responses", {}).get("200", {})
        if "application/json" in ok.get("content", {}):
            ok["content"]["application/json"]["example"] = example
    # /upscale answers in the encoding `format` asks for, not only the PNG its type names.
    ok = paths.get("/upscale", {}).get("post", {}).get("responses", {}).get("200", {})
    if "image/png" in ok.get("content", {}):
        for media in RESPONSE_FORMATS.values():
            ok["content"].setdefault(media, dict(ok["content"]["image/png"]))
    return spec


for _method in VideoBoost.apis.values():
    _method.input_spec = _guard_form(_method.input_spec, _method.route)
    # Python 3.11 keeps a docstring's indentation, which Markdown would render as code.
    _method.doc = inspect.cleandoc(_method.doc or "")
_SUBMIT_SHAPE = _FormShape(VideoBoost.apis["upscale_video"].input_spec, "/upscale_video/submit")

# Read at import, like the model: a bad token setting stops `bentoml serve` at once.
try:
    _TOKEN = api_token()
except TokenSettingError as exc:
    raise InvalidArgument(str(exc)) from None
if _TOKEN is not None:
    # Added first, so it is the outermost of our middlewares: no size check, no body read
    # and no error detail for a request without the token.
    VideoBoost.add_asgi_middleware(TokenGuard, token=_TOKEN)
    log.info("API token required (VIDEOBOOST_API_TOKEN is set)")
_IMAGE_LIMIT = int(CONFIG.max_image_mb * 2**20)
_VIDEO_LIMIT = int(CONFIG.max_video_mb * 2**20)
VideoBoost.add_asgi_middleware(
    RequestGuard,
    limits={
        "/upscale": _IMAGE_LIMIT,
        "/upscale_frames": _IMAGE_LIMIT,
        "/upscale_video": _VIDEO_LIMIT,
        "/upscale_video/submit": _VIDEO_LIMIT,
    },
    prechecks={"/upscale_video/submit": _check_video_submit},
    openapi=_openapi,
)
