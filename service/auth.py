"""The service's optional API token: ``VIDEOBOOST_API_TOKEN``.

When the variable is set, every request must carry ``Authorization: Bearer <token>``, except
the probes an orchestrator or Prometheus sends without credentials (:data:`OPEN_PATHS`). That
includes the Swagger UI (``/``) and the OpenAPI documents (``/docs.json``, ``/schema.json``): a
private service does not advertise its endpoints and limits; fetch them with the header.

The token is read from the environment only, never from ``--arg`` or ``ServeConfig``: bento
arguments are recorded in ``bento.yaml`` and would ship the secret with the bento. It is never
logged. Plain ASGI, no BentoML import, so it is testable on its own.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

TOKEN_ENV = "VIDEOBOOST_API_TOKEN"
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
_HOW = f"send the header `Authorization: Bearer <token>` with the server's {TOKEN_ENV}"


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
    """ASGI middleware: 401 for a request without the right bearer token.

    Put it outermost among our middlewares, so an unauthenticated request learns nothing
    (not even size limits) and its body is never read.
    """

    def __init__(self, app: Any, token: bytes) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket") or (scope["path"].rstrip("/") in OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        presented = _presented(scope)
        # compare_digest: the comparison time does not reveal how much of a guess matched.
        if presented is not None and hmac.compare_digest(presented, self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
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
