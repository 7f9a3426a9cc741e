"""The VideoBoost bento: the generator as an online image API and a batch video job.

Endpoints (all POST, multipart/form-data):

* ``/upscale`` -- field ``image`` (PNG/JPEG) -> the upscaled PNG. Optional fields ``scale``
  (must equal the model's), ``tile``, ``height`` and ``postprocess`` (JSON).
* ``/upscale_frames`` -- fields ``frames`` (one or more PNG/JPEG) -> a JSON list of base64 PNGs,
  in order. Adaptive batching: frames of concurrent requests share model calls.
* ``/upscale_video`` -- a BentoML task: ``POST /upscale_video/submit`` with field ``video``,
  then ``GET /upscale_video/status?task_id=`` and ``GET /upscale_video/get?task_id=`` -> MP4
  (H.264, source fps, frame count and audio). Same optional fields as ``/upscale``.

Errors are JSON ``{"error": message}``: 400 for a corrupt or non-image upload or a bad
parameter, 413 above the pixel/upload budget (the limit is in the message), 415 for a request
that is not multipart or an upload of another media type. A form BentoML cannot parse, an
unknown or repeated field, text where a file belongs and a ``height`` asking for more than
``max_input_pixels x scale^2`` output pixels are 400s too. Client file names are never paths.
``/livez``, ``/readyz`` and ``/metrics`` are BentoML's.

Security: the server binds to 127.0.0.1 unless told otherwise (``--host 0.0.0.0`` or
``BENTOML_HOST``). With ``VIDEOBOOST_API_TOKEN`` set, every request but the health and metrics
probes needs ``Authorization: Bearer <token>`` (401 otherwise; see :mod:`service.auth`).

The model comes from the BentoML model store (see :mod:`videoboost.serving`); without one the
service refuses to start, when this module is imported, with a message saying how to import
one. Limits and batching come from :class:`videoboost.config.ServeConfig`, settable with
``--arg key=value`` or ``VIDEOBOOST_SERVE_<KEY>``. Tiling, pre- and post-processing are the core
engine's.
"""

import asyncio
import base64
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, get_origin

import bentoml
import numpy as np
from annotated_types import Ge, Le
from bentoml.exceptions import BadInput, BentoMLException, InvalidArgument
from pydantic import AfterValidator, BeforeValidator, ValidationError
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.responses import Response

from service.auth import TokenGuard, TokenSettingError, api_token
from videoboost import serving
from videoboost.config import ServeConfig
from videoboost.engine import (
    ImageTooLarge,
    InvalidImage,
    PostProcess,
    Upscaler,
    plan_output,
)
from videoboost.errors import SourceError
from videoboost.images import UnsupportedImageFormat, encode_png, read_image

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
# Resolved at import so that a missing model stops `bentoml serve` at once with a clear
# message; a failure in __init__ would make BentoML restart the worker forever instead.
MODEL = serving.resolve_model(CONFIG.model)

IMAGE_FORMATS = frozenset({"PNG", "JPEG"})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg"})
GENERIC_TYPES = frozenset({"", "application/octet-stream"})  # curl's default for unknown names
MIN_TILE = 32  # smaller tiles are mostly overlap


class UnsupportedMediaType(BentoMLException):
    error_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class PayloadTooLarge(BentoMLException):
    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


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
VideoUpload = Annotated[
    Path,
    BeforeValidator(
        _part_checker("video", lambda m: m.startswith("video/"), "a video file (video/*)")
    ),
]
Tile = Annotated[int, Ge(0), Le(CONFIG.max_tile)]
Height = Annotated[int, Ge(16), Le(8640)]
Scale = Annotated[int, Ge(1), Le(8)]


class RequestGuard:
    """ASGI middleware: cheap refusals before a body is read, and one error shape.

    * 415 when an upload endpoint gets anything but ``multipart/form-data`` (BentoML would
      try to parse it as JSON and answer a confusing 400);
    * 413 when ``Content-Length`` (or, for chunked uploads, the bytes received) exceeds the
      endpoint's limit, so an oversized upload is never buffered;
    * BentoML 1.4.40 wraps the message of an exception raised in an API in a one-element list
      (``[{"error": ...}]``); it is unwrapped so every error is ``{"error": message}``.
    """

    def __init__(self, app: Any, limits: dict[str, int]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"].rstrip("/")) if scope["method"] == "POST" else None
        if limit is not None:
            headers = Headers(scope=scope)
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "multipart/form-data":
                await _send_json(
                    send,
                    415,
                    f"{scope['path']} takes multipart/form-data (curl -F field=@file), "
                    f"not {media or 'a body without Content-Type'}",
                )
                return
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                await _send_json(send, 413, _too_large(int(length), limit))
                return
        await _Exchange(self.app, scope, receive, send, limit).run()


def _too_large(size: int | None, limit: int) -> str:
    got = f"{size / 2**20:.1f} MiB, " if size is not None else ""
    return f"upload is {got}above the limit of {limit / 2**20:.0f} MiB"


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


class _Exchange:
    """One request through the app: counts the upload, rewrites JSON error bodies."""

    def __init__(self, app, scope, receive, send, limit: int | None) -> None:
        self.app, self.scope, self._receive, self._send = app, scope, receive, send
        self.limit = limit
        self.received = 0
        self.overflow = False
        self.started = False
        self.error_start: dict | None = None
        self.error_body = b""

    async def receive(self) -> dict:
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
                body = json.dumps(data[0]).encode()
        except ValueError:
            pass
        start = self.error_start
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except Exception:
            if not self.overflow:
                raise
        if self.overflow:
            await _send_json(self._send, 413, _too_large(None, self.limit or 0))


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
        from videoboost.engine import keras_predict, set_tf_threads
        from videoboost.tracking import load_generator

        set_tf_threads(CONFIG.threads or None)
        generator, info = load_generator(str(serving.model_file(MODEL)))
        meta_scale = MODEL.info.metadata.get("scale")
        if meta_scale is not None and int(meta_scale) != info["scale"]:
            raise RuntimeError(
                f"{MODEL.tag}: metadata says x{meta_scale}, the network upscales "
                f"x{info['scale']}; re-import the model"
            )
        self.scale = int(info["scale"])
        self.predict = keras_predict(generator)
        self.predict(np.zeros((1, 16, 16, 3), np.float32))  # trace the graph before serving
        self.encoders = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="png")
        # Video jobs get threads of their own: sharing the API thread pool, 20 queued videos
        # held image requests for minutes (bench/load.py: p99 170 s against 5.4 s without).
        self.videos = ThreadPoolExecutor(CONFIG.video_jobs, thread_name_prefix="video")
        self.headers = {
            "X-VideoBoost-Model": str(MODEL.tag),
            "X-VideoBoost-Registry-Version": MODEL.info.labels.get("mlflow_version", ""),
            "X-VideoBoost-Scale": str(self.scale),
        }
        log.info("serving %s (x%d) from %s", MODEL.tag, self.scale, info["uri"])

    # ------------------------------------------------------------------ helpers (not APIs)

    def _upscaler(self, tile: int | None = None, batch: int | None = None) -> Upscaler:
        cfg = CONFIG.engine(CONFIG.max_input_pixels, tile)
        if batch is not None:
            cfg = cfg.model_copy(update={"batch": batch})
        return Upscaler(self.predict, self.scale, cfg)

    def _check_options(self, scale: int | None, tile: int) -> None:
        if scale is not None and scale != self.scale:
            raise BadInput(
                f"scale={scale} is not available: this model ({MODEL.tag}) upscales "
                f"x{self.scale}; leave scale out, or ask for a size with height="
            )
        if 0 < tile < MIN_TILE:
            raise BadInput(f"tile={tile} is too small: use 0 (no tiling) or at least {MIN_TILE}")

    def _check_output(self, h: int, w: int, height: int | None) -> None:
        """Bound the output a target height makes: at most the model's output for the largest
        input allowed. Without it a 1-pixel-high strip with height=8640 would ask for a
        picture of gigabytes."""
        if height is None:
            return
        out_h, out_w, _ = plan_output(h, w, self.scale, height)
        limit = CONFIG.max_input_pixels * self.scale**2
        if out_h * out_w > limit:
            raise BadInput(
                f"height={height} would make a {out_w}x{out_h} output from {w}x{h}, above the "
                f"output limit of {limit} pixels (max_input_pixels x scale^2); ask for less"
            )

    # ------------------------------------------------------------------ APIs

    @bentoml.api(route="/upscale")
    def upscale(
        self,
        image: ImageUpload,
        scale: Scale | None = None,
        tile: Tile = CONFIG.tile,
        height: Height | None = None,
        postprocess: PostProcess | None = None,
    ) -> Annotated[Path, bentoml.validators.ContentType("image/png")]:
        """Upscale one PNG/JPEG image; returns a PNG.

        Args:
            image: the low-res image (multipart file field).
            scale: must equal the model's factor if given.
            tile: LR tile side (0 = whole image); seams are blended.
            height: output height, aspect ratio kept; beyond the model's factor the rest is
                Lanczos (said in the ``X-VideoBoost-Note`` header).
            postprocess: contrast/brightness/unsharp mask, JSON; off by default.
        """
        self._check_options(scale, tile)
        lr = _read_upload(image, "image")
        self._check_output(*lr.shape[:2], height)
        sr = self._upscaler(tile).upscale_image(lr, height=height, postprocess=postprocess)
        headers = {**self.headers, "X-VideoBoost-Postprocess": _postprocess_header(postprocess)}
        headers["X-VideoBoost-Note"] = plan_output(*lr.shape[:2], self.scale, height)[2]
        return Response(encode_png(sr), media_type="image/png", headers=headers)

    @bentoml.api(route="/upscale_frames", **_BATCHING)
    def upscale_frames(self, frames: list[FrameUpload]) -> list[str]:
        """Upscale PNG/JPEG frames with adaptive batching; returns base64 PNGs, in order.

        Concurrent requests are merged into one list (up to ``max_batch_size`` frames); frames
        of equal size go through the model together. A batchable API takes exactly one
        argument, so this endpoint uses the default tile and no post-processing. With
        ``max_batch_size`` 1 the endpoint is an ordinary one (each request on its own).
        """
        order = sorted(range(len(frames)), key=lambda i: frames[i].shape)
        upscaler = self._upscaler(batch=CONFIG.max_batch_size)
        srs = upscaler.upscale_frames(frames[i] for i in order)
        # PNG encoding of a 720p frame costs about what the model does, and OpenCV releases
        # the GIL while encoding: spread the batch's encodes over the cores.
        pngs = self.encoders.map(lambda sr: base64.b64encode(encode_png(sr)).decode(), srs)
        out: list[str] = [""] * len(frames)
        for i, png in zip(order, pngs, strict=True):
            out[i] = png
        return out

    @bentoml.task(route="/upscale_video")
    async def upscale_video(
        self,
        video: VideoUpload,
        scale: Scale | None = None,
        tile: Tile = CONFIG.tile,
        height: Height | None = None,
        postprocess: PostProcess | None = None,
    ) -> Annotated[Path, bentoml.validators.ContentType("video/mp4")]:
        """Upscale a video (a task: submit, poll status, get); returns an H.264 MP4.

        The output has the source's frame rate, frame count and audio streams (copied), as
        with ``videoboost upscale``. Returned as bytes in a response: BentoML 1.4.40 never
        completes a task that returns a ``Path``. At most ``video_jobs`` run at once.
        """
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
        from videoboost.videoio import probe, upscale_video

        self._check_options(scale, tile)
        try:
            info = probe(video, count_frames=False)
        except SourceError as exc:
            raise BadInput(f"not a readable video: {exc}") from exc
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
        self._check_output(info.height, info.width, height)
        upscaler = self._upscaler(tile)
        seen = 0

        def process(frames: list[np.ndarray]):
            nonlocal seen  # containers without a frame count are bounded here
            seen += len(frames)
            if seen > CONFIG.max_video_frames:
                raise PayloadTooLarge(
                    f"video has more than {CONFIG.max_video_frames} frames, the limit; split it"
                )
            return upscaler.upscale_frames(frames, height=height, postprocess=postprocess)

        with tempfile.TemporaryDirectory(prefix="videoboost-") as tmp:
            dst = Path(tmp) / "upscaled.mp4"
            try:
                result = upscale_video(
                    video,
                    dst,
                    process,
                    segment_frames=CONFIG.segment_frames,
                    crf=CONFIG.crf,
                    preset=CONFIG.preset,
                )
            except SourceError as exc:
                raise BadInput(f"the video cannot be decoded: {exc}") from exc
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


def _guard_form(spec: type, route: str) -> type:
    """The API's input model, checking the multipart form before BentoML validates it.

    BentoML 1.4.40 answers 500 for a multipart body it cannot parse (starlette's 400 is lost),
    for a value field sent as a non-UTF-8 file part, and for a file field sent as text (which
    it would try to download as a URL); unknown and repeated fields it ignores silently. Each
    is a 400 here naming the field, and pydantic's errors become one readable line.
    """
    fields = dict(spec.model_fields)
    files = set(spec.multipart_fields)
    lists = {k for k, f in fields.items() if get_origin(f.annotation) is list}

    class Input(spec):
        @classmethod
        async def from_http_request(cls, request, serde):
            try:
                form = await request.form()  # cached on the request: BentoML reuses it
            except (HTTPException, MultiPartException) as exc:
                detail = getattr(exc, "detail", None) or getattr(exc, "message", "")
                raise BadInput(
                    f"{route}: the multipart body cannot be parsed ({detail}); "
                    "send it the way curl -F does"
                ) from None
            seen: set[str] = set()
            for key, value in form.multi_items():
                name = key[:40]
                if key not in fields:
                    raise BadInput(f"unknown field `{name}`: {route} takes {', '.join(fields)}")
                if key in seen and key not in lists:
                    raise BadInput(f"`{name}` is given more than once; send it once")
                seen.add(key)
                if key in files and not isinstance(value, UploadFile):
                    raise BadInput(
                        f"`{name}` must be a file part (curl -F {name}=@file); "
                        "text and URLs are not accepted"
                    )
                if key not in files and isinstance(value, UploadFile):
                    raise BadInput(
                        f"`{name}` must be a plain value (curl -F {name}=...), not a file"
                    )
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


for _method in VideoBoost.apis.values():
    _method.input_spec = _guard_form(_method.input_spec, _method.route)

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
VideoBoost.add_asgi_middleware(
    RequestGuard,
    limits={
        "/upscale": _IMAGE_LIMIT,
        "/upscale_frames": _IMAGE_LIMIT,
        "/upscale_video": int(CONFIG.max_video_mb * 2**20),
        "/upscale_video/submit": int(CONFIG.max_video_mb * 2**20),
    },
)
