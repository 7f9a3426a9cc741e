"""Fuzz the upload endpoints of a real `bentoml serve` with a few hundred malformed requests.

The requests are generated (hypothesis, derandomized: the same ones on every run) from the
service's own OpenAPI document at ``/docs.json``: its field names, types, bounds and nested
schemas. Each request mixes valid and hostile fields (random bytes as images, corrupt and bomb
files, junk media types and file names, numbers out of range, NaN, huge, text, broken JSON,
files where values belong and text where files belong, unknown and missing fields) and may
then be broken at the multipart level (truncated, bytes flipped, wrong or missing boundary,
junk Content-Type). Every answer must be below 500, and every error a readable JSON
``{"error": message}``.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow
ROUTES = ("/upscale", "/upscale_frames")
EXAMPLES = 150  # per route


@pytest.fixture(scope="module")
def openapi(served) -> dict:
    r = served.client.get("/docs.json")
    assert r.status_code == 200
    return r.json()


def _form_schema(openapi: dict, route: str) -> dict:
    return openapi["paths"][route]["post"]["requestBody"]["content"]["multipart/form-data"][
        "schema"
    ]


def _resolve(openapi: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]


# --------------------------------------------------------------------------- files


def _png(h: int, w: int, seed: int) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".png", rgb)[1].tobytes()


def _declaring(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


VALID_IMAGES = [
    _png(8, 8, 0),
    _png(1, 1, 1),
    _png(3, 17, 2),
    cv2.imencode(".jpg", np.full((12, 9, 3), 128, np.uint8))[1].tobytes(),
]
HOSTILE_IMAGES = [
    b"",
    b"GIF89a" + bytes(20),
    _declaring(30000, 30000),
    _declaring(0, 5),
    _declaring(201, 200),  # just over the 40 000 pixel budget
    VALID_IMAGES[0][:40],
]


@st.composite
def file_content(draw, hostile: bool) -> bytes:
    kind = draw(st.sampled_from(["hostile", "random", "mutated"])) if hostile else "valid"
    if kind == "valid":
        return draw(st.sampled_from(VALID_IMAGES))
    if kind == "hostile":
        return draw(st.sampled_from(HOSTILE_IMAGES))
    if kind == "random":
        return draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(VALID_IMAGES)))
    for where, value in draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)))):
        data[where % len(data)] = value
    return bytes(data)


GOOD_MEDIA_TYPES = st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", ""])
MEDIA_TYPES = st.sampled_from(
    [
        "image/png",
        "image/jpeg",
        "application/octet-stream",
        "",
        "text/plain",
        "image/png; charset=binary",
        "video/mp4",
        "IMAGE/PNG",
        "image/",
        "multipart/form-data",
    ]
) | st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30)

FILENAMES = st.sampled_from(
    ["x.png", "../../../evil.png", "..", "/etc/passwd", "a" * 300, "a\\b.jpg", "x.png\x00.sh"]
) | st.text(st.characters(exclude_characters='"\r\n'), max_size=40)


# --------------------------------------------------------------------------- values

NASTY = [
    "",
    " ",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e309",
    "-0",
    "1.5",
    "0x10",
    "null",
    "true",
    "[]",
    "{}",
    '"4"',
    "٤",  # an Arabic-Indic digit: Python's int() takes it
    "4\x00",
    "9" * 400,
    "{" * 500,
    '{"contrast": NaN}',
    '{"contrast": 1e999}',
]


def _number(schema: dict, draw, valid: bool) -> Any:
    lo = schema.get("minimum", schema.get("exclusiveMinimum", -(2**31)))
    hi = schema.get("maximum", schema.get("exclusiveMaximum", 2**31))
    if valid and schema.get("type") == "integer":
        return draw(st.integers(lo, hi))
    if valid:
        return draw(
            st.floats(
                lo,
                hi,
                exclude_min="exclusiveMinimum" in schema,
                exclude_max="exclusiveMaximum" in schema,
            )
        )
    return draw(
        st.sampled_from([lo - 1, hi + 1, -1, 0, 2**31, -(2**63), 2**64])
        | st.integers()
        | st.floats(allow_nan=True, allow_infinity=True)
    )


def _value(openapi: dict, schema: dict, draw, valid: bool) -> str:
    """A form value for ``schema``: within its type and bounds, or anything but."""
    schema = _resolve(openapi, schema)
    kind = "typed" if valid else draw(st.sampled_from(["typed", "nasty", "text"]))
    if kind == "nasty":
        return draw(st.sampled_from(NASTY))
    if kind == "text":
        return draw(st.text(max_size=30))
    if schema.get("type") == "object" or "properties" in schema:
        obj = {
            name: _number(sub, draw, valid)
            for name, sub in schema.get("properties", {}).items()
            if draw(st.booleans())
        }
        if not valid and draw(st.booleans()):
            obj[draw(st.text(max_size=10))] = draw(st.integers() | st.text(max_size=10))
        return json.dumps(obj, allow_nan=True) if valid or draw(st.integers(0, 5)) else str(obj)
    return str(_number(schema, draw, valid))


# --------------------------------------------------------------------------- requests

Part = tuple[str, bytes, "str | None", "str | None"]  # name, body, filename, media type


def _is_file(schema: dict) -> bool:
    if schema.get("type") == "array":
        schema = schema.get("items", {})
    return schema.get("format") == "binary"


@st.composite
def form_parts(draw, openapi: dict, route: str, mode: str) -> list[Part]:
    """The parts of one form. ``mode``: "valid" (every field within the spec), "one-bad" (one
    field hostile) or "chaos" (any field hostile, plus unknown fields)."""
    schema = _form_schema(openapi, route)
    fields = schema["properties"]
    bad = {"valid": set(), "one-bad": {draw(st.sampled_from(sorted(fields)))}}.get(mode, fields)
    parts: list[Part] = []
    for name, field in fields.items():
        hostile = name in bad and (mode == "one-bad" or draw(st.booleans()))
        required = name in schema.get("required", [])
        if hostile:  # swap: text where a file belongs, a file where text belongs
            how = draw(st.sampled_from(["send", "send", "omit", "twice", "swap"]))
        else:
            how = "send" if required else draw(st.sampled_from(["send", "omit"]))
        if how == "omit":
            continue
        is_file = _is_file(field)
        many = field.get("type") == "array"
        for _ in range(2 if how == "twice" else draw(st.integers(1, 3)) if many else 1):
            if is_file != (how == "swap"):
                body = (
                    draw(file_content(hostile))
                    if is_file
                    else _value(openapi, field, draw, not hostile).encode()
                )
                filename = draw(FILENAMES | st.none()) if hostile else draw(FILENAMES)
                media = draw(MEDIA_TYPES if hostile else GOOD_MEDIA_TYPES)
                parts.append((name, body, filename, media))  # filename None: a text part
            elif is_file:
                url = draw(st.sampled_from(["http://169.254.169.254/", "file:///etc/passwd", ""]))
                parts.append((name, url.encode(), None, None))
            else:
                text = _value(openapi, field, draw, not hostile)
                parts.append((name, text.encode("utf-8", "surrogatepass"), None, None))
    for _ in range(draw(st.integers(0, 2)) if mode == "chaos" else 0):
        name = draw(
            st.sampled_from(["imag", "IMAGE", "frame", "", "image[]", "tile "])
            | st.text(max_size=12)
        )
        body = draw(file_content(draw(st.booleans())))
        parts.append((name, body, draw(FILENAMES | st.none()), draw(MEDIA_TYPES)))
    return draw(st.permutations(parts))


def _quote(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8", "surrogatepass")


def encode_multipart(parts: list[Part], boundary: bytes) -> bytes:
    out = []
    for name, body, filename, media in parts:
        disposition = b'form-data; name="' + _quote(name) + b'"'
        if filename is not None:
            disposition += b'; filename="' + _quote(filename) + b'"'
        head = b"Content-Disposition: " + disposition + b"\r\n"
        if media is not None:
            head += b"Content-Type: " + media.encode("latin-1") + b"\r\n"
        out.append(b"--" + boundary + b"\r\n" + head + b"\r\n" + body + b"\r\n")
    return b"".join(out) + b"--" + boundary + b"--\r\n"


@st.composite
def requests(draw, openapi: dict, route: str) -> tuple[bytes, str]:
    """``(body, Content-Type)`` of one request to ``route``: a well-formed form half of the
    time (with valid fields, or one hostile field), else chaos, broken at the multipart level
    one time in two."""
    mode = draw(st.sampled_from(["valid", "one-bad", "one-bad", "chaos", "chaos", "chaos"]))
    parts = draw(form_parts(openapi, route, mode))
    plain = st.text(st.characters(categories=["Lu", "Ll", "Nd"], max_codepoint=127), min_size=1)
    boundary = draw(
        st.sampled_from(["b0undary", "x" * 70, "a b", "--", "é"])
        | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80)
        if mode == "chaos"
        else plain.map(lambda b: b[:60])
    )
    body = encode_multipart(parts, boundary.encode())
    ctype = f"multipart/form-data; boundary={boundary}"
    damage = "none"
    if mode == "chaos":
        damage = draw(
            st.sampled_from(
                ["none"] * 6
                + ["truncate", "flip", "insert", "wrong-boundary", "no-boundary", "ctype"]
            )
        )
    if damage == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif damage == "flip" and body:
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 6))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        body = bytes(data)
    elif damage == "insert":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=40)) + body[at:]
    elif damage == "wrong-boundary":
        ctype = "multipart/form-data; boundary=" + draw(st.text(min_size=1, max_size=20))
    elif damage == "no-boundary":
        ctype = "multipart/form-data"
    elif damage == "ctype":
        ctype = draw(
            st.sampled_from(
                ["application/json", "text/plain", "", "image/png", "multipart/mixed; boundary=x"]
            )
            | st.text(max_size=40)
        )
    return body, ctype


def _check(response, route: str) -> None:
    assert response.status_code < 500, (route, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str), body
        assert body["error"] and "unexpected error" not in body["error"], body
    elif route == "/upscale":
        assert response.headers["content-type"] == "image/png"
    else:
        assert isinstance(response.json(), list)


def _header_safe(ctype: str) -> bytes:
    """What an HTTP client can put in a header: visible Latin-1 bytes and spaces (h11 refuses
    control bytes before sending)."""
    return bytes(ord(c) if 32 <= ord(c) <= 255 and ord(c) != 127 else 63 for c in ctype).strip()


@pytest.mark.parametrize("route", ROUTES)
def test_no_malformed_request_gets_a_5xx(served, openapi, route):
    seen: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests(openapi, route))
    def fuzz(request: tuple[bytes, str]) -> None:
        body, ctype = request
        r = served.client.post(route, content=body, headers={"content-type": _header_safe(ctype)})
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        _check(r, route)

    fuzz()
    print(f"{route}: status counts {dict(sorted(seen.items()))}")
    assert sum(seen.values()) >= EXAMPLES
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0  # both sides were reached
    assert served.client.get("/readyz").status_code == 200  # and the server is still fine
