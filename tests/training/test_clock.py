"""The training clock: a pause between two steps does not spend a time budget."""

import time

from videoboost.training.callbacks import Clock


def test_a_gap_over_max_gap_counts_as_max_gap():
    clock = Clock(before=10.0, steps=3, max_gap=0.05)
    clock.start()
    clock.step_done()
    time.sleep(0.4)  # the process was stopped: nothing trained
    assert clock.elapsed() < 10.0 + 0.3  # not counted while it lasts
    clock.step_done()
    assert clock.steps == 5
    assert 10.0 + 0.05 <= clock.elapsed() < 10.0 + 0.3
    assert clock.paused > 0.3


def test_steps_without_gaps_count_fully():
    clock = Clock(max_gap=5.0)
    clock.start()
    for _ in range(3):
        time.sleep(0.05)
        clock.step_done()
    assert clock.paused == 0.0 and clock.elapsed() >= 0.15
