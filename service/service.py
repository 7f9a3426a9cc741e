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

A web page for people is at ``/ui`` (:mod:`service.ui`, ``docs/ui.md``): a picture or a clip
against bicubic, served by this process and calling these endpoints under the same rules.

The OpenAPI page (``/``, spec at ``/docs.json``) works as a client: parameters sent the way its
"Try it out" sends them (JSON file parts named ``blob``) are accepted, and the spec is finished
in :mod:`service.openapi`: title and description naming the model, its version, scale and
benchmark gain; Markdown descriptions; examples; the 400/413/415 answers.

Security: the server binds to 127.0.0.1 unless told otherwise (``--host 0.0.0.0`` or
``BENTOML_HOST``). With ``VIDEOBOOST_API_TOKEN`` set, every request but the health and metrics
probes needs ``Authorization: Bearer <token>`` (401 otherwise; see :mod:`service.auth`).

The model comes from the BentoML model store (see :mod:`videoboost.mlops.serving`); without
one the service refuses to start, when this module is imported (:mod:`service.settings`), with
a message saying how to import one. Limits and batching come from
:class:`videoboost.config.ServeConfig`, settable with ``--arg key=value`` or
``VIDEOBOOST_SERVE_<KEY>``. Tiling, pre- and post-processing are the core engine's.

The package, by seam: this module is the app (the endpoints and their wiring);
:mod:`service.settings` what it is configured with; :mod:`service.guard` the request guard;
:mod:`service.inputs` the upload and parameter checks; :mod:`service.forms` the multipart form
checks; :mod:`service.openapi` the OpenAPI page; :mod:`service.errors` the error answers and
log lines; :mod:`service.auth` the optional token; :mod:`service.ui` the web page, with
:mod:`service.about` (what it says about the model) and :mod:`service.live` (the runtime and
the video jobs' progress it shows).
"""

import asyncio
import base64
import inspect
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from bentoml.exceptions import BadInput
from starlette.responses import Response

from service import openapi
from service.auth import TokenGuard
from service.errors import PayloadTooLarge
from service.forms import guard_form, video_submit_check
from service.guard import RequestGuard
from service.inputs import (
    COMPRESSION_FIELD,
    FORMAT_FIELD,
    FRAMES_FIELD,
    HEIGHT_FIELD,
    IMAGE_FIELD,
    POSTPROCESS_FIELD,
    QUALITY_FIELD,
    SCALE_FIELD,
    TILE_FIELD,
    VIDEO_FIELD,
    Compression,
    FrameUpload,
    Height,
    ImageFormat,
    ImageUpload,
    Quality,
    Scale,
    Tile,
    VideoUpload,
    check_options,
    check_output,
    check_video,
    postprocess_header,
    read_upload,
    source_reason,
)
from service.live import TASKS, WORKER
from service.settings import (
    CONFIG,
    IMAGE_LIMIT,
    MODEL,
    RUNTIME_PROBE_SIZE,
    TOKEN,
    VIDEO_LIMIT,
    log,
)
from service.ui import PAGE, PageMount
from videoboost.errors import SourceError
from videoboost.inference.engine import (
    PostProcess,
    Upscaler,
    infer_window,
    plan_output,
    still_predict,
)
from videoboost.inference.images import RESPONSE_FORMATS, encode_image
from videoboost.mlops import serving

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
        WORKER.runtime = self.runtime  # the page at /ui shows it
        self.predict = self.runtime.predict
        self.window = infer_window(generator)  # a video-tier model's k; 0 = single-frame
        WORKER.window, WORKER.scale = self.window, self.scale
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
        check_options(scale, tile, self.scale)
        lr = read_upload(image, "image")
        check_output(*lr.shape[:2], height, self.scale)
        sr = self._upscaler(tile).upscale_image(lr, height=height, postprocess=postprocess)
        headers = {**self.headers, "X-VideoBoost-Postprocess": postprocess_header(postprocess)}
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
            self.videos, self._video_job, video, scale, tile, height, postprocess, _task_id()
        )

    def _video_job(
        self,
        video: Path,
        scale: int | None,
        tile: int,
        height: int | None,
        postprocess: PostProcess | None,
        task_id: str | None = None,
    ) -> Response:
        """The video job; ``task_id`` (BentoML's) names its progress for the page's stream."""
        try:
            response = self._upscale_video(video, scale, tile, height, postprocess, task_id)
        except BaseException:
            TASKS.finish(task_id, ok=False)
            raise
        TASKS.finish(task_id, ok=True)
        return response

    def _upscale_video(
        self,
        video: Path,
        scale: int | None,
        tile: int,
        height: int | None,
        postprocess: PostProcess | None,
        task_id: str | None,
    ) -> Response:
        from videoboost.video.pipeline import upscale_video

        # Checked again: the submit check does not cover POST /upscale_video nor /retry.
        check_options(scale, tile, self.scale)
        info = check_video(video, height, self.scale)
        upscaler = self._upscaler(tile)
        TASKS.start(task_id, info.frame_count)
        seen = done = 0

        def counted(frames):
            nonlocal done
            for frame in frames:
                done += 1
                TASKS.advance(task_id, done)
                yield frame

        def process(frames: list[np.ndarray], before=(), after=()):
            nonlocal seen  # containers without a frame count are bounded here
            seen += len(frames)
            if seen > CONFIG.max_video_frames:
                raise PayloadTooLarge(
                    f"video has more than {CONFIG.max_video_frames} frames, the limit; split it"
                )
            return counted(
                # planar: the model's frames go straight to the encoder's yuv420p (the batch
                # job's fast path, videoboost/video/colour.py)
                upscaler.upscale_frames(
                    frames,
                    height=height,
                    postprocess=postprocess,
                    before=before,
                    after=after,
                    planar=True,
                )
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
                    f"the video cannot be decoded: {source_reason(exc, video)}"
                ) from None
            data = dst.read_bytes()
        note = plan_output(info.height, info.width, self.scale, height)[2]
        headers = {
            **self.headers,
            "X-VideoBoost-Note": note + (f"; {result.note}" if result.note else ""),
            "X-VideoBoost-Frames": str(result.frames),
            "X-VideoBoost-Fps": str(result.fps),
            "X-VideoBoost-Postprocess": postprocess_header(postprocess),
            "Content-Disposition": 'attachment; filename="upscaled.mp4"',
        }
        return Response(data, media_type="video/mp4", headers=headers)


def _task_id() -> str | None:
    """The BentoML task id of the request being served (None outside a task)."""
    try:
        return getattr(VideoBoost.context.request.state, "task_id", None)
    except LookupError:
        return None


for _method in VideoBoost.apis.values():
    _method.input_spec = guard_form(_method.input_spec, _method.route)
    # Python 3.11 keeps a docstring's indentation, which Markdown would render as code.
    _method.doc = inspect.cleandoc(_method.doc or "")

if TOKEN is not None:
    # Added first, so it is the outermost of our middlewares: no size check, no body read
    # and no error detail for a request without the token.
    VideoBoost.add_asgi_middleware(TokenGuard, token=TOKEN, page=PAGE)
    log.info("API token required (VIDEOBOOST_API_TOKEN is set)")
VideoBoost.add_asgi_middleware(
    RequestGuard,
    limits={
        "/upscale": IMAGE_LIMIT,
        "/upscale_frames": IMAGE_LIMIT,
        "/upscale_video": VIDEO_LIMIT,
        "/upscale_video/submit": VIDEO_LIMIT,
    },
    prechecks={"/upscale_video/submit": video_submit_check(VideoBoost.apis["upscale_video"])},
    openapi=partial(openapi.finish, apis=VideoBoost.apis),
)
# The web page at /ui, inside both guards: the token and the error shape apply to it.
VideoBoost.add_asgi_middleware(PageMount)
