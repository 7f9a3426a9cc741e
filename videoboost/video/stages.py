"""Pipeline stages on threads of their own, joined by bounded queues.

A video job is three stages: decoding, the model, encoding. PyAV releases the GIL while it
decodes, converts colours (swscale) and encodes (x264), and TensorFlow and NumPy release it
while they compute, so the stages overlap on several cores when each runs on its own thread.
The queues between them are bounded: a fast stage waits for a slow one instead of piling
frames up, so memory does not grow with the length of the video.

* :func:`read_ahead` runs an iterator (the decoder) on a thread, at most ``depth`` items ahead
  of its consumer.
* :class:`WriteBehind` runs a consumer (the encoder) on a thread, at most ``depth`` items
  behind its producer.

With ``depth=0`` neither starts a thread: everything runs in the caller's thread, in the same
order, so the sequential path is the same code. An error in any stage reaches the caller as
the original exception (its type and message), and the other stages stop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# How often a blocked put/get looks whether the other side has stopped (seconds). Only the
# reaction to a failure waits this long; items flow as soon as there is room.
_POLL = 0.1
_END = object()


class _Failed:
    """An exception raised in a stage's thread, carried to the caller's thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; True when it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def read_ahead(items: Iterable[T], depth: int, *, name: str = "read-ahead") -> Iterator[T]:
    """Iterate ``items`` on a thread of its own, at most ``depth`` items ahead of the consumer.

    The producer thread holds one item more while it waits for room, so at most ``depth + 1``
    items exist beyond the one the consumer is working on. Closing the returned generator
    (``break``, an exception, garbage collection) stops the thread and closes ``items``.

    Args:
        items: any iterable; a generator is advanced and closed on the stage's thread only.
        depth: the queue's size; 0 = no thread, iterate in the caller's thread.
        name: the thread's name (seen in tracebacks and debuggers).

    Raises:
        Whatever iterating ``items`` raised, in the consumer's thread, after the items before it.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not _put(q, item, stop):
                    return
            _put(q, _END, stop)
        except BaseException as exc:  # handed over, re-raised in the consumer
            _put(q, _Failed(exc), stop)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # e.g. the decoder's `with` block closes its container

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


class WriteBehind(Generic[T]):
    """Hand items to ``consume`` on a thread of its own, at most ``depth`` waiting.

    Use as a context manager: leaving the block normally waits for every item to be consumed
    and re-raises a failure of ``consume``; leaving it with an exception stops the thread at
    once (items still waiting are dropped) and then calls ``on_abort`` (in the caller's
    thread, after the stage's thread has ended), e.g. to delete a half-written file.

    Args:
        consume: called once per item, in order, on the stage's thread.
        depth: the queue's size; 0 = no thread, ``consume`` runs inside :meth:`put`.
        on_abort: called when the block is left with an exception, or ``consume`` failed.
        name: the thread's name.
    """

    def __init__(
        self,
        consume: Callable[[T], None],
        depth: int,
        *,
        on_abort: Callable[[], None] | None = None,
        name: str = "write-behind",
    ) -> None:
        self._consume = consume
        self._on_abort = on_abort
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if depth > 0:
            self._queue: queue.Queue = queue.Queue(depth)
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._consume(item)
            except BaseException as exc:  # re-raised in the producer's thread
                self._error = exc
                self._stop.set()
                return

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue ``item`` (blocks while the queue is full).

        Raises:
            Whatever ``consume`` raised on an earlier item.
        """
        if self._thread is None:
            self._consume(item)
            return
        self._raise_error()
        if not _put(self._queue, item, self._stop):
            self._raise_error()
            raise RuntimeError("the stage was stopped")

    def close(self) -> None:
        """Wait until every item is consumed; re-raise a failure of ``consume``."""
        if self._thread is not None:
            _put(self._queue, _END, self._stop)
            self._thread.join()
            self._raise_error()

    def abort(self) -> None:
        """Stop at once, dropping waiting items, then call ``on_abort``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._on_abort is not None:
            self._on_abort()

    def __enter__(self) -> WriteBehind[T]:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise


__all__ = ["WriteBehind", "read_ahead"]
