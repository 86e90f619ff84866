"""The Predict widget with 2D and 2.5D models: a 2D image, a 2D time-lapse (the frame under the
slider first), a projection model's one plane over a z-stack; the model list says the kind."""

from __future__ import annotations

import numpy as np
import pytest

from napari_labelfree._reader import layers_take_units
from napari_labelfree._widgets._layers import META_KEY
from napari_labelfree.core.bundle import init_bundle
from napari_labelfree.core.config import Architecture, ModelSpec

TIMEOUT = 60_000


def _prediction_layers(viewer):
    return [ly for ly in viewer.layers if ly.metadata.get(META_KEY, {}).get("role") == "prediction"]


@pytest.fixture
def flat_models(isolated_models):
    """A tiny 2D model and a tiny 2.5D max-projection model (depth 2, width 8)."""
    made = []
    for name, arch, projection in (
        ("dna", Architecture(name="unet2d", depth=2, width=8), ""),
        ("lamin-b1", Architecture(name="unet2.5d", depth=2, width=8, in_planes=3), "max"),
    ):
        spec = ModelSpec(
            structure=name,
            voxel_size_um=(1.0, 0.5, 0.5),
            architecture=arch,
            target_projection=projection,
        )
        made.append(init_bundle(isolated_models / name, spec, seed=1))
    return made


def _predict_phase(viewer, widget, model, qtbot):
    """Predict the layer "phase" with ``model`` on the CPU; its one prediction layer."""
    widget.image.value = "phase"
    widget.device.value = "cpu"
    widget.models.set_checked([model.path])
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    (layer,) = _prediction_layers(viewer)
    return layer


def _plane(t: int = 0) -> np.ndarray:
    rng = np.random.default_rng(t)
    y, x = np.mgrid[0:32, 0:40]
    blob = np.exp(-((y - 16) ** 2 + (x - 10 - 4 * t) ** 2) / 30.0)
    return (100 + 50 * blob + rng.normal(0, 2, blob.shape)).astype(np.float32)


def test_model_list_shows_the_kind(open_predict, flat_models):
    _, widget = open_predict()
    labels = [widget.models.list.item(i).text() for i in range(widget.models.list.count())]
    assert any("2D" in t for t in labels)
    assert any("2.5D (3 planes, max-projection)" in t for t in labels)


def test_2d_image_predicts_into_a_2d_layer(open_predict, flat_models, qtbot):
    viewer, widget = open_predict()
    viewer.add_image(_plane(), name="phase", scale=(0.5, 0.5))
    layer = _predict_phase(viewer, widget, flat_models[0], qtbot)
    assert layer.data.shape == (32, 40) and tuple(layer.scale) == (0.5, 0.5)
    assert np.isfinite(layer.data).all() and np.abs(layer.data).sum() > 0


def test_2d_timelapse_predicts_the_frame_under_the_slider_first(
    open_predict, flat_models, gate, qtbot
):
    viewer, widget = open_predict()
    movie = np.stack([_plane(t) for t in range(4)])
    viewer.add_image(movie, name="phase", scale=(1.0, 0.5, 0.5), metadata={"axes": "TYX"})
    widget.image.value = "phase"
    viewer.dims.set_current_step(0, 2)
    widget.device.value = "cpu"
    widget.models.set_checked([flat_models[0].path])
    widget.predict_btn.native.click()
    run = widget.run
    qtbot.waitUntil(lambda: len(run.frames_done) == 1, timeout=TIMEOUT)
    assert run.frames_done == [2]
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    (layer,) = _prediction_layers(viewer)
    assert layer.data.shape == movie.shape  # T, Y, X: no Z axis added
    assert all(np.abs(np.asarray(layer.data[t])).sum() > 0 for t in range(4))


def test_projection_model_shows_one_plane_over_the_stack(open_predict, flat_models, qtbot):
    viewer, widget = open_predict()
    stack = np.stack([_plane(0)] * 5)
    named = {"axis_labels": ("z", "y", "x")} if layers_take_units() else {}  # napari >= 0.5.1
    viewer.add_image(stack, name="phase", scale=(1.0, 0.5, 0.5), **named)
    layer = _predict_phase(viewer, widget, flat_models[1], qtbot)
    assert layer.data.shape == (32, 40) and tuple(layer.scale) == (0.5, 0.5)
    if named:  # the one plane keeps its source's names for Y and X
        assert tuple(layer.axis_labels) == ("y", "x")


def test_projection_of_a_timelapse_follows_the_time_slider_at_every_plane(
    open_predict, flat_models, qtbot
):
    """A z-stack time-lapse and a projection model: each frame's plane shows at every z of that
    frame (a T, Y, X overlay would have moved with the z slider instead: napari lines axes up
    from the right)."""
    viewer, widget = open_predict()
    movie = np.stack([np.stack([_plane(t)] * 5) for t in range(3)])  # T, Z, Y, X
    viewer.add_image(movie, name="phase", scale=(1.0, 1.0, 0.5, 0.5), translate=(0, 2.0, 0, 0))
    layer = _predict_phase(viewer, widget, flat_models[1], qtbot)
    assert layer.data.shape == (3, 1, 32, 40)
    frames = np.asarray(layer.data)[:, 0]
    assert not np.allclose(frames[0], frames[2])  # the frames differ: which one shows matters
    for t in range(3):
        for z in (0, 2, 4):
            viewer.dims.current_step = (t, z, 16, 20)
            np.testing.assert_allclose(layer._slice.image.raw, frames[t])
