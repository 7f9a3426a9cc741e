"""The service's errors: HTTP exceptions, server paths kept out of answers and logs, and one
log line per rejected request."""

import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable
from http import HTTPStatus

from bentoml.exceptions import BadInput, BentoMLException
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from service.settings import log
from videoboost.inference.engine import ImageTooLarge
from videoboost.inference.images import UnsupportedImageFormat
from videoboost.mlops import serving


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


def public(text: str) -> str:
    """``text`` without server paths (a temp file's name in an FFmpeg error, for instance)."""
    return _SERVER_PATH.sub("<server path>", text)


def http_error(exc: Exception, what: str) -> BentoMLException:
    """Our input errors as the HTTP errors BentoML turns into JSON responses."""
    message = str(exc).replace("image: ", f"{what}: ", 1)
    if isinstance(exc, UnsupportedImageFormat):
        return UnsupportedMediaType(message)
    if isinstance(exc, ImageTooLarge):
        return PayloadTooLarge(message)
    return BadInput(message)


def log_rejection(where: str, status: int, message: str) -> None:
    """The one log line of a rejected request (``where`` as BentoML words it: ``/path [POST]``).

    A client's mistake is not a server error: no traceback, INFO level. The reason follows the
    status so an operator can answer "why did my call fail" from the log.
    """
    log.info("rejected %s with %d: %s", where, status, public(message))


def _client_error_status(exc: BaseException | None) -> int | None:
    if isinstance(exc, BentoMLException) and exc.error_code.value < 500:
        return exc.error_code.value
    if isinstance(exc, ValidationError):  # BentoML answers these 400
        return 400
    return None


class OneLineRejections(logging.Filter):
    """BentoML logs every failed request with a traceback (``log_exception``: "Exception on
    /upscale [POST]"), a 400 for a truncated PNG included. On that logger, a client error
    (4xx) becomes one line in :func:`log_rejection`'s words; a server error keeps its
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
            record.msg, record.args = "rejected %s with %d: %s", (where, status, public(str(exc)))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# The logger of bentoml._internal.server.http_app.log_exception, which the service app uses.
logging.getLogger("bentoml._internal.server.http_app").addFilter(OneLineRejections())


async def send_json(send: Callable, status: int, message: str) -> None:
    """Answer ``{"error": message}`` with ``status`` on a raw ASGI ``send``."""
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


async def refuse(scope: dict, send: Callable, status: int, message: str) -> None:
    """Answer a request the app never saw, with its one log line."""
    log_rejection(f"{scope['path']} [{scope['method']}]", status, message)
    await send_json(send, status, public(message))
