"""Progress that suits where it goes: a tqdm bar in a terminal, plain lines in a log.

In a log file or a pipe, tqdm's carriage-return frames pile up into one unreadable line per
redraw. :func:`progress_bar` returns a tqdm bar when its stream is a terminal and a
:class:`LineProgress` otherwise: the same small interface (``update``, ``set_postfix``,
``set_postfix_str``, ``set_description``, ``write``, ``close``, a context manager, iterable),
printing one line when the step ends (an epoch, a source, a video) and, for long steps, one
line every ``$VIDEOBOOST_PROGRESS_SECONDS`` (default 30; ``0`` prints every update).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

INTERVAL_SETTING = "VIDEOBOOST_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0


def is_terminal(file: IO | None = None) -> bool:
    """Whether ``file`` (default stderr, where bars go) is an interactive terminal."""
    file = file if file is not None else sys.stderr
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def line_interval() -> float:
    """Seconds between lines within one step: ``$VIDEOBOOST_PROGRESS_SECONDS`` or 30."""
    try:
        value = float(os.environ.get(INTERVAL_SETTING, ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return max(value, 0.0)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class LineProgress:
    """tqdm's interface, printed as whole lines (for logs and pipes).

    A line reads ``DESC:  50% | 12/24 step [00:03, 4.00 step/s, loss=0.1]`` (without a total:
    ``DESC: 12 step [...]``). One is printed at ``close`` (unless ``leave`` is false: the caller
    prints its own summary) and, within the step, at most every ``interval`` seconds.
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        leave: bool = True,
        file: IO | None = None,
        interval: float | None = None,
        disable: bool = False,
    ):
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total, self.desc, self.unit, self.leave = total, desc, unit, leave
        self.file = file
        self.interval = line_interval() if interval is None else interval
        self.disable = disable
        self.n = 0
        self.postfix = ""
        self.start_t = self._last = time.monotonic()
        self._closed = False

    # -- tqdm's interface -------------------------------------------------------------------
    def update(self, n: float = 1) -> None:
        self.n += n
        if not self.disable and time.monotonic() - self._last >= self.interval:
            self._emit()

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh=True, **kw):
        items = {**(ordered_dict or {}), **kw}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def write(self, s: str, file: IO | None = None, end: str = "\n") -> None:
        """Print a line of the caller's own (tqdm's ``write``)."""
        out = file if file is not None else (self.file or sys.stderr)
        out.write(s + end)
        out.flush()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.leave and not self.disable:
            self._emit()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    # -- lines ------------------------------------------------------------------------------
    def line(self) -> str:
        elapsed = time.monotonic() - self.start_t
        n = int(self.n) if float(self.n).is_integer() else round(self.n, 2)
        rate = f"{self.n / elapsed:.2f} {self.unit}/s" if elapsed > 0 else "?"
        stats = ", ".join(filter(None, (_clock(elapsed), rate, self.postfix)))
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            pct = 100.0 * self.n / self.total
            total = int(self.total) if float(self.total).is_integer() else self.total
            return f"{head}{pct:3.0f}% | {n}/{total} {self.unit} [{stats}]"
        return f"{head}{n} {self.unit} [{stats}]"

    def _emit(self) -> None:
        self._last = time.monotonic()
        self.write(self.line())


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    leave: bool = True,
    file: IO | None = None,
    every: float | None = None,
    **tqdm_kwargs: Any,
):
    """A progress bar for a step: tqdm in a terminal, :class:`LineProgress` elsewhere.

    Args:
        iterable: optional, wrapped as tqdm does (``for x in progress_bar(xs): ...``).
        total: expected count of ``unit`` (None: unknown).
        desc: what the step is ("epoch 2/8", a file name); starts each line.
        unit: what is counted ("step", "frame").
        enabled: False gives a bar that prints nothing (tqdm's ``disable=True``).
        leave: keep the finished bar (terminal) / print a closing line (log).
        file: where it goes (default stderr); its ``isatty()`` chooses the kind.
        every: lines only: seconds between lines within the step (default
            ``$VIDEOBOOST_PROGRESS_SECONDS`` or 30; ``math.inf``: only the closing line).
        **tqdm_kwargs: passed to tqdm only (``dynamic_ncols``, ``mininterval``, ...).
    """
    if enabled and is_terminal(file):
        from tqdm.auto import tqdm

        return tqdm(
            iterable,
            total=total,
            desc=desc or None,
            unit=unit,
            leave=leave,
            file=file if file is not None else sys.stderr,
            **tqdm_kwargs,
        )
    return LineProgress(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        file=file,
        interval=every,
        disable=not enabled,
    )
