"""The Predict dock widget, opened as from the Plugins menu, with two tiny models."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_labelfree._widgets._layers import META_KEY

SCALE = (0.29, 0.29, 0.29)
TIMEOUT = 60_000


def _prediction_layers(viewer):
    return [ly for ly in viewer.layers if ly.metadata.get(META_KEY, {}).get("role") == "prediction"]


def _errors_since(n: int) -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:] if r.severity == "error"]


def test_widget_lists_models_with_structure_and_colour(open_predict, tiny_models, volume):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    labels = [widget.model_list.item(i).text() for i in range(widget.model_list.count())]
    assert labels == ["dna (blue)", "lamin-b1 (magenta)"]
    assert widget.layer_combo.currentText() == "bright-field"
    assert widget.voxel_edit.text() == "0.29, 0.29, 0.29"  # prefilled from the layer's scale


def test_predict_two_models_gives_coloured_additive_overlays(
    open_predict, tiny_models, volume, tiling_small, qtbot
):
    viewer, widget = open_predict()
    src = viewer.add_image(volume, name="bright-field", scale=SCALE, translate=(1.0, 2.0, 3.0))
    tiling_small(widget)
    widget.set_checked_models([m.path for m in tiny_models])
    widget.predict_btn.click()
    assert widget.is_running
    assert not widget.predict_btn.isEnabled() and widget.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    layers = {ly.name: ly for ly in _prediction_layers(viewer)}
    assert set(layers) == {"dna (predicted)", "lamin-b1 (predicted)"}
    assert layers["dna (predicted)"].colormap.name == "blue"
    assert layers["lamin-b1 (predicted)"].colormap.name == "magenta"
    for layer in layers.values():
        assert layer.blending == "additive"
        assert layer.data.shape == volume.shape
        np.testing.assert_allclose(layer.scale, src.scale)
        np.testing.assert_allclose(layer.translate, src.translate)
        assert np.abs(layer.data).sum() > 0
        lo, hi = layer.contrast_limits
        assert layer.data.min() <= lo < hi <= layer.data.max()
    assert widget.predict_btn.isEnabled() and not widget.cancel_btn.isEnabled()
    assert widget.status.text().startswith("Done")

    # predicting again replaces the overlays of the same source and models
    widget.set_checked_models([tiny_models[0].path])
    widget.predict_btn.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    names = sorted(ly.name for ly in _prediction_layers(viewer))
    assert names == ["dna (predicted)", "lamin-b1 (predicted)"]


def test_timelapse_current_frame_first_then_fill_in(
    open_predict, tiny_models, volume, tiling_small, qtbot
):
    viewer, widget = open_predict()
    n_t = 5
    movie = np.stack([np.roll(volume, 2 * t, axis=2) for t in range(n_t)])
    viewer.add_image(movie, name="bright-field", scale=(1.0, *SCALE))
    viewer.dims.set_current_step(0, 2)
    tiling_small(widget)
    widget.set_checked_models([m.path for m in tiny_models])
    widget.predict_btn.click()
    run = widget.run
    assert run is not None and run.has_time

    # the overlays exist at once, with the full time axis, still empty
    layers = _prediction_layers(viewer)
    assert len(layers) == 2
    for layer in layers:
        assert layer.data.shape == movie.shape
    qtbot.waitUntil(lambda: len(run.frames_done) >= 1, timeout=TIMEOUT)
    assert run.frames_done[0] == 2  # the frame under the slider finished first
    viewer.dims.set_current_step(0, 0)  # the user scrubs back: frame 0 goes before frame 4
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    assert sorted(run.frames_done) == list(range(n_t))
    assert run.frames_done.index(0) < run.frames_done.index(4)
    assert widget.status.text() == f"Done: dna (predicted), lamin-b1 (predicted) ({n_t} frames)"
    for layer in layers:
        assert all(np.abs(layer.data[t]).sum() > 0 for t in range(n_t))


def test_cancel_keeps_finished_frames(open_predict, tiny_models, volume, tiling_small, qtbot):
    viewer, widget = open_predict()
    n_t = 8
    movie = np.stack([volume] * n_t)
    viewer.add_image(movie, name="bright-field", scale=(1.0, *SCALE))
    tiling_small(widget, tile=(8, 8, 8))
    widget.set_checked_models([tiny_models[0].path])
    widget.predict_btn.click()
    run = widget.run
    qtbot.waitUntil(lambda: len(run.frames_done) >= 1, timeout=TIMEOUT)
    widget.cancel_btn.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    (layer,) = _prediction_layers(viewer)
    assert layer.data.shape == movie.shape
    done = set(run.frames_done)
    assert 1 <= len(done) <= n_t
    for t in range(n_t):
        assert (np.abs(layer.data[t]).sum() > 0) == (t in done)
    assert widget.predict_btn.isEnabled() and not widget.cancel_btn.isEnabled()
    if len(done) < n_t:
        assert widget.status.text().startswith("Stopped")
    # the viewer is consistent: predicting again works and replaces the overlay
    widget.predict_btn.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    assert len(_prediction_layers(viewer)) == 1


def test_2d_image_gives_a_notification_not_a_crash(open_predict, tiny_models, qtbot):
    viewer, widget = open_predict()
    viewer.add_image(np.random.default_rng(0).random((32, 32), dtype=np.float32), name="plane")
    widget.set_checked_models([tiny_models[0].path])
    before = len(notification_manager.records)
    widget.predict_btn.click()
    assert not widget.is_running
    errors = _errors_since(before)
    assert errors and "2D" in errors[-1]
    assert _prediction_layers(viewer) == []


def test_no_model_ticked_gives_a_notification(open_predict, tiny_models, volume):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    before = len(notification_manager.records)
    widget.predict_btn.click()
    assert "tick at least one model" in _errors_since(before)[-1]


def test_add_model_folder(open_predict, isolated_models, tmp_path, make_tiny_model):
    viewer, widget = open_predict()
    extra = make_tiny_model("tom20", colormap="yellow")  # outside every search path
    assert str(extra.path) not in widget.model_paths()
    widget.add_model_folder(extra.path)
    assert str(extra.path) in widget.model_paths()
    assert str(extra.path) in widget.checked_model_paths()
    before = len(notification_manager.records)
    widget.add_model_folder(tmp_path / "user-models")  # holds no model
    assert "holds no model" in _errors_since(before)[-1]


def test_multichannel_layer_channel_choice(open_predict, tiny_models, volume, tiling_small, qtbot):
    viewer, widget = open_predict()
    tczyx = np.stack([np.zeros_like(volume), volume])[np.newaxis]  # channel 1 is bright-field
    viewer.add_image(
        tczyx,
        name="stack",
        scale=(1.0, 1.0, *SCALE),
        metadata={META_KEY: {"axes": "TCZYX", "channel_names": ["dna", "bright-field"]}},
    )
    assert widget.channel_combo.isEnabled()
    assert widget.channel_combo.currentText() == "bright-field"
    tiling_small(widget)
    widget.set_checked_models([tiny_models[0].path])
    widget.predict_btn.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    (layer,) = _prediction_layers(viewer)
    assert layer.data.shape == (1, *volume.shape)
    np.testing.assert_allclose(layer.scale, (1.0, *SCALE))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_screenshot_of_window_is_not_blank(open_predict, tiny_models, volume, tiling_small, qtbot):
    viewer, widget = open_predict(show=True)
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    tiling_small(widget)
    widget.set_checked_models([m.path for m in tiny_models])
    widget.predict_btn.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot.shape[0] > 100
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    rgb = canvas[..., :3].astype(int)
    assert rgb.std() > 5  # not one flat colour
    assert (np.abs(rgb[..., 0] - rgb[..., 2]) > 20).any()  # coloured overlays, not only gray


def test_predict_on_the_simulated_sample(open_predict, tiny_models, qtbot):
    """As a user: open the sample from the File menu, open the widget, predict two structures."""
    pytest.importorskip("napari_labelfree._sample_data")
    viewer, widget = open_predict()
    viewer.window.remove_dock_widget("all")
    viewer.open_sample("napari-labelfree", "zstack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-labelfree", "Label-free prediction")
    # the sample's last (hidden) fluorescence layer is active; the widget picks the bright-field
    assert widget.layer_combo.currentText() == "bright-field"
    src = viewer.layers["bright-field"]
    widget.set_checked_models([m.path for m in tiny_models])
    widget.device_combo.setCurrentText("cpu")
    widget.predict_btn.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    for name, cmap in (("dna", "blue"), ("lamin-b1", "magenta")):
        layer = viewer.layers[f"{name} (predicted)"]
        assert layer.colormap.name == cmap and layer.blending == "additive"
        assert layer.data.shape == src.data.shape
        np.testing.assert_allclose(layer.scale, src.scale)
