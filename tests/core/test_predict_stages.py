"""A long step of a frame (reading, z-scoring, resampling) is said while it runs (issue 20)."""

from __future__ import annotations

import threading

import pytest

from napari_labelfree.core.events import Stage
from napari_labelfree.core.predict.stages import timed_stage


def _finish(gen):
    messages = []
    while True:
        try:
            messages.append(next(gen))
        except StopIteration as stop:
            return messages, stop.value


def test_a_step_still_running_is_said_again_with_its_seconds():
    release = threading.Event()

    def step():  # cannot end before the test has seen a message sent while it runs
        assert release.wait(60)
        return 42

    gen = timed_stage(3, "resampling", step, every_s=0.01)
    assert next(gen) == Stage(3, "resampling")
    again = next(gen)
    assert again.frame == 3 and again.text.startswith("resampling (") and again.text.endswith(" s)")
    release.set()
    _, value = _finish(gen)
    assert value == 42


def test_a_short_step_costs_one_message():
    messages, value = _finish(timed_stage(0, "normalizing", lambda: "done", every_s=60))
    assert messages == [Stage(0, "normalizing")] and value == "done"


def test_the_step_error_reaches_the_job():
    def step():
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        _finish(timed_stage(0, "reading the frame", step, every_s=60))


def test_closing_the_job_waits_for_the_step():
    """Cancel: the step ends before the job does (no thread left working on a dropped frame)."""
    release, ended = threading.Event(), threading.Event()

    def step():
        assert release.wait(60)
        ended.set()

    gen = timed_stage(0, "resampling", step, every_s=0.01)
    next(gen)
    next(gen)  # the step runs
    threading.Timer(0.05, release.set).start()
    gen.close()
    assert ended.is_set()
