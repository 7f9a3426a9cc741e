"""Form checks: the multipart body refused or read the way BentoML would read it, before
BentoML validates it (its own handling answers 500 for several malformed forms)."""

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_origin

from bentoml.exceptions import BadInput, BentoMLException
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from service.inputs import check_options, check_video, media_type, safe_suffix, video_part
from service.settings import MODEL_SCALE

_JSON_PART_MAX = 64 * 1024  # bytes: a parameter is a number or a small object


class FormShape:
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
    if media_type(part) != "application/json":
        raise BadInput(
            f"`{name}` must be a plain value (curl -F {name}=...) or an application/json "
            "part, not a file"
        )
    data = await part.read(_JSON_PART_MAX + 1)
    await part.seek(0)  # BentoML reads the part again
    if len(data) > _JSON_PART_MAX:
        raise BadInput(f"`{name}`: the JSON part is over {_JSON_PART_MAX // 1024} KiB")
    return _json_value(name, data, strict=True)


async def _check_form(form: FormData, shape: FormShape) -> dict[str, Any]:
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


def guard_form(spec: type, route: str) -> type:
    """The API's input model, checking the multipart form before BentoML validates it.

    BentoML 1.4.40 answers 500 for a multipart body it cannot parse (starlette's 400 is lost);
    here that, and everything :func:`_check_form` refuses, is a 400 naming the field, and
    pydantic's errors become one readable line.
    """
    shape = FormShape(spec, route)

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


def video_submit_check(method: Any) -> Callable[[dict, bytes], Awaitable[Any]]:
    """The checks of ``upscale_video`` (``method``, its input spec already guarded by
    :func:`guard_form`), run on ``POST /upscale_video/submit`` before BentoML stores the
    request and makes a task: the form, the parameters, the media type, then a PyAV probe of
    the upload (readable, frame size, frame count, output size).

    BentoML 1.4's submit route stores any request and answers a task id; the task parses the
    input later, so a corrupt video's 400 appeared only on ``/get``. The check returns the
    refusal, or None to let the request through (the task checks again, cheaply).
    """
    shape = FormShape(method.input_spec, f"{method.route}/submit")

    async def check(scope: dict, body: bytes) -> BentoMLException | None:
        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request(scope, replay)
        spilled: Path | None = None
        try:
            values = await _check_form(await _read_form(request, method.route), shape)
            upload = (await request.form()).get("video")
            if isinstance(upload, UploadFile):
                suffix = safe_suffix(upload.filename)  # before video_part reduces the name to it
                video_part(upload)  # 415 before anything is written
                spilled = await asyncio.to_thread(_spill, upload, suffix)
                values["video"] = spilled
            try:
                checked = method.input_spec.model_validate(values)
            except ValidationError as exc:
                raise BadInput(_validation_message(exc)) from None
            check_options(checked.scale, checked.tile, MODEL_SCALE)
            await asyncio.to_thread(check_video, checked.video, checked.height, MODEL_SCALE)
        except BentoMLException as exc:
            return exc
        finally:
            await request.close()
            if spilled is not None:
                spilled.unlink(missing_ok=True)
        return None

    return check
