"""The API token setting and the token guard on their own (the served behaviour is in
test_load.py and, for the web page, test_ui.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.auth import COOKIE, TOKEN_ENV, TokenGuard, TokenSettingError, api_token, session_value


def test_no_variable_means_no_token():
    assert api_token({}) is None


def test_a_token_is_read_trimmed():
    assert api_token({TOKEN_ENV: " abc-DEF_123.~+/= \n"}) == b"abc-DEF_123.~+/="


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_an_empty_token_is_refused_not_read_as_no_auth(value):
    with pytest.raises(TokenSettingError, match=f"{TOKEN_ENV} is set but empty"):
        api_token({TOKEN_ENV: value})


@pytest.mark.parametrize("value", ["two words", "naïve", "semi;colon", 'quo"te'])
def test_a_token_that_cannot_travel_in_a_header_is_refused(value):
    with pytest.raises(TokenSettingError, match="token_urlsafe"):
        api_token({TOKEN_ENV: value})


# --------------------------------------------------------------------------- the page's door

ORIGIN = {"Origin": "http://127.0.0.1:3000"}


async def _inside(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"inside"})


def _run(calls, page: str | None = "/ui", cookie: str | None = None):
    """Run ``calls(client)`` against TokenGuard(token ``s3cret``) over an in-process client."""

    async def go():
        guard = TokenGuard(_inside, b"s3cret", page=page)
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:3000"
        ) as client:
            if cookie is not None:
                client.cookies.set(COOKIE, cookie)
            return await calls(client)

    return asyncio.run(go())


SESSION = session_value(b"s3cret").decode()


def test_without_the_token_the_page_is_a_401_form_and_the_api_a_401_json():
    async def calls(client):
        return await client.get("/ui"), await client.post("/upscale"), await client.get("/livez")

    page, api, probe = _run(calls)
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert 'action="/ui/login"' in page.text and "s3cret" not in page.text
    assert api.status_code == 401 and api.json()["error"].startswith("missing API token")
    assert probe.status_code == 200  # probes stay open


def test_the_right_token_sets_a_session_cookie_that_is_not_the_token():
    async def calls(client):
        wrong = await client.post("/ui/login", data={"token": "guess"}, headers=ORIGIN)
        had_cookie = COOKIE in client.cookies
        right = await client.post("/ui/login", data={"token": "s3cret"}, headers=ORIGIN)
        cookie = client.cookies.get(COOKIE)
        page, status = await client.get("/ui/"), await client.get("/upscale_video/status")
        return wrong, had_cookie, right, cookie, page, status

    wrong, had_cookie, right, cookie, page, status = _run(calls)
    assert wrong.status_code == 401 and "not this server" in wrong.text
    assert not had_cookie
    assert right.status_code == 303 and right.headers["location"] == "/ui/"
    set_cookie = right.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert cookie == SESSION and "s3cret" not in cookie
    assert page.text == "inside" and status.text == "inside"  # reads need no Origin


def test_the_cookie_writes_only_from_the_pages_own_origin():
    async def calls(client):
        return [
            (await client.post("/upscale", headers=h)).status_code
            for h in ({}, {"Origin": "http://evil.example"}, ORIGIN)
        ]

    assert _run(calls, cookie=SESSION) == [401, 401, 200]


def test_a_login_from_another_origin_or_too_long_is_refused():
    async def calls(client):
        other = await client.post(
            "/ui/login", data={"token": "s3cret"}, headers={"Origin": "http://x.y"}
        )
        long = await client.post("/ui/login", data={"token": "a" * 5000}, headers=ORIGIN)
        return other, long, COOKIE in client.cookies

    other, long, cookie = _run(calls)
    assert other.status_code == 403 and long.status_code == 413 and not cookie


def test_without_a_page_the_cookie_means_nothing():
    async def calls(client):
        bearer = {"Authorization": "Bearer s3cret"}
        return await client.get("/ui"), await client.get("/ui", headers=bearer)

    refused, allowed = _run(calls, page=None, cookie=SESSION)
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/json"
    assert allowed.text == "inside"
