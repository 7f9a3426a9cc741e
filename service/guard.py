"""The service's ASGI guard: cheap refusals before a body is read, and one error shape."""

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers

from service.errors import public, refuse


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
    * ``GET /docs.json``: the OpenAPI spec BentoML generates, finished by ``openapi``
      (:func:`service.openapi.finish`).
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
                await refuse(
                    scope,
                    send,
                    415,
                    f"{scope['path']} takes multipart/form-data (curl -F field=@file), "
                    f"not {media or 'a body without Content-Type'}",
                )
                return
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                await refuse(scope, send, 413, too_large(int(length), limit))
                return
        precheck = self.prechecks.get(path) if scope["method"] == "POST" else None
        await _Exchange(self.app, scope, receive, send, limit, precheck).run()


def too_large(size: int | None, limit: int) -> str:
    got = f"{size / 2**20:.1f} MiB, " if size is not None else ""
    return f"upload is {got}above the limit of {limit / 2**20:g} MiB"


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
                data["error"] = public(data["error"])
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
                    await refuse(self.scope, self._send, 413, too_large(None, self.limit or 0))
                return
            refusal = await self.precheck(self.scope, body)
            if refusal is not None:
                await refuse(self.scope, self._send, refusal.error_code.value, str(refusal))
                return
            self.replay = body
        try:
            await self.app(self.scope, self.receive, self.send)
        except Exception:
            if not self.overflow:
                raise
        if self.overflow:
            await refuse(self.scope, self._send, 413, too_large(None, self.limit or 0))
