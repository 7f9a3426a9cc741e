"""One served bento for the hostile-upload and fuzz tests (a pytest plugin: both modules list it
in ``pytest_plugins``, so the session fixture starts one server for the two).

The server gets its own ``TMPDIR``, so the tests can see every temporary file it makes.

PYTEST_DONT_REWRITE: the test modules import its constants before pytest loads it as a plugin
(it has no asserts to rewrite).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bento import serve_bento

SCALE = 4
BUDGET = 40_000  # pixels per image (VIDEOBOOST_SERVE_MAX_INPUT_PIXELS)
MAX_IMAGE_MB = 1


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    """The served bento: ``client``, ``url``, ... (see :func:`bento.serve_bento`) and ``tmp``."""
    root = tmp_path_factory.mktemp("hostile")
    tmp = root / "tmp"
    tmp.mkdir(mode=0o700)
    serve_env = {
        "VIDEOBOOST_SERVE_MAX_INPUT_PIXELS": str(BUDGET),
        "VIDEOBOOST_SERVE_MAX_IMAGE_MB": str(MAX_IMAGE_MB),
        "VIDEOBOOST_SERVE_SEGMENT_FRAMES": "4",
        "TMPDIR": str(tmp),
    }
    with serve_bento(root, SCALE, serve_env) as served:
        served.tmp = Path(tmp)
        yield served
