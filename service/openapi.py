"""The OpenAPI page (``/``, spec at ``/docs.json``): BentoML's spec, finished with what only
the served model knows and what BentoML does not document."""

import math
from typing import Any

from service.settings import CONFIG, MODEL, MODEL_SCALE, TOKEN
from videoboost.inference.images import RESPONSE_FORMATS
from videoboost.mlops import serving


def model_facts() -> dict[str, Any]:
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
        if TOKEN is not None
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


def finish(spec: dict, apis: dict[str, Any]) -> dict:
    """Finish the OpenAPI spec BentoML generates for ``/docs.json``; ``apis``: the service's
    API methods by name (``VideoBoost.apis``).

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
    spec["info"] = _info(model_facts(), str(spec.get("info", {}).get("version", "")))
    spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    paths = spec.get("paths", {})
    video = apis["upscale_video"].route
    for route in ("/upscale", "/upscale_frames", video, f"{video}/submit"):
        operation = paths.get(route, {}).get("post")
        if operation is None:
            continue
        responses = operation.setdefault("responses", {})
        responses.pop("404", None)  # nothing is looked up by id on an upload
        responses.update(_error_responses(route))
        operation["responses"] = dict(sorted(responses.items()))
    for method in apis.values():
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
