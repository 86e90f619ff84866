"""Removing layers and closing the viewer while a prediction runs: it stops cleanly, nothing crashes.

The worker is held after each finished frame by the ``gate`` fixture, so every case happens at a
known point of the run (no sleeps, no timing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_labelfree._widgets._layers import META_KEY

SCALE = (0.29, 0.29, 0.29)
TIMEOUT = 120_000
FNET = Path(__file__).resolve().parents[3] / "shared" / "data" / "fnet-models"


def _prediction_layers(viewer):
    return [ly for ly in viewer.layers if ly.metadata.get(META_KEY, {}).get("role") == "prediction"]


def test_crash_sequence_of_issue_11(open_predict, tiny_models, gate, qtbot):
    """Z-stack sample, predict dna + lamin-b1, delete all layers, time-lapse sample, predict dna,
    delete bright-field after the first frame (a segfault in napari 0.9.2 before)."""
    viewer, widget = open_predict()
    viewer.open_sample("napari-labelfree", "zstack")
    assert widget.image.value == "bright-field"
    widget.device.value = "cpu"
    widget.models.set_checked([m.path for m in tiny_models])
    gate.release.set()  # the z-stack runs through
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    assert {"dna (predicted)", "lamin-b1 (predicted)"} <= {ly.name for ly in viewer.layers}

    viewer.layers.clear()
    gate.release.clear()
    viewer.open_sample("napari-labelfree", "timelapse")
    assert widget.image.value == "bright-field"
    widget.models.set_checked([tiny_models[0].path])
    widget.predict_btn.native.click()
    run = widget.run
    qtbot.waitUntil(lambda: len(run.frames_done) == 1, timeout=TIMEOUT)
    viewer.layers.remove("bright-field")
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    assert run.frames_done == run.frames_done[:1]  # stopped at the next tile
    assert widget.status.text().startswith("Stopped")
    (layer,) = _prediction_layers(viewer)  # the finished frame stays
    assert layer.name == "dna (predicted)"
    assert np.abs(layer.data[run.frames_done[0]]).any()
    viewer.reset_view()  # a repaint with the source gone
    assert widget.predict_btn.enabled


def test_removing_an_overlay_mid_run_cancels(
    open_predict, tiny_models, volume, tiling_small, gate, qtbot
):
    viewer, widget = open_predict()
    viewer.add_image(np.stack([volume] * 4), name="bright-field", scale=(1.0, *SCALE))
    tiling_small(widget)
    widget.models.set_checked([m.path for m in tiny_models])
    widget.predict_btn.native.click()
    run = widget.run
    qtbot.waitUntil(lambda: len(run.frames_done) == 1, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: len(run.layers) == 2, timeout=TIMEOUT)
    viewer.layers.remove("dna (predicting)")
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    assert len(run.frames_done) == 1
    assert [ly.name for ly in _prediction_layers(viewer)] == ["lamin-b1 (predicted)"]


def test_closing_the_viewer_mid_run_cancels(
    viewer_factory, tiny_models, volume, tiling_small, gate, qtbot
):
    viewer = viewer_factory()
    _, widget = viewer.window.add_plugin_dock_widget("napari-labelfree", "Label-free prediction")
    viewer.add_image(np.stack([volume] * 4), name="bright-field", scale=(1.0, *SCALE))
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    widget.predict_btn.native.click()
    runner = widget.runner
    qtbot.waitUntil(lambda: len(widget.run.frames_done) == 1, timeout=TIMEOUT)
    gate.release.set()
    viewer.close()  # waits for the worker to stop at its next tile
    assert runner.closed and not runner.running
    assert runner._ended.is_set()


@pytest.mark.skipif(not FNET.is_dir(), reason="shared pytorch_fnet models absent")
def test_import_a_pytorch_fnet_model(open_predict, isolated_models, qtbot):
    viewer, widget = open_predict()
    widget.models.import_model(FNET / "release_1" / "saved_models" / "dna")
    qtbot.waitUntil(lambda: not widget.models.importer.running, timeout=TIMEOUT)
    ticked = widget.models.checked_bundles()
    assert len(ticked) == 1
    bundle = ticked[0]
    assert bundle.source == "user"
    assert widget.models.list.currentItem().text().endswith("(user)")
    details = widget.models.details.text()
    assert "imported from pytorch_fnet release_1" in details and "voxel size" in details


def test_cutting_frames_for_cancel_keeps_the_plans_memory_cap():
    # the widget cuts large CPU frames into a few tiles; never larger than the plan's own tile,
    # which holds the CPU fp32 cap (core.predict.tiling.max_tile_shape)
    from types import SimpleNamespace

    import torch

    from napari_labelfree._widgets._predict_job import fit_tiles_to_cpu
    from napari_labelfree.core.config import TilingConfig

    # feed_shape: what the network is fed (the grid, or a 2.5D window of it)
    group = SimpleNamespace(feed_shape=(64, 1024, 1024), multiple=16)
    capped = (64, 144, 272)
    plan = SimpleNamespace(
        device=torch.device("cpu"), groups=[group], tiling=TilingConfig(), tile_shapes=[capped]
    )
    fit_tiles_to_cpu(plan)
    assert all(t <= c for t, c in zip(plan.tile_shapes[0], capped, strict=True))


def _complete_run(widget, gate, qtbot):
    """Predict every frame (the gate open), then close the gate for the next run."""
    gate.release.set()
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    gate.release.clear()


def _frames_with_data(layer, n_t):
    return [t for t in range(n_t) if np.abs(np.asarray(layer.data[t])).any()]


@pytest.fixture
def predicted_lapse(open_predict, tiny_models, volume, tiling_small, gate, qtbot):
    """A 4-frame time-lapse predicted completely with both models."""
    viewer, widget = open_predict()
    viewer.add_image(np.stack([volume] * 4), name="bright-field", scale=(1.0, *SCALE))
    tiling_small(widget)
    widget.models.set_checked([m.path for m in tiny_models])
    _complete_run(widget, gate, qtbot)
    old = {ly.name: ly for ly in _prediction_layers(viewer)}
    assert set(old) == {"dna (predicted)", "lamin-b1 (predicted)"}
    assert all(_frames_with_data(ly, 4) == [0, 1, 2, 3] for ly in old.values())
    return viewer, widget, old


def test_rerun_then_cancel_keeps_the_complete_overlays(predicted_lapse, gate, qtbot):
    """Issue 20: a re-run cancelled after one frame replaced 8-frame overlays by 1-frame ones."""
    viewer, widget, old = predicted_lapse
    widget.predict_btn.native.click()
    run = widget.run
    qtbot.waitUntil(lambda: len(run.frames_done) == 1, timeout=TIMEOUT)
    widget.cancel_btn.native.click()
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    for name, layer in old.items():  # the same layers, every frame, shown again
        assert layer in viewer.layers and layer.name == name and layer.visible
        assert _frames_with_data(layer, 4) == [0, 1, 2, 3]
    new = [ly for ly in _prediction_layers(viewer) if ly.name not in old]
    assert len(new) == 2 and not any(ly.visible for ly in new)  # the partial run, kept beside
    assert all(_frames_with_data(ly, 4) == run.frames_done for ly in new)
    assert "earlier overlays are shown again" in widget.status.text()


def test_removing_an_overlay_during_a_rerun_keeps_the_earlier_ones(predicted_lapse, gate, qtbot):
    """Issue 20: removing one overlay of a re-run deleted the earlier overlays of both models."""
    viewer, widget, old = predicted_lapse
    widget.predict_btn.native.click()
    run = widget.run
    qtbot.waitUntil(lambda: len(run.layers) == 2, timeout=TIMEOUT)
    viewer.layers.remove(run.layers["dna"])  # the new dna overlay: the run stops
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    for layer in old.values():
        assert layer in viewer.layers and layer.visible
        assert _frames_with_data(layer, 4) == [0, 1, 2, 3]
    names = sorted(ly.name for ly in _prediction_layers(viewer))
    assert names == ["dna (predicted)", "lamin-b1 (predicted)", "lamin-b1 (predicted) [1]"]


def test_a_complete_rerun_is_added_beside_the_earlier_overlays(predicted_lapse, gate, qtbot):
    viewer, widget, old = predicted_lapse
    _complete_run(widget, gate, qtbot)
    layers = {ly.name: ly for ly in _prediction_layers(viewer)}
    assert set(layers) == {
        "dna (predicted)",
        "lamin-b1 (predicted)",
        "dna (predicted) [1]",
        "lamin-b1 (predicted) [1]",
    }
    assert all(not ly.visible for ly in old.values())  # hidden, not removed
    assert layers["dna (predicted) [1]"].visible and layers["lamin-b1 (predicted) [1]"].visible
    assert "earlier overlays are kept, hidden" in widget.status.text()


@pytest.fixture
def tile_gate(monkeypatch):
    """Every plan made while active pauses after its 2nd finished tile until ``release``."""
    import threading

    import napari_labelfree.core.predict.plan as core_plan
    from napari_labelfree._widgets import _predict_job
    from napari_labelfree.core.events import TileDone

    monkeypatch.setattr(_predict_job, "PARTIAL_EVERY_S", 0.0)  # every tile shows (no clock)
    real = core_plan.plan_prediction
    reached, release = threading.Event(), threading.Event()

    def plan_prediction(*args, **kwargs):
        plan = real(*args, **kwargs)
        frames = plan.iter_frames

        def iter_frames(scheduler=None):
            for event in frames(scheduler):
                yield event
                if isinstance(event, TileDone) and event.index == 1:
                    reached.set()
                    release.wait(30)

        plan.iter_frames = iter_frames
        return plan

    monkeypatch.setattr(core_plan, "plan_prediction", plan_prediction)
    yield reached, release
    release.set()


def test_one_volume_fills_in_tile_by_tile(
    open_predict, tiny_models, volume, tiling_small, qtbot, tile_gate
):
    """Issue 20: a big z-stack showed nothing until every tile was done; now it fills in."""
    reached, release = tile_gate
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    widget.predict_btn.native.click()
    qtbot.waitUntil(reached.is_set, timeout=TIMEOUT)
    run = widget.run
    qtbot.waitUntil(lambda: "dna" in run.layers, timeout=TIMEOUT)  # before the volume is done
    layer = run.layers["dna"]
    assert layer.name == "dna (predicting)" and not run.frames_done
    partial = np.array(layer.data)
    assert partial.shape == volume.shape
    assert (partial != 0).any() and (partial == 0).any()  # two tiles done, the rest still empty
    release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    (final,) = _prediction_layers(viewer)
    assert final.name == layer.name == "dna (predicted)"  # the same layer, filled in
    data = np.asarray(final.data)
    assert (data != 0).all()  # every tile is in
    done = partial != 0
    assert np.abs(data[done]).sum() > 0
    assert widget.status.text().startswith("Done")


def test_a_frame_says_what_it_does_before_its_first_tile(tiny_models, volume):
    """Issue 20: a large frame spent many seconds normalizing and resampling with no progress."""
    from napari_labelfree._widgets._progress import Progress, reduce
    from napari_labelfree.core.events import Stage, TileDone
    from napari_labelfree.core.predict.run import iter_predict_volume

    gen = iter_predict_volume(volume, [tiny_models[0]], (0.29, 0.145, 0.145), device="cpu")
    events = []
    while not any(isinstance(e, TileDone) for e in events):
        events.append(next(gen))
    gen.close()
    stages = [e.text for e in events if isinstance(e, Stage)]
    assert stages == [
        "normalizing",
        "resampling to the model's voxel size",
        "predicting the first tile",
    ]
    shown = []
    state = Progress()
    for event in events:
        state = reduce(state, event)
        shown.append(state.text())
    assert "resampling to the model's voxel size..." in shown
    assert shown[-1].startswith("tile 1/")  # the first tile replaces the step


def test_every_step_before_the_first_tile_is_said(tiny_models, volume):
    """Issue 20: a 64x2048x2048 frame waited ~19 s for its first tile with nothing said during
    the read, the check against the training images, the model loading, the z-score and the
    resampling; each is said now (and said again with its seconds while it runs)."""
    import re

    from napari_labelfree.core.events import Stage, TileDone
    from napari_labelfree.core.io import from_array
    from napari_labelfree.core.predict.plan import plan_prediction

    source = from_array(volume, "ZYX", physical_sizes=(0.29, 0.145, 0.145))  # to be resampled
    gen = plan_prediction(source, [tiny_models[0]], device="cpu").iter_frames()
    events = []
    while not any(isinstance(e, TileDone) for e in events):
        events.append(next(gen))
    gen.close()
    said = [re.sub(r" \(\d+ s\)$", "", e.text) for e in events if isinstance(e, Stage)]
    assert list(dict.fromkeys(said)) == [
        "reading the frame",
        "comparing the image with the models' training images",
        "loading the models",
        "normalizing",
        "resampling to the model's voxel size",
        "predicting the first tile",
    ]
