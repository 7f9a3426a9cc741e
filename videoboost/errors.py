"""Errors a user can act on. Each message names the thing and says what to do."""

from __future__ import annotations

import errno
import os
from pathlib import Path


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


class PrefectUnavailable(StoreUnavailable):
    """The Prefect API a flow needs does not answer (or the job's own server did not start)."""


class PromotionConflict(VideoBoostError):
    """The registry changed while a promotion or rollback was deciding (another promotion ran)."""

    exit_code = 6


class BenchmarkLeak(VideoBoostError):
    """A benchmark source was used to train the model under evaluation."""

    exit_code = 7


class OutputConflict(VideoBoostError):
    """The outputs asked for would overwrite an input or each other."""

    exit_code = 2


class OutputNotWritable(VideoBoostError):
    """An output cannot be written: the disk is full, the folder is read-only, or a file is in
    the way of a folder. Inputs are never touched, and nothing half-written is left behind."""

    exit_code = 8


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}
_NOT_A_FOLDER = {errno.ENOTDIR, errno.EEXIST}


def os_error_cause(exc: BaseException) -> OSError | None:
    """The OS error behind ``exc`` (itself or a cause) when it is about writing, else None."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE | _NO_PERMISSION | _NOT_A_FOLDER:
            return exc
        exc, seen = exc.__cause__, seen + 1
    return None


def output_error(exc: OSError, target: str | os.PathLike) -> OutputNotWritable:
    """Word an OS error met while writing ``target`` as what happened and what to do.

    Args:
        exc: the error (``errno`` says which case).
        target: the output the user asked for (not the hidden temp file that failed).
    """
    target = Path(target)
    reason = exc.strerror or str(exc)
    if exc.errno in _NO_SPACE:
        return OutputNotWritable(
            f"{target}: no space left to write it ({reason}); free disk space in "
            f"{target.parent} (or raise the file size limit) and run the same command again, "
            "or write to another disk"
        )
    if exc.errno in _NOT_A_FOLDER:
        blocker = next((p for p in (target, *target.parents) if p.exists()), target)
        if not blocker.is_dir():
            return OutputNotWritable(
                f"{blocker} is a file, not a folder, so {target} cannot be written there; "
                "choose another output path or move that file"
            )
    folder = Path(exc.filename).parent if exc.filename else target.parent
    if exc.errno in _NO_PERMISSION:
        return OutputNotWritable(
            f"{folder}: not writable ({reason}), so {target} cannot be written; choose another "
            "output folder or make this one writable for this user"
        )
    return OutputNotWritable(f"{target}: cannot be written ({reason}); choose another path")
