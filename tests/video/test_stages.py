"""Pipeline stages on threads: bounded queues (memory does not follow the input's length),
order kept, errors carried to the caller with their type, and the other stages stopped."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from videoboost.video.stages import WriteBehind, read_ahead


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_read_ahead_keeps_order(depth):
    assert list(read_ahead(range(50), depth)) == list(range(50))


def test_read_ahead_never_runs_more_than_its_depth_ahead():
    produced = 0

    def endless():
        nonlocal produced
        for i in itertools.count():
            produced += 1
            yield i

    depth = 3
    leads = []
    stream = read_ahead(endless(), depth)
    for consumed, item in enumerate(stream, start=1):
        assert item == consumed - 1
        time.sleep(0.02)  # room for the producer to run ahead as far as it ever will
        leads.append(produced - consumed)
        if consumed == 20:
            break
    stream.close()
    # The queue holds `depth`, the producer one more while it waits for room. Without the
    # bound the endless producer would be thousands ahead here.
    assert max(leads) <= depth + 1
    assert max(leads) >= depth  # it did run ahead: the stages overlap


def test_read_ahead_stops_and_closes_its_source_when_the_consumer_stops():
    closed = threading.Event()

    def source():
        try:
            yield from itertools.count()
        finally:
            closed.set()

    stream = read_ahead(source(), 2)
    assert next(stream) == 0
    stream.close()
    assert closed.is_set()  # close() joined the thread, which closed the generator
    assert not any(t.name == "read-ahead" for t in threading.enumerate())


def test_read_ahead_raises_the_producers_error_after_the_items_before_it():
    class Broken(Exception):
        pass

    def source():
        yield 1
        yield 2
        raise Broken("decoding failed after 2 frames")

    got = []
    with pytest.raises(Broken, match="after 2 frames"):
        for item in read_ahead(source(), 4):
            got.append(item)
    assert got == [1, 2]


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_write_behind_consumes_everything_in_order(depth):
    seen = []
    with WriteBehind(seen.append, depth) as stage:
        for i in range(50):
            stage.put(i)
    assert seen == list(range(50))


def test_write_behind_blocks_the_producer_at_its_depth():
    release = threading.Event()
    seen = []

    def slow(item):
        release.wait()
        seen.append(item)

    depth = 2
    stage = WriteBehind(slow, depth)
    put = 0

    def producer():
        nonlocal put
        for i in range(100):
            stage.put(i)
            put += 1

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.3)  # room for the producer to get as far as it ever will
    # One item is in `slow`, `depth` wait in the queue; the next put blocks.
    assert put <= depth + 1
    release.set()
    thread.join()
    stage.close()
    assert seen == list(range(100))


def test_write_behind_failure_reaches_the_producer_and_aborts():
    aborted = []

    def consume(item):
        if item == 3:
            raise ValueError("frames must be (H, W, 3) uint8 RGB")

    stage = WriteBehind(consume, 2, on_abort=lambda: aborted.append(True))
    with pytest.raises(ValueError, match="uint8 RGB"), stage:
        for i in range(1000):
            stage.put(i)
    assert aborted == [True]


def test_write_behind_is_aborted_when_the_producer_fails():
    aborted = []
    seen = []
    stage = WriteBehind(seen.append, 4, on_abort=lambda: aborted.append(True))
    with pytest.raises(RuntimeError, match="model failed"), stage:
        stage.put(1)
        raise RuntimeError("model failed")
    assert aborted == [True]
    assert not any(t.name == "write-behind" for t in threading.enumerate())
