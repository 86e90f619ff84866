"""The Predict widget's trust controls: uncertainty layer, input warning mark, Compare with a stain."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_labelfree._widgets._layers import META_KEY
from napari_labelfree._widgets._trust import MARK

SCALE = (0.29, 0.29, 0.29)
TIMEOUT = 60_000


def _predict(widget, qtbot):
    widget.predict_btn.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT)


def test_uncertainty_layer_is_hidden_uniform_and_at_the_same_scale(
    open_predict, tiny_models, volume, tiling_small, qtbot
):
    viewer, widget = open_predict()
    src = viewer.add_image(volume, name="bright-field", scale=SCALE, translate=(1.0, 2.0, 3.0))
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    assert widget.trust.uncertainty.value is False  # off unless asked for
    widget.trust.uncertainty.value = True
    n = len(notification_manager.records)
    _predict(widget, qtbot)
    layers = {ly.name: ly for ly in viewer.layers if META_KEY in ly.metadata}
    assert set(layers) == {"dna (predicted)", "dna (uncertainty) (predicted)"}
    u = layers["dna (uncertainty) (predicted)"]
    assert u.visible is False and layers["dna (predicted)"].visible is True
    assert u.colormap.name == "magma"
    assert u.data.shape == volume.shape and float(u.data.min()) >= 0.0
    np.testing.assert_allclose(u.scale, src.scale)
    np.testing.assert_allclose(u.translate, src.translate)
    # the tiny model stores no training statistics: told, and marked in the model list
    texts = [str(r.message) for r in notification_manager.records[n:]]
    assert any("cannot check" in t and "dna" in t for t in texts)
    item = widget.models.list.item(0)
    assert item.text().startswith(MARK) and "cannot check" in item.toolTip()


def test_compare_with_a_stain_shows_r_and_adds_the_error_map(
    open_predict, tiny_models, volume, tiling_small, qtbot
):
    viewer, widget = open_predict()
    viewer.add_image(volume, name="cells: bright-field", scale=SCALE)
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    _predict(widget, qtbot)
    assert widget.trust.stain.choices == ()  # no stain open: nothing to compare with
    stain = viewer.add_image(volume[::-1].copy(), name="cells: Hoechst 33342", scale=SCALE)
    assert widget.trust.stain.choices == ("cells: Hoechst 33342 vs dna (predicted)",)
    assert widget.trust.compare_btn.text == "Compare with cells: Hoechst 33342"
    text = widget.trust.compare()
    assert text is not None and "Pearson r" in text and "SSIM" in text
    assert widget.trust.result.value.startswith("r ")
    error = viewer.layers["dna error vs cells: Hoechst 33342"]
    assert error.data.shape == stain.data.shape
    np.testing.assert_allclose(error.scale, stain.scale)
    # the scores are those of the z-scored images
    pred = viewer.layers["dna (predicted)"].data
    z = lambda a: (a - a.mean()) / a.std()  # noqa: E731
    expected_r = float(np.corrcoef(pred.ravel(), stain.data.ravel())[0, 1])
    assert f"{expected_r:.3f}" in text
    np.testing.assert_allclose(error.data, z(pred) - z(stain.data), atol=1e-4)


@pytest.mark.parametrize("planar", [True, False], ids=["2d-layer", "one-plane-stack"])
def test_a_one_plane_stain_is_compared_with_the_predictions_maximum_projection(
    open_predict, tiny_models, volume, tiling_small, qtbot, planar
):
    """A stain of one plane (a maximum projection; the reader opens such a file as a 2D layer)
    beside a z-stack prediction: compared through the prediction's maximum projection, the error
    map one plane at the prediction's Y, X."""
    viewer, widget = open_predict()
    viewer.add_image(volume, name="cells: bright-field", scale=SCALE, translate=(1.0, 2.0, 3.0))
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    _predict(widget, qtbot)
    projection = volume.max(axis=0, keepdims=True)[:, ::-1].copy()
    if planar:
        viewer.add_image(projection[0], name="cells: DAPI", scale=SCALE[1:], translate=(2.0, 3.0))
    else:
        viewer.add_image(projection, name="cells: DAPI", scale=SCALE, translate=(1.0, 2.0, 3.0))
    assert widget.trust.stain.choices == ("cells: DAPI vs dna (predicted)",)
    text = widget.trust.compare()
    assert text is not None and text.startswith("the maximum projection of dna (predicted)")
    pred = np.asarray(viewer.layers["dna (predicted)"].data).max(axis=0)
    expected_r = float(np.corrcoef(pred.ravel(), projection.ravel())[0, 1])
    assert f"Pearson r {expected_r:.3f}" in text
    error = viewer.layers["dna error vs cells: DAPI"]
    assert error.data.shape == volume.shape[1:]
    np.testing.assert_allclose(error.scale, SCALE[1:])
    np.testing.assert_allclose(error.translate, (2.0, 3.0))


def test_uncertainty_layer_of_a_timelapse_has_its_frames(
    open_predict, tiny_models, volume, tiling_small, qtbot
):
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.predict.run import iter_predict_volume

    viewer, widget = open_predict()
    n_t = 3
    movie = np.stack([np.roll(volume, 3 * t, axis=2) for t in range(n_t)])
    src = viewer.add_image(movie, name="bright-field", scale=(2.0, *SCALE))
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    widget.trust.uncertainty.value = True
    _predict(widget, qtbot)
    layers = {ly.name: ly for ly in viewer.layers if META_KEY in ly.metadata}
    assert set(layers) == {"dna (predicted)", "dna (uncertainty) (predicted)"}
    u, pred = layers["dna (uncertainty) (predicted)"], layers["dna (predicted)"]
    assert u.visible is False and u.colormap.name == "magma"
    assert (
        u.data.shape == pred.data.shape == movie.shape
    )  # a frame per time point, like the overlay
    np.testing.assert_allclose(u.scale, src.scale)
    frames = [np.asarray(u.data[t]) for t in range(n_t)]
    assert all((f >= 0).all() and f.max() > 0 for f in frames)
    # each frame is that time point's own spread (the frames differ as the images do)
    alone = drain(
        iter_predict_volume(
            movie[1],
            [tiny_models[0]],
            SCALE,
            TilingConfig(tile_shape=(16, 16, 16), precision="fp32", uncertainty=True),
            device="cpu",
        )
    )
    np.testing.assert_allclose(frames[1], alone["dna (uncertainty)"], atol=1e-4)
    assert np.abs(frames[0] - frames[1]).max() > 1e-4


def test_an_ensemble_is_one_entry_of_the_model_list_and_predicts(
    open_predict, tiny_models, isolated_models, volume, tiling_small, qtbot
):
    import dataclasses

    from safetensors.torch import load_file

    from napari_labelfree.core.bundle import save_bundle
    from napari_labelfree.core.ensemble import member_key

    spec = dataclasses.replace(tiny_models[0].spec)
    spec.ensemble = {"members": 2, "seeds": [0, 1]}
    state = {}
    for i, b in enumerate((tiny_models[0], tiny_models[0])):
        for k, v in load_file(str(b.path / "weights.safetensors")).items():
            state[member_key(i, k)] = v + 0.01 * i
    ens = save_bundle(isolated_models / "dna-ensemble", spec, state)
    viewer, widget = open_predict()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    tiling_small(widget)
    labels = [widget.models.list.item(i).text() for i in range(widget.models.list.count())]
    assert any("ensemble of 2" in t for t in labels), labels
    widget.models.set_checked([ens])
    widget.trust.uncertainty.value = True
    _predict(widget, qtbot)
    layers = {ly.name: ly for ly in viewer.layers if META_KEY in ly.metadata}
    assert set(layers) == {"dna (predicted)", "dna (uncertainty) (predicted)"}
    assert float(layers["dna (uncertainty) (predicted)"].data.max()) > 0


def test_a_layer_whose_file_names_another_modality_marks_the_model(
    open_predict, isolated_models, volume, tiling_small, qtbot
):
    """A model trained on files that said phase contrast, an input layer whose file (read by the
    plugin's reader) says DIC: the model is marked and its tooltip says why, beside its other
    warning."""
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec

    spec = ModelSpec(
        structure="dna",
        voxel_size_um=SCALE,
        architecture=Architecture(depth=2, width=8),
        provenance={"input_modalities": {"phase-contrast": 4}},
    )
    model = init_bundle(isolated_models / "phase-dna", spec, seed=0)
    viewer, widget = open_predict()
    meta = {META_KEY: {"role": "source", "modality": "dic", "transmitted": True}}
    viewer.add_image(volume, name="cells: DIC", scale=SCALE, metadata=meta)
    tiling_small(widget)
    widget.models.set_checked([model.path])
    _predict(widget, qtbot)
    item = widget.models.list.item(0)
    assert item.text().startswith(MARK)
    assert "this image is dic" in item.toolTip() and "phase-contrast" in item.toolTip()
    assert "cannot check" in item.toolTip()  # it stores no statistics either: both are kept


def test_compare_offers_the_stain_of_the_predicted_scene_only(
    open_predict, tiny_models, tiling_small, qtbot, tmp_path, write_positions
):
    """A multi-position file: every position's DAPI has the prediction's shape, but only the
    predicted position's is the same field."""
    from napari_labelfree._reader import get_reader

    path = str(tmp_path / "wells.ome.tif")
    write_positions(path, n=2, shape=(8, 32, 32))
    viewer, widget = open_predict()
    for data, kwargs, _ in get_reader(path)(path):
        viewer.add_image(data, **kwargs)
    widget.image.value = "wells [Position 2]: bright-field"
    tiling_small(widget)
    widget.models.set_checked([tiny_models[0].path])
    _predict(widget, qtbot)
    (pred,) = [ly.name for ly in viewer.layers if "(predicted)" in ly.name]
    assert widget.trust.stain.choices == (f"wells [Position 2]: DAPI vs {pred}",)
