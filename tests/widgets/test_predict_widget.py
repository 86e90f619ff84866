"""The Predict dock widget, opened as from the Plugins menu, with two tiny models."""

from __future__ import annotations

import numpy as np
from napari.utils.notifications import notification_manager

from napari_labelfree._widgets._layers import META_KEY

SCALE = (0.29, 0.29, 0.29)
TIMEOUT = 60_000


def _prediction_layers(viewer):
    return [ly for ly in viewer.layers if ly.metadata.get(META_KEY, {}).get("role") == "prediction"]


def _messages_since(n: int, severity: str = "error") -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:] if r.severity == severity]


def _predict(widget, qtbot):
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)


def test_widget_lists_models_with_origin_and_details(open_predict, tiny_models, volume):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    labels = [widget.models.list.item(i).text() for i in range(widget.models.list.count())]
    assert labels == ["DNA (env)", "Lamin B1 (nuclear envelope) (env)"]  # the table's names
    widget.models.set_checked([tiny_models[0].path], show=tiny_models[0].path)
    details = widget.models.details.text()
    assert "voxel size 0.29, 0.29, 0.29 um" in details and "zscore" in details
    assert "untrained" in details
    assert widget.image.value == "bright-field"
    assert widget.voxel_size.value == "0.29, 0.29, 0.29"  # prefilled from the layer's scale
    for control in (widget.image, widget.channel, widget.voxel_size, widget.force, widget.tile):
        assert control.tooltip
    assert widget.predict_btn.tooltip and widget.cancel_btn.tooltip


def test_default_image_is_the_transmitted_light_one(open_predict, tiny_models, volume):
    viewer, widget = open_predict()
    dark = np.zeros_like(volume)
    dark[2:4, 10:12, 10:12] = 500.0  # fluorescence: dark background, bright spots
    bright = volume.max() + volume.min() - volume  # a bright field with a dark (absorbing) cell
    viewer.add_image(bright, name="Channel:0:0", scale=SCALE)  # no telling name: by intensities
    viewer.add_image(dark, name="Channel:0:0 [1]", scale=SCALE)  # opened last, and active
    assert widget.image.value == "Channel:0:0"


def test_predicting_leaves_the_layer_selection_alone(open_predict, tiny_models, volume, qtbot):
    """The overlays arrive without being selected: the layer the user works on stays active
    (napari's select-the-new-layer and the selecting back also cost the GUI thread each time)."""
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    other = viewer.add_image(volume.copy(), name="notes", scale=SCALE, visible=False)
    widget.image.value = "bright-field"
    viewer.layers.selection.active = other
    widget.models.set_checked([tiny_models[0].path])
    seen = []
    viewer.layers.selection.events.active.connect(lambda e: seen.append(e.value))
    _predict(widget, qtbot)
    assert [ly.name for ly in _prediction_layers(viewer)] == ["dna (predicted)"]
    assert viewer.layers.selection.active is other and set(viewer.layers.selection) == {other}
    assert seen == []  # not even for a moment


def test_predict_two_models_gives_coloured_additive_overlays(
    open_predict, tiny_models, volume, tiling_small, qtbot
):
    viewer, widget = open_predict()
    src = viewer.add_image(volume, name="bright-field", scale=SCALE, translate=(1.0, 2.0, 3.0))
    tiling_small(widget)
    widget.models.set_checked([m.path for m in tiny_models])
    widget.predict_btn.native.click()
    assert widget.is_running and not widget.predict_btn.enabled and widget.cancel_btn.enabled
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
        lo, hi = layer.contrast_limits
        assert np.isclose(lo, np.median(layer.data), rtol=1e-5)  # the background is black
        assert lo < hi <= layer.data.max()
    assert widget.predict_btn.enabled and not widget.cancel_btn.enabled
    assert widget.status.text().startswith("Done")

    # predicting again adds new overlays beside the earlier ones, which are hidden, not removed
    widget.models.set_checked([tiny_models[0].path])
    _predict(widget, qtbot)
    assert sorted(ly.name for ly in _prediction_layers(viewer)) == [
        "dna (predicted)",
        "dna (predicted) [1]",
        "lamin-b1 (predicted)",
    ]
    assert not viewer.layers["dna (predicted)"].visible


def test_timelapse_current_frame_first_into_a_chunked_store(
    open_predict, tiny_models, volume, tiling_small, gate, qtbot
):
    viewer, widget = open_predict()
    n_t = 5
    movie = np.stack([np.roll(volume, 2 * t, axis=2) for t in range(n_t)])
    viewer.add_image(movie, name="bright-field", scale=(1.0, *SCALE))
    viewer.dims.set_current_step(0, 2)
    tiling_small(widget)
    widget.models.set_checked([m.path for m in tiny_models])
    widget.predict_btn.native.click()
    run = widget.run
    assert _prediction_layers(viewer) == []  # nothing allocated before a frame is done
    qtbot.waitUntil(lambda: len(run.frames_done) == 1, timeout=TIMEOUT)
    assert run.frames_done == [2]  # the frame under the slider first
    qtbot.waitUntil(lambda: len(run.layers) == 2, timeout=TIMEOUT)  # one per event-loop turn
    layers = _prediction_layers(viewer)
    assert sorted(ly.name for ly in layers) == ["dna (predicting)", "lamin-b1 (predicting)"]
    for layer in layers:
        assert not isinstance(layer.data, np.ndarray)  # a chunked store, not RAM
        assert layer.data.shape == movie.shape and layer.data.chunks == (1, *volume.shape)
        assert np.abs(layer.data[2]).sum() > 0 and not np.abs(layer.data[0]).any()
    viewer.dims.set_current_step(0, 0)  # the user scrubs back: frame 0 goes before frame 4
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    assert sorted(run.frames_done) == list(range(n_t))
    assert run.frames_done.index(0) < run.frames_done.index(4)
    assert widget.status.text() == f"Done: dna (predicted), lamin-b1 (predicted) ({n_t} frames)"
    for layer in layers:
        assert all(np.abs(layer.data[t]).sum() > 0 for t in range(n_t))


def test_cancel_keeps_finished_frames(open_predict, tiny_models, volume, tiling_small, gate, qtbot):
    viewer, widget = open_predict()
    n_t = 4
    viewer.add_image(np.stack([volume] * n_t), name="bright-field", scale=(1.0, *SCALE))
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    widget.predict_btn.native.click()
    run = widget.run
    qtbot.waitUntil(lambda: len(run.frames_done) == 1, timeout=TIMEOUT)
    widget.cancel_btn.native.click()
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)

    (layer,) = _prediction_layers(viewer)
    assert layer.name == "dna (predicted)"
    (first,) = run.frames_done  # the frame under the slider, then Cancel
    for t in range(n_t):
        assert np.abs(layer.data[t]).any() == (t == first)
    assert widget.status.text() == (
        f"Stopped: 1 of {n_t} frames predicted (dna (predicted); the others are empty)."
    )
    assert widget.predict_btn.enabled and not widget.cancel_btn.enabled


def test_failed_run_keeps_the_previous_prediction(
    open_predict, tiny_models, volume, tiling_small, qtbot
):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    _predict(widget, qtbot)
    before = np.array(viewer.layers["dna (predicted)"].data)

    widget.voxel_size.value = "2.9, 10.8, 10.8"  # plausible alone, 37x the model's: refused
    n = len(notification_manager.records)
    _predict(widget, qtbot)
    errors = _messages_since(n)
    assert errors and "confirm" in errors[-1] and "--" not in errors[-1]  # no CLI flags
    assert [ly.name for ly in _prediction_layers(viewer)] == ["dna (predicted)"]
    np.testing.assert_array_equal(viewer.layers["dna (predicted)"].data, before)
    assert viewer.layers["dna (predicted)"].visible
    assert widget.voxel_size.native.styleSheet()  # the control to fix is marked


def test_force_allows_an_unusual_resampling(open_predict, tiny_models, volume, tiling_small, qtbot):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field")
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    widget.voxel_size.value = "0.29, 0.29, 6.4"  # 22x along X: refused unless confirmed
    n = len(notification_manager.records)
    _predict(widget, qtbot)
    assert _messages_since(n) and _prediction_layers(viewer) == []
    assert widget.force.native.styleSheet()
    widget.force.value = True
    _predict(widget, qtbot)
    assert [ly.name for ly in _prediction_layers(viewer)] == ["dna (predicted)"]


def test_voxel_size_and_channel_are_remembered(
    open_predict, tiny_models, volume, tiling_small, qtbot
):
    viewer, widget = open_predict()
    tczyx = np.stack([volume, volume[::-1]])[np.newaxis]
    meta = {META_KEY: {"axes": "TCZYX", "channel_names": ["dna", "bright-field"]}}
    stack = viewer.add_image(tczyx, name="stack", metadata=meta)
    assert widget.voxel_size.value == ""
    assert "unknown, please enter" in widget.voxel_size.native.placeholderText()
    assert widget.channel.value == "bright-field" and widget.channel.enabled
    widget.channel.value = "dna"  # the user's choice, however odd
    widget.voxel_size.value = "0.29, 0.29, 0.29"
    widget.voxel_size.native.editingFinished.emit()
    np.testing.assert_allclose(stack.scale, (1.0, 1.0, *SCALE))  # entering it sets the scale

    viewer.add_image(volume, name="other", scale=(1.0, 0.5, 0.5))
    widget.image.value = "other"
    assert widget.voxel_size.value == "1, 0.5, 0.5"
    widget.image.value = "stack"
    assert widget.channel.value == "dna" and widget.voxel_size.value == "0.29, 0.29, 0.29"
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    n = len(notification_manager.records)
    _predict(widget, qtbot)  # from a DNA channel: warned of first
    assert "looks like fluorescence" in _messages_since(n, "warning")[-1]
    assert _prediction_layers(viewer) == []
    _predict(widget, qtbot)  # the user insists
    assert widget.channel.value == "dna" and widget.voxel_size.value == "0.29, 0.29, 0.29"
    (layer,) = _prediction_layers(viewer)
    assert layer.data.shape == (1, *volume.shape)


def test_2d_image_gives_a_notification_not_a_crash(open_predict, tiny_models, qtbot):
    viewer, widget = open_predict()
    viewer.add_image(np.random.default_rng(0).random((32, 32), dtype=np.float32), name="plane")
    widget.models.set_checked([tiny_models[0].path])
    n = len(notification_manager.records)
    widget.predict_btn.native.click()  # a 3D model on a plane: refused by the plan (2D models take it)
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    errors = _messages_since(n)
    assert errors and "2D" in errors[-1]
    assert _prediction_layers(viewer) == []


def test_no_model_ticked_gives_a_notification(open_predict, tiny_models, volume):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    n = len(notification_manager.records)
    widget.predict_btn.native.click()
    assert "tick at least one model" in _messages_since(n)[-1]


def test_tiny_tile_is_raised_with_a_notice(open_predict, tiny_models, volume, tiling_small, qtbot):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    tiling_small(widget, tile=(4, 10, 10))
    widget.models.set_checked([tiny_models[0].path])
    n = len(notification_manager.records)
    _predict(widget, qtbot)
    assert any("tile borders" in m for m in _messages_since(n, "info"))
    assert widget.tile.value == "16, 16, 16"
    assert "dna (predicted)" in viewer.layers


def test_add_model_folder(open_predict, isolated_models, tmp_path, make_tiny_model):
    viewer, widget = open_predict()
    extra = make_tiny_model("tom20", colormap="yellow")  # outside every search path
    assert str(extra.path) not in widget.models.paths()
    widget.models.add_model_folder(extra.path)
    assert str(extra.path) in widget.models.checked_paths()
    assert "tom20" in widget.models.details.text()
    n = len(notification_manager.records)
    widget.models.add_model_folder(tmp_path / "user-models")  # holds no model
    assert "holds no model" in _messages_since(n)[-1]


def test_save_merged_image(open_predict, tiny_models, volume, tiling_small, qtbot, tmp_path):
    from PIL import Image

    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    tiling_small(widget)
    widget.models.set_checked([m.path for m in tiny_models])
    _predict(widget, qtbot)
    path = widget.save_merged_image(tmp_path / "merged.png")
    rgb = np.asarray(Image.open(path))
    assert rgb.shape == (*volume.shape[1:], 3) and rgb.dtype == np.uint8
    assert (rgb == 0).all(axis=-1).mean() > 0.3  # background black
    assert rgb[..., 2].max() > 200  # dna (blue) and lamin-b1 (magenta) both hold blue


def test_test_time_augmentation_reaches_the_plan(open_predict, tiny_models, volume):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    widget.models.set_checked([tiny_models[0].path])
    assert widget.request().tiling.tta == "none"
    widget.tta.value = "yx"
    assert widget.request().tiling.tta == "yx"
    assert widget.tta.tooltip


def test_compare_with_follows_the_renamed_prediction(
    open_predict, tiny_models, volume, tiling_small, gate, qtbot
):
    """'Compare with' never lists a run's layer as '(predicting)' after the run ended."""
    viewer, widget = open_predict()
    n_t = 2
    viewer.add_image(np.stack([volume] * n_t), name="bright-field", scale=(1.0, *SCALE))
    viewer.add_image(np.stack([volume[::-1]] * n_t), name="Hoechst", scale=(1.0, *SCALE))
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: "dna (predicting)" in viewer.layers, timeout=TIMEOUT)
    assert widget.trust.stain.choices == ("Hoechst vs dna (predicting)",)
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    assert widget.trust.stain.choices == ("Hoechst vs dna (predicted)",)
    assert widget.trust.stain.value == "Hoechst vs dna (predicted)"
