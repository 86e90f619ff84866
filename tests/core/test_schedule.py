"""Frame scheduling for time-lapse prediction: current frame first, outward, re-prioritized."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_labelfree.core.config import TilingConfig
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import FrameDone, FrameStarted, TileDone
from napari_labelfree.core.io import from_array
from napari_labelfree.core.predict.plan import plan_prediction
from napari_labelfree.core.predict.run import iter_predict_scheduled
from napari_labelfree.core.predict.schedule import FrameScheduler, outward_order


@pytest.mark.parametrize(
    ("center", "n", "expected"),
    [
        (2, 5, [2, 3, 1, 4, 0]),
        (0, 4, [0, 1, 2, 3]),
        (3, 4, [3, 2, 1, 0]),
        (9, 3, [2, 1, 0]),  # clipped to the last frame
        (0, 1, [0]),
        (0, 0, []),
    ],
)
def test_outward_order(center, n, expected):
    assert outward_order(center, n) == expected


def test_scheduler_hands_out_outward_order():
    s = FrameScheduler(6, current=2)
    got = []
    while (t := s.next_frame()) is not None:
        got.append(t)
        s.mark_done(t)
    assert got == outward_order(2, 6)
    assert s.done == got
    assert s.pending == []


def test_scheduler_is_an_iterable_of_frames():
    s = FrameScheduler(5, current=2, frames=[0, 1, 2, 4])
    assert len(s) == 4
    it = iter(s)
    assert next(it) == 2 and s.done == []  # handed out, not yet done
    s.set_current(4)  # the slider moves while frame 2 is predicted
    assert next(it) == 4 and s.done == [2]  # asking for the next frame marks the last done
    assert list(it) == [1, 0]
    assert s.done == [2, 4, 1, 0] and s.pending == []


def test_moving_the_slider_reprioritizes_pending_frames():
    s = FrameScheduler(10, current=0)
    assert s.next_frame() == 0
    assert s.next_frame() == 1
    s.set_current(7)
    assert s.next_frame() == 7
    assert s.pending[:3] == [8, 6, 9]
    s.set_current(0)
    assert s.next_frame() == 2  # 0 and 1 were already handed out


def test_scheduler_subset_and_bad_frames():
    s = FrameScheduler(5, current=4, frames=[0, 2])
    assert s.total == 2
    assert [s.next_frame(), s.next_frame(), s.next_frame()] == [2, 0, None]
    with pytest.raises(LabelFreeError, match="does not exist"):
        FrameScheduler(3, frames=[5])


def test_scheduler_is_thread_safe():
    s = FrameScheduler(200, current=100)
    taken: list[int] = []
    lock = threading.Lock()

    def take():
        while (t := s.next_frame()) is not None:
            with lock:
                taken.append(t)
            s.set_current(t)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(taken) == list(range(200))


@pytest.mark.parametrize("through", ["plan", "iter_predict_scheduled"])
def test_a_plan_predicts_the_scheduled_frames(make_tiny_model, rng, through):
    bundles = [make_tiny_model("dna"), make_tiny_model("lamin", colormap="red", seed=1)]
    data = rng.normal(size=(3, 4, 16, 16)).astype(np.float32)  # TZYX
    source = from_array(data, "TZYX", physical_sizes=(0.29, 0.29, 0.29))
    sched = FrameScheduler(3, current=1)
    tiling = TilingConfig((4, 16, 16))
    if through == "plan":
        gen = plan_prediction(source, bundles, tiling=tiling, device="cpu").iter_frames(sched)
    else:
        gen = iter_predict_scheduled(source, bundles, sched, tiling=tiling, device="cpu")
    started, done = [], []
    tiles = 0
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        if isinstance(ev, FrameStarted):
            started.append(ev.frame)
            if len(started) == 1:
                sched.set_current(0)  # the user moves the slider while frame 1 runs
        elif isinstance(ev, TileDone):
            tiles += 1
        elif isinstance(ev, FrameDone):
            done.append(ev.frame)
            assert set(ev.arrays) == {"dna", "lamin"}
            assert all(a.shape == (4, 16, 16) for a in ev.arrays.values())
    assert started == [1, 0, 2]
    assert done == result == [1, 0, 2]
    assert tiles >= 3


def test_a_scheduler_for_another_image_is_refused(make_tiny_model, rng):
    source = from_array(rng.normal(size=(2, 4, 16, 16)).astype(np.float32), "TZYX")
    plan = plan_prediction(source, [make_tiny_model()], device="cpu")
    with pytest.raises(LabelFreeError, match="the scheduler has 5 frames, the image 2"):
        next(plan.iter_frames(FrameScheduler(5)))


def test_iter_predict_scheduled_refuses_2d(make_tiny_model):
    source = from_array(np.zeros((1, 16, 16), np.float32), "ZYX")
    gen = iter_predict_scheduled(source, [make_tiny_model()], FrameScheduler(1))
    with pytest.raises(LabelFreeError, match="2D"):
        next(gen)
