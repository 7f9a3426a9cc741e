"""The web page at ``/ui``: drop in a picture or a clip, compare it with bicubic, take the
result home.

A static page (HTML, CSS and JavaScript in ``service/static/``, no build step, no CDN, system
fonts) served by the API's own process. The page calls the API itself (``/upscale``,
``/upscale_video/submit``, ``/status``, ``/get``) from the browser, so its uploads meet the
API's limits, checks and messages unchanged. The server adds only what the API has no route
for:

* ``GET /ui`` (and ``/ui/``): the page;
* ``GET /ui/static/<file>``: its script, style and icon;
* ``GET /ui/about.json``: the model's story (:func:`service.about.story`);
* ``GET /ui/progress?task_id=``: a video task's progress as server-sent events
  (``{"state": "running" | "done" | "failed" | "waiting", "frames": n, "total": n}``).

Bicubic, for the comparison, is computed in the browser (Pillow's bicubic, the project's
baseline: :func:`videoboost.data.degrade.upscale_bicubic`), so no second upload is needed.

With ``VIDEOBOOST_API_TOKEN`` set the page is behind the token like everything else: a
browser without it gets a 401 with a form asking for it (:mod:`service.auth`).
"""

import asyncio
import json
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from service.about import story
from service.live import TASKS

PAGE = "/ui"
STATIC = Path(__file__).parent / "static"
# Everything the page loads comes from this server; blob: holds the results it shows.
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# The files the page is made of; nothing else under static/ is served.
FILES = {
    "ui.js": "text/javascript; charset=utf-8",
    "ui.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
PROGRESS_POLL_S = 0.25
PROGRESS_IDLE_S = 900.0  # a stream that sees no change for this long ends
KEEPALIVE_S = 15.0


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


async def _static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES:
        return JSONResponse({"error": f"no such file: {name[:60]}"}, 404, headers=HEADERS)
    return FileResponse(STATIC / name, media_type=FILES[name], headers=HEADERS)


async def _about(request: Request) -> Response:
    return JSONResponse(story(), headers=HEADERS)


async def _progress(request: Request) -> Response:
    task_id = request.query_params.get("task_id", "")[:128]
    if not task_id:
        return JSONResponse({"error": "task_id is required"}, 400, headers=HEADERS)

    async def events():
        last, changed, sent = None, time.monotonic(), time.monotonic()
        while True:
            now = TASKS.get(task_id) or {"state": "waiting", "frames": 0, "total": 0}
            if now != last:
                yield f"data: {json.dumps(now)}\n\n"
                last, changed, sent = now, time.monotonic(), time.monotonic()
            if now["state"] in ("done", "failed") or time.monotonic() - changed > PROGRESS_IDLE_S:
                return
            if time.monotonic() - sent > KEEPALIVE_S:
                yield ": still working\n\n"  # a comment: keeps proxies from closing the stream
                sent = time.monotonic()
            await asyncio.sleep(PROGRESS_POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream", headers=HEADERS)


def page_app() -> Starlette:
    """The page's own routes (full paths: :class:`PageMount` passes the scope unchanged)."""
    return Starlette(
        routes=[
            Route(PAGE, _index, methods=["GET", "HEAD"]),
            Route(f"{PAGE}/", _index, methods=["GET", "HEAD"]),
            Route(f"{PAGE}/about.json", _about, methods=["GET"]),
            Route(f"{PAGE}/progress", _progress, methods=["GET"]),
            Route(f"{PAGE}/static/{{name}}", _static, methods=["GET", "HEAD"]),
        ]
    )


class PageMount:
    """ASGI middleware: requests under ``/ui`` go to the page, everything else to the API.

    A middleware rather than a BentoML mount, so that the API's routes, its service schema
    (``/schema.json``) and its OpenAPI page stay exactly as they are. Added after the token
    and request guards, so both apply to the page.
    """

    def __init__(self, app, page: Starlette | None = None) -> None:
        self.app = app
        self.page = page or page_app()

    async def __call__(self, scope: dict, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == PAGE or path.startswith(f"{PAGE}/"):
            await self.page(scope, receive, send)
        else:
            await self.app(scope, receive, send)
