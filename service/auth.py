"""The service's optional API token: ``VIDEOBOOST_API_TOKEN``.

When the variable is set, every request must carry ``Authorization: Bearer <token>``, except
the probes an orchestrator or Prometheus sends without credentials (:data:`OPEN_PATHS`). That
includes the Swagger UI (``/``) and the OpenAPI documents (``/docs.json``, ``/schema.json``): a
private service does not advertise its endpoints and limits; fetch them with the header.

The web page (``/ui``, :mod:`service.ui`) is behind the same token. A browser cannot add the
header to a page it navigates to, so a request under the page's path without the token gets a
401 *HTML* page with a form; ``POST /ui/login`` with the right token sets an HttpOnly,
``SameSite=Strict`` cookie holding a value derived from the token (never the token itself), and
that cookie then counts as the token for the page and for the API calls the page makes. A
cookie-authenticated request that changes anything (not GET/HEAD) must also come from the
page's own origin (``Origin`` equal to the request's host), so another site cannot make a
browser send one.

The token is read from the environment only, never from ``--arg`` or ``ServeConfig``: bento
arguments are recorded in ``bento.yaml`` and would ship the secret with the bento. It is never
logged. Plain ASGI, no BentoML import, so it is testable on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

TOKEN_ENV = "VIDEOBOOST_API_TOKEN"
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
_HOW = f"send the header `Authorization: Bearer <token>` with the server's {TOKEN_ENV}"
COOKIE = "videoboost_session"
_LOGIN_BODY_MAX = 4096  # bytes of a login form: one token
_SAFE_METHODS = frozenset({"GET", "HEAD"})


class TokenSettingError(ValueError):
    """``VIDEOBOOST_API_TOKEN`` is set to something that cannot be a bearer token."""


def api_token(environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The configured token as bytes, or None when auth is off (the variable is unset).

    An empty or malformed value is refused rather than read as "no auth": a deployment that
    meant to set a token must not come up open.
    """
    value = environ.get(TOKEN_ENV)
    if value is None:
        return None
    token = value.strip()
    if not token:
        raise TokenSettingError(
            f"{TOKEN_ENV} is set but empty: set a token (e.g. `python -c "
            '"import secrets; print(secrets.token_urlsafe(32))"`) or unset it to serve without one'
        )
    # RFC 6750 b64token characters: anything else cannot travel in the header unchanged.
    if not all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in token):
        raise TokenSettingError(
            f"{TOKEN_ENV} may only contain letters, digits and -._~+/= (it is sent in an "
            "HTTP header); `secrets.token_urlsafe(32)` makes a suitable one"
        )
    return token.encode()


def session_value(token: bytes) -> bytes:
    """The page's cookie value: derived from the token, so the cookie never holds the token."""
    return hmac.new(token, b"videoboost page session", hashlib.sha256).hexdigest().encode()


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def _cookie(scope: dict) -> bytes | None:
    """The value of the page's session cookie, if the request carries one."""
    for key, value in scope.get("headers", []):
        if key.lower() != b"cookie":
            continue
        for part in value.split(b";"):
            name, _, content = part.strip().partition(b"=")
            if name == COOKIE.encode():
                return content.strip()
    return None


def _same_origin(scope: dict) -> bool:
    """Whether a browser says the request comes from a page of this server."""
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if origin is None or host is None:
        return False
    return origin.lower() in (b"http://" + host.lower(), b"https://" + host.lower())


def _presented(scope: dict) -> bytes | None:
    """The bearer credential of the request's first Authorization header, if any."""
    for key, value in scope.get("headers", []):
        if key.lower() == b"authorization":
            scheme, _, credential = value.strip().partition(b" ")
            if scheme.lower() != b"bearer":
                return None
            return credential.strip()
    return None


class TokenGuard:
    """ASGI middleware: 401 for a request without the right bearer token (or page cookie).

    Put it outermost among our middlewares, so an unauthenticated request learns nothing
    (not even size limits) and its body is never read.

    Args:
        token: the token (:func:`api_token`).
        page: the web page's path (``/ui``): a browser gets a login form there, and the
            cookie it sets counts as the token. None: header only.
    """

    def __init__(self, app: Any, token: bytes, page: str | None = None) -> None:
        self.app = app
        self.token = token
        self.page = page
        self.session = session_value(token)

    def _on_page(self, path: str) -> bool:
        return self.page is not None and (path == self.page or path.startswith(self.page + "/"))

    def _cookie_ok(self, scope: dict) -> bool:
        if self.page is None:
            return False
        cookie = _cookie(scope)
        if cookie is None or not hmac.compare_digest(cookie, self.session):
            return False
        return scope.get("method", "GET") in _SAFE_METHODS or _same_origin(scope)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket") or (scope["path"].rstrip("/") in OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        if (
            scope["type"] == "http"
            and self.page is not None
            and scope["path"] == f"{self.page}/login"
            and scope["method"] == "POST"
        ):
            await self._login(scope, receive, send)
            return
        presented = _presented(scope)
        # compare_digest: the comparison time does not reveal how much of a guess matched.
        if presented is not None and hmac.compare_digest(presented, self.token):
            await self.app(scope, receive, send)
            return
        if presented is None and self._cookie_ok(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if presented is None and self._on_page(scope["path"]) and scope["method"] in _SAFE_METHODS:
            await self._login_page(send, 401, "")
            return
        if presented is None:
            message = f"missing API token: {_HOW}"
            challenge = b'Bearer realm="videoboost"'
        else:
            message = f"invalid API token: {_HOW}"
            challenge = b'Bearer realm="videoboost", error="invalid_token"'
        body = json.dumps({"error": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _login(self, scope: dict, receive: Callable, send: Callable) -> None:
        """``POST /ui/login`` (form field ``token``): the cookie and the page, or a 401."""
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > _LOGIN_BODY_MAX:
                await self._login_page(send, 413, "That is not a token (too long).")
                return
            if not message.get("more_body"):
                break
        if not _same_origin(scope):
            await self._login_page(send, 403, "Sign in from this server's own page.")
            return
        try:
            fields = parse_qs(body.decode("ascii"), max_num_fields=4)
        except (UnicodeDecodeError, ValueError):
            fields = {}
        given = (fields.get("token") or [""])[0].strip().encode()
        if not given or not hmac.compare_digest(given, self.token):
            await self._login_page(send, 401, "That is not this server's token.")
            return
        cookie = f"{COOKIE}={self.session.decode()}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", f"{self.page}/".encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _login_page(self, send: Callable, status: int, problem: str) -> None:
        body = _LOGIN_PAGE.format(
            action=html.escape(f"{self.page}/login"),
            env=TOKEN_ENV,
            problem=f'<p class="problem" role="alert">{html.escape(problem)}</p>'
            if problem
            else "",
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="videoboost"'),
                    (b"cache-control", b"no-store"),
                    (b"x-content-type-options", b"nosniff"),
                    (
                        b"content-security-policy",
                        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                        b"frame-ancestors 'none'; base-uri 'none'",
                    ),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# The page's door when the server has a token: self-contained (its own style, no script).
_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>VideoBoost: token needed</title>
<style>
body {{ font-family: system-ui, "DejaVu Sans", sans-serif; background: #f8fafc; color: #111827;
  display: grid; place-items: center; min-height: 100vh; margin: 0; }}
form {{ background: #fff; border: 1px solid #e5e7eb; border-radius: 12px; padding: 28px 32px;
  width: min(440px, 92vw); }}
h1 {{ font-size: 20px; margin: 0 0 8px; }} p {{ color: #4b5563; font-size: 14px; }}
input {{ width: 100%; font: inherit; padding: 8px 10px; margin: 6px 0 14px;
  border: 1px solid #cbd5e1; border-radius: 8px; }}
button {{ font: inherit; font-weight: 600; padding: 8px 18px; border: 0; border-radius: 8px;
  background: #1d4ed8; color: #fff; cursor: pointer; }}
.problem {{ color: #b91c1c; }}
</style></head>
<body><form method="post" action="{action}">
<h1>VideoBoost needs its API token</h1>
<p>This server only answers requests that carry its token ({env}).
Enter it to open the page; your browser keeps it for this session.</p>
{problem}
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Open the page</button>
</form></body></html>
"""
