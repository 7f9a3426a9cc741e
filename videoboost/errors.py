"""Errors a user can act on. Each message names the thing and says what to do."""


class VideoBoostError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero (no traceback)."""

    exit_code = 1


class SourceError(VideoBoostError):
    """A video, image or folder that cannot be read."""

    exit_code = 2


class ValidationFailed(VideoBoostError):
    """A dataset failed its Great Expectations suite; ``docs`` is its Data Docs page."""

    exit_code = 3

    def __init__(self, message: str, docs=None):
        super().__init__(message)
        self.docs = docs


class ModelNotFound(VideoBoostError):
    """No model at the given URI/path (or no champion yet)."""

    exit_code = 4


class StoreUnavailable(VideoBoostError):
    """The MLflow tracking/registry store cannot be reached or written."""

    exit_code = 5


class PromotionConflict(VideoBoostError):
    """The registry changed while a promotion or rollback was deciding (another promotion ran)."""

    exit_code = 6


class BenchmarkLeak(VideoBoostError):
    """A benchmark source was used to train the model under evaluation."""

    exit_code = 7
