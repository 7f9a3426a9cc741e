"""What the service is configured with, read once at import: serve settings, model, token.

Read at import so that a missing model or a bad setting stops ``bentoml serve`` at once with a
clear message; a failure in the service's ``__init__`` would make BentoML restart the worker
forever instead.
"""

import logging
import os

import bentoml
from bentoml.exceptions import InvalidArgument
from PIL import Image
from pydantic import ValidationError

from service.auth import TokenSettingError, api_token
from videoboost.config import ServeConfig
from videoboost.mlops import serving

log = logging.getLogger("bentoml.videoboost")  # under BentoML's configured logger


def _serve_config() -> ServeConfig:
    """Bento arguments (``--arg key=value``, recorded by ``bentoml build``), then environment
    variables ``VIDEOBOOST_SERVE_<KEY>``: serving a built bento ignores ``--arg`` (BentoML
    1.4 replaces them with the recorded ones), so a deployment tunes limits through env."""
    values = dict(vars(bentoml.use_arguments()))
    for name in ServeConfig.model_fields:
        env = os.environ.get(f"VIDEOBOOST_SERVE_{name.upper()}")
        if env is not None:
            values[name] = env
    try:
        return ServeConfig.model_validate(values)
    except ValidationError as exc:
        raise InvalidArgument(f"invalid VideoBoost serve settings: {exc}") from None


CONFIG = _serve_config()
# The LR frame size `auto` times the runtimes at: the benchmark's 320x180 (-> 720p at x4), as
# requests come in all sizes and a choice must be made before the first one.
RUNTIME_PROBE_SIZE = (320, 180)
MODEL = serving.resolve_model(CONFIG.model)
# The factor recorded at import; VideoBoost.__init__ checks the network agrees. Checks that run
# before the service instance (the video submit check, the OpenAPI page) read it from here.
MODEL_SCALE = int(MODEL.info.metadata.get("scale") or MODEL.info.labels.get("scale") or 0) or None

# Pillow refuses images over 2 x its MAX_IMAGE_PIXELS on its own. Kept at or above our budget,
# ours is the one limit a client can meet, and the one a 413 names.
if Image.MAX_IMAGE_PIXELS is not None:
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, CONFIG.max_input_pixels)

# Read at import, like the model: a bad token setting stops `bentoml serve` at once.
try:
    TOKEN = api_token()
except TokenSettingError as exc:
    raise InvalidArgument(str(exc)) from None

IMAGE_LIMIT = int(CONFIG.max_image_mb * 2**20)  # bytes of one image request
VIDEO_LIMIT = int(CONFIG.max_video_mb * 2**20)  # bytes of one video upload
