"""The Predict widget never predicts from the wrong layer or a wrong voxel size without a word.

Each test opens the widget as the Plugins menu does and fails on the code before issue 20's fixes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_labelfree._reader import layers_take_units
from napari_labelfree._widgets._layers import META_KEY

SCALE = (0.29, 0.29, 0.29)
TIMEOUT = 60_000


def _messages_since(n: int, severity: str = "error") -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:] if r.severity == severity]


def _prediction_layers(viewer):
    return [ly for ly in viewer.layers if ly.metadata.get(META_KEY, {}).get("role") == "prediction"]


def _bright_field(shape=(8, 32, 32), seed=0) -> np.ndarray:
    """Transmitted light: a bright field whose detail is as dark as it is bright."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    return (1000 + 40 * np.sin(x / 1.7) * np.cos(y / 2.3) + rng.normal(0, 5, shape)).astype(
        np.float32
    )


def _fluorescence(shape=(8, 32, 32), seed=1) -> np.ndarray:
    """Fluorescence: a dark background, bright nuclei in the middle planes only (the first plane
    is symmetric noise, like a bright field)."""
    rng = np.random.default_rng(seed)
    _, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    out = 100 + rng.normal(0, 5, shape)
    nuclei = ((y - 10) ** 2 + (x - 10) ** 2 < 20) | ((y - 22) ** 2 + (x - 20) ** 2 < 25)
    out[2:-2] += 1500 * nuclei[2:-2]
    return out.astype(np.float32)


# --- item 1: never the wrong layer -------------------------------------------------------------


def test_default_image_is_never_a_fluorescence_layer(open_predict, tiny_models):
    viewer, widget = open_predict()
    viewer.add_image(_fluorescence(), name="cells", scale=SCALE)  # no name says what it is
    viewer.add_image(_fluorescence(seed=2), name="sec61b (true)", scale=SCALE)  # a sample's truth
    assert widget.image.value is None  # nothing chosen rather than fluorescence
    viewer.add_image(_bright_field(), name="Channel:0:0", scale=SCALE)  # by its pixels
    assert widget.image.value == "Channel:0:0"


def test_reopened_predictions_are_never_the_default(open_predict, tiny_models, tmp_path):
    from napari_labelfree._writer import write_predictions

    viewer, widget = open_predict()
    data = _fluorescence()
    path = tmp_path / "saved.ome.tif"
    meta = {"name": "dna (predicted)", "scale": SCALE, "colormap": "blue"}
    write_predictions(str(path), [(data, meta, "image")])
    viewer.open(str(path), plugin="napari-labelfree")
    assert [ly.name for ly in viewer.layers] == ["saved: dna (predicted)"]
    assert widget.image.value is None
    viewer.add_image(_bright_field(), name="phase", scale=SCALE)
    assert widget.image.value == "phase"


def test_source_removed_mid_run_never_selects_a_truth_layer(
    open_predict, tiny_models, tiling_small, gate, qtbot
):
    viewer, widget = open_predict()
    movie = np.stack([_bright_field(seed=t) for t in range(3)])
    viewer.add_image(_fluorescence(seed=3), name="sec61b (true)", scale=SCALE)
    source = viewer.add_image(movie, name="bright-field", scale=(1.0, *SCALE))
    assert widget.image.value == "bright-field"
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.run.frames_done) == 1, timeout=TIMEOUT)
    viewer.layers.remove(source)
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    assert widget.image.value is None


def test_predicting_from_a_fluorescent_layer_is_warned_of_first(
    open_predict, tiny_models, tiling_small, qtbot
):
    viewer, widget = open_predict()
    viewer.add_image(_bright_field(), name="bright-field", scale=SCALE)
    viewer.add_image(_fluorescence(), name="cells", scale=SCALE)
    widget.image.value = "cells"  # chosen by hand
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    n = len(notification_manager.records)
    widget.predict_btn.native.click()
    assert not widget.is_running and _prediction_layers(viewer) == []
    (warning,) = _messages_since(n, "warning")
    assert "'cells' looks like fluorescence" in warning and "Predict again" in warning
    assert widget.image.native.styleSheet()  # the control to change is marked
    widget.predict_btn.native.click()  # the user insists
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    assert [ly.name for ly in _prediction_layers(viewer)] == ["dna (predicted)"]

    n = len(notification_manager.records)
    widget.image.value = "bright-field"
    widget.predict_btn.native.click()  # transmitted light: no warning
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    assert _messages_since(n, "warning") == []


# --- item 6: typed voxel sizes -----------------------------------------------------------------


def _enter(widget, text: str) -> None:
    widget.voxel_size.value = text
    widget.voxel_size.native.editingFinished.emit()


def test_implausible_voxel_sizes_never_reach_the_layer(open_predict, tiny_models):
    viewer, widget = open_predict()
    layer = viewer.add_image(_bright_field(), name="bright-field")
    for typed in ("290, 108, 108", "1e9, 1, 1", "0, 1, 1"):
        n = len(notification_manager.records)
        _enter(widget, typed)  # raised OverflowError in napari's sliders, or rescaled 1000x
        np.testing.assert_allclose(layer.scale, (1.0, 1.0, 1.0))
        (error,) = _messages_since(n)
        assert "um" in error
        assert widget.voxel_size.native.styleSheet()
    assert "nanometres? Then enter 0.29, 0.108, 0.108" in _nm_message(widget)
    _enter(widget, "0.29, 0.108, 0.108")
    np.testing.assert_allclose(layer.scale, (0.29, 0.108, 0.108))
    assert not widget.voxel_size.native.styleSheet()


def _nm_message(widget) -> str:
    n = len(notification_manager.records)
    _enter(widget, "290, 108, 108")
    return _messages_since(n)[-1]


def test_a_new_scale_resets_the_view(open_predict, tiny_models):
    viewer, widget = open_predict()
    viewer.add_image(_bright_field((8, 32, 64)), name="bright-field")
    viewer.dims.ndisplay = 2
    _enter(widget, "0.5, 0.1, 0.1")  # the layer shrinks from 64 to 6.4 world units wide
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    assert np.isclose(camera.center[-1], 6.4 / 2 - 0.05, atol=0.1)  # centred on it


def test_the_assumed_voxel_size_is_shown_beside_predict(open_predict, tiny_models):
    viewer, widget = open_predict()
    viewer.add_image(_bright_field(), name="bright-field")  # no voxel size
    widget.models.set_checked([tiny_models[0].path])
    assert not widget.assumption.isHidden()
    assert "assumes 0.29, 0.29, 0.29 um" in widget.assumption.text()
    _enter(widget, "0.29, 0.108, 0.108")
    assert widget.assumption.isHidden()
    # no stale line about an earlier layer's voxel size once another layer is chosen
    widget.voxel_size.value = ""
    viewer.add_image(_bright_field(), name="known", scale=(0.3, 0.1, 0.1))
    widget.image.value = "known"
    assert widget.assumption.isHidden() and "voxel size" not in widget.status.text()


# --- item 7: small wrongs ----------------------------------------------------------------------


def _shifted_model(bundle, offset: float) -> None:
    """Make a tiny model predict about ``offset`` everywhere (its last layer's bias)."""
    from safetensors.numpy import load_file, save_file

    path = bundle.path / "weights.safetensors"
    weights = load_file(str(path))
    weights["head.weight"] = weights["head.weight"] * 0.01
    weights["head.bias"] = np.full_like(weights["head.bias"], offset)
    save_file(weights, str(path))


def test_a_negative_prediction_gets_an_overlay_in_the_sources_units(
    open_predict, tiny_models, tiling_small, qtbot
):
    viewer, widget = open_predict()
    _shifted_model(tiny_models[0], -0.5)  # its 99.9th percentile is negative
    # napari 0.5.0 has layer units but refuses a sequence of them in add_image (the floor)
    units = {"units": ("micrometer",) * 3} if layers_take_units() else {}
    if units:  # named axes (as the plugin's reader names them): the overlay's are named alike
        units["axis_labels"] = ("z", "y", "x")
    source = viewer.add_image(_bright_field(), name="bright-field", scale=SCALE, **units)
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    n = len(notification_manager.records)
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    (layer,) = _prediction_layers(viewer)
    assert layer.name == "dna (predicted)" and layer.data.max() < 0
    lo, hi = layer.contrast_limits
    assert lo < hi < 0
    assert widget.status.text() == "Done: dna (predicted)"
    assert [str(u) for u in layer.units] == [str(u) for u in source.units]
    assert tuple(layer.axis_labels) == tuple(source.axis_labels)
    assert not any("Inconsistent units" in m for m in _messages_since(n, "warning"))


def test_model_voxel_sizes_are_shown_rounded(open_predict, make_tiny_model):
    viewer, widget = open_predict()
    odd = make_tiny_model("tom20", voxel_size=(0.29, 0.290003, 0.290003))  # as fnet imports
    widget.models.add_model_folder(odd.path)
    details = widget.models.details.text()
    assert "voxel size 0.29, 0.29, 0.29 um" in details and "0.290003" not in details


FNET = Path(__file__).resolve().parents[3] / "shared" / "data" / "fnet-models"


@pytest.mark.skipif(not FNET.is_dir(), reason="shared pytorch_fnet models absent")
def test_importing_asks_again_for_a_missing_voxel_size_and_ticks_in_place(
    open_predict, tiny_models, qtbot, monkeypatch
):
    from napari_labelfree._widgets import _model_list

    viewer, widget = open_predict()
    panel = widget.models
    panel.set_checked([m.path for m in tiny_models])  # the built-in-like dna and lamin-b1
    model_file = FNET / "master" / "model_dna" / "model.p"  # fnet 0.2.0: no voxel size recorded
    monkeypatch.setattr(
        _model_list.QFileDialog, "getOpenFileName", lambda *a, **k: (str(model_file), "")
    )
    answers = iter([("", True), ("290, 108, 108", True), ("0.29, 0.108, 0.108", True)])
    prompts = []

    def get_text(parent, title, prompt, *args, **kwargs):
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(_model_list.QInputDialog, "getText", get_text)
    n = len(notification_manager.records)
    panel.import_btn.native.click()  # left empty: "the model's files record it"
    qtbot.waitUntil(lambda: len(prompts) == 3 and not panel.importer.running, timeout=TIMEOUT)
    assert "does not record it" in prompts[1] and "does not record it" in prompts[2]
    assert any("nanometres" in m for m in _messages_since(n))  # the nm answer: asked again
    imported = [b for b in panel.checked_bundles() if b.source == "user"]
    assert len(imported) == 1
    np.testing.assert_allclose(
        imported[0].spec.provenance["data_voxel_size_um"], (0.29, 0.108, 0.108)
    )
    # ticked in place of the other DNA model, beside the other structures; a proper name
    ticked = sorted(b.spec.structure for b in panel.checked_bundles())
    assert ticked == ["dna", "lamin-b1"]
    label = panel.list.currentItem().text()
    assert label.startswith("DNA") and label.endswith("(user)")


def test_both_docks_fit_a_1000_px_high_screen(viewer_factory):
    viewer = viewer_factory()
    _, predict = viewer.window.add_plugin_dock_widget("napari-labelfree", "Label-free prediction")
    _, train = viewer.window.add_plugin_dock_widget("napari-labelfree", "Train a label-free model")
    # the docks scroll rather than push the window (1362 px high before) past the screen
    assert viewer.window._qt_window.minimumSizeHint().height() <= 900
    for dock in (predict, train):
        assert dock.minimumSizeHint().height() < 200


def test_the_widget_predicts_what_the_command_line_predicts(open_predict, tiny_models, qtbot):
    """With the tile left at "auto" (the CPU frame cut for Cancel) a stack whose plane count is
    no multiple of the network's (13 planes; depth 2: 4) gives the command line's prediction,
    not one of thinner z-tiles (the widget once cut it into planes 0-11 and 1-12)."""
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import FrameDone
    from napari_labelfree.core.io import from_array
    from napari_labelfree.core.predict.plan import plan_prediction

    viewer, widget = open_predict()
    stack = np.random.default_rng(3).random((13, 80, 72)).astype(np.float32)
    viewer.add_image(stack, name="bright-field", scale=SCALE)
    widget.device.value, widget.precision = "cpu", "fp32"
    assert widget.tile.value == "auto"
    widget.models.set_checked([tiny_models[0].path])
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    (layer,) = _prediction_layers(viewer)
    plan = plan_prediction(
        from_array(stack, "ZYX", physical_sizes=SCALE),
        [tiny_models[0]],
        tiling=TilingConfig(precision="fp32"),
        device="cpu",
    )
    (cli,) = [e.arrays["dna"] for e in plan.iter_frames() if isinstance(e, FrameDone)]
    # Y and X are cut into tiles for Cancel (seams blend alike but not bit for bit); Z is not
    np.testing.assert_allclose(np.asarray(layer.data), cli, atol=0.05)
    assert np.corrcoef(np.asarray(layer.data).ravel(), cli.ravel())[0, 1] > 0.999


def test_a_scenes_overlays_carry_its_name_and_its_visibility(
    open_predict, tiny_models, tiling_small, qtbot, tmp_path, write_positions
):
    """A multi-position file: the scenes lie over each other, so a hidden position's prediction
    is hidden with it (not shown over the visible position) and every overlay names its scene
    (not napari's "dna (predicted) [1]")."""
    from napari_labelfree._reader import get_reader
    from napari_labelfree._writer import channel_name

    path = str(tmp_path / "wells.ome.tif")
    write_positions(path, n=2, shape=(8, 32, 32))
    viewer, widget = open_predict()
    for data, kwargs, _ in get_reader(path)(path):
        viewer.add_image(data, **kwargs)
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    said = {}
    for scene in ("Position 2", "Position 1"):
        widget.image.value = f"wells [{scene}]: bright-field"
        widget.predict_btn.native.click()
        qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
        said[scene] = widget.status.text()
    first, second = _prediction_layers(viewer)
    assert (first.name, first.visible) == ("wells [Position 2]: dna (predicted)", False)
    assert (second.name, second.visible) == ("wells [Position 1]: dna (predicted)", True)
    assert "show wells [Position 2]: bright-field to see them" in said["Position 2"]
    assert "hidden" not in said["Position 1"]
    # saved, a prediction's channel is named without the file part, as a source's is
    assert channel_name({"name": first.name, "metadata": first.metadata}, 0) == "dna (predicted)"


def test_every_scene_of_a_plate_is_predicted_in_one_round_and_cancel_ends_it(
    open_predict, tiny_models, tiling_small, qtbot, tmp_path, write_positions
):
    """A plate of positions opened through the reader: "Every scene of this file" predicts the
    chosen scene, then each other scene's same channel, one run after another, each with its own
    overlay (named and hidden with its scene), as choosing each and clicking Predict would; a
    removed scene is passed over, and Cancel ends the round where it is."""
    from napari_labelfree._reader import get_reader

    path = str(tmp_path / "wells.ome.tif")
    write_positions(path, n=4, shape=(8, 32, 32))
    viewer, widget = open_predict()
    for data, kwargs, _ in get_reader(path)(path):
        viewer.add_image(data, **kwargs)
    viewer.add_image(_bright_field(), name="loose", scale=SCALE)  # no file: no scenes
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    widget.image.value = "loose"
    assert widget.every_scene.native.isHidden()  # offered for scenes only
    widget.image.value = "wells [Position 2]: bright-field"
    assert not widget.every_scene.native.isHidden()
    assert "other 3 scenes" in widget.every_scene.tooltip
    widget.every_scene.value = True
    viewer.layers.remove("wells [Position 4]: bright-field")  # closed before its turn
    said = []
    widget.runner.state.events.status.connect(said.append)
    n_notes = len(notification_manager.records)
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running and not widget.queue.active, timeout=TIMEOUT)
    notes = _messages_since(n_notes, "info")
    assert sum("stores no statistics" in m for m in notes) == 1  # of the model: once a round
    names = sorted(ly.name for ly in _prediction_layers(viewer))
    assert names == [f"wells [Position {k}]: dna (predicted)" for k in (1, 2, 3)]
    assert "Predicting on wells [Position 2]: bright-field (scene 1 of 3)..." in said
    assert "Predicting on wells [Position 1]: bright-field (scene 2 of 3)..." in said
    assert "The scenes of wells.ome.tif: 3 of 3 predicted." in widget.status.text()
    # each the same as that scene predicted alone
    by_name = {ly.name: ly for ly in _prediction_layers(viewer)}
    alone = by_name["wells [Position 3]: dna (predicted)"].data.copy()
    widget.every_scene.value = False
    widget.image.value = "wells [Position 3]: bright-field"
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    again = _prediction_layers(viewer)[-1]  # napari numbers a second overlay of one name
    assert again.name.startswith("wells [Position 3]: dna (predicted)")
    assert again is not by_name["wells [Position 3]: dna (predicted)"]
    np.testing.assert_array_equal(np.asarray(again.data), np.asarray(alone))
    assert "scenes of wells" not in widget.status.text()  # one scene: no round

    # Cancel as the second scene starts: the round ends there, the third is not predicted
    def cancel_at_second(text):
        if "(scene 2 of 3)" in text:
            widget.cancel()

    widget.runner.state.events.status.connect(cancel_at_second)
    n_before = len(_prediction_layers(viewer))
    widget.every_scene.value = True
    widget.image.value = "wells [Position 1]: bright-field"
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running and not widget.queue.active, timeout=TIMEOUT)
    qtbot.wait(100)  # a next scene would start on the next turn of the event loop
    assert not widget.runner.running
    assert (
        "The scenes of wells.ome.tif: 1 of 3 predicted, the round stopped." in widget.status.text()
    )
    new = [ly.name for ly in _prediction_layers(viewer)[n_before:]]
    assert len(new) == 1 and new[0].startswith("wells [Position 1]: dna (predicted)")


def test_two_files_overlays_say_which_file_they_are_of(
    open_predict, tiny_models, tiling_small, qtbot, tmp_path, write_positions
):
    """Two files open together, the same model on each: every overlay carries its file's name,
    as the file's channels do ("one: dna (predicted)" beside "one: DAPI"; it was "dna
    (predicted)" and "dna (predicted) [1]"), is saved under the plain channel name, and is
    compared with its own file's stain (the other file's is another field)."""
    from napari_labelfree._reader import get_reader
    from napari_labelfree._writer import channel_name
    from napari_labelfree.core.io import write_ome_tiff

    viewer, widget = open_predict()
    for name in ("one", "two"):
        path = str(tmp_path / f"{name}.ome.tif")
        write_positions(path, n=1, shape=(8, 32, 32))
        for data, kwargs, _ in get_reader(path)(path):
            viewer.add_image(data, **kwargs)
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    for name in ("one", "two"):
        widget.image.value = f"{name}: bright-field"
        widget.predict_btn.native.click()
        qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)
    assert widget.status.text() == "Done: two: dna (predicted)"
    first, second = _prediction_layers(viewer)
    assert (first.name, second.name) == ("one: dna (predicted)", "two: dna (predicted)")
    assert first.visible and second.visible  # files are not scenes: nothing hidden
    assert channel_name({"name": first.name, "metadata": first.metadata}, 0) == "dna (predicted)"
    # one picture holds one field: the merged image of both wells' overlays is refused, then saved
    n = len(notification_manager.records)
    assert widget.save_merged_image(tmp_path / "merged.png") is None
    assert not (tmp_path / "merged.png").exists()
    assert (
        "predictions of 2 images (one: bright-field, two: bright-field)" in _messages_since(n)[-1]
    )
    second.visible = False
    assert widget.save_merged_image(tmp_path / "merged.png") == tmp_path / "merged.png"
    second.visible = True
    # Compare offers each prediction its own file's stain, not the other field's
    assert set(widget.trust.pairs()) == {
        "one: DAPI vs one: dna (predicted)",
        "two: DAPI vs two: dna (predicted)",
    }
    # a stain in a file of its own (no stain in the source's file) is offered to both
    stain = str(tmp_path / "stain.ome.tif")
    dapi = np.random.default_rng(1).random((1, 1, 8, 32, 32)).astype(np.float32)
    write_ome_tiff(stain, dapi, channel_names=["DAPI"], physical_sizes=(0.29, 0.29, 0.29))
    for data, kwargs, _ in get_reader(stain)(stain):
        viewer.add_image(data, **kwargs)
    viewer.layers.remove("one: DAPI")
    assert set(widget.trust.pairs()) == {
        "stain: DAPI vs one: dna (predicted)",
        "stain: DAPI vs two: dna (predicted)",
        "two: DAPI vs two: dna (predicted)",
    }


def test_a_renamed_layer_stays_chosen_under_its_new_name(viewer_factory, monkeypatch):
    """Renaming layers in the layer list: both widgets list the new names at once, a chosen layer
    stays chosen (Predict then said "open a transmitted-light z-stack first" for the old name),
    and the voxel size typed for it stays with it."""
    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    viewer = viewer_factory()
    viewer.add_image(_bright_field(), name="bright-field")
    viewer.add_image(_fluorescence(), name="Hoechst")
    _, predict = viewer.window.add_plugin_dock_widget("napari-labelfree", "Label-free prediction")
    _, train = viewer.window.add_plugin_dock_widget("napari-labelfree", "Train a label-free model")
    predict.voxel_size.value = "0.5, 0.2, 0.2"
    predict._remember("voxel_size", "0.5, 0.2, 0.2")
    viewer.layers["bright-field"].name = "cells BF"
    viewer.layers["Hoechst"].name = "cells DNA"
    assert predict.image.value == "cells BF" and "bright-field" not in predict.image.choices
    assert predict.memory["cells BF"]["voxel_size"] == "0.5, 0.2, 0.2"
    assert (train.signal.value, train.target.value) == ("cells BF", "cells DNA")
    later = viewer.add_image(_bright_field(seed=3), name="second field")
    later.name = "field 2"  # a layer added after the widgets opened
    assert "field 2" in predict.image.choices and "field 2" in train.signal.choices
    assert predict.image.value == "cells BF"  # renaming another layer changes no choice
