"""The npe2 reader and writer: files in as named channel layers in um, layers out as OME-TIFF."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from napari.utils.notifications import notification_manager

from napari_labelfree._reader import get_reader, layers_take_units
from napari_labelfree._writer import write_predictions
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.io import open_image, write_ome_tiff

SIZES = (0.5, 0.25, 0.25)


@pytest.fixture
def timelapse_file(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((2, 2, 4, 16, 16), dtype=np.float32)  # TCZYX
    path = tmp_path / "movie.ome.tif"
    write_ome_tiff(path, data, channel_names=["bright-field", "dna"], physical_sizes=SIZES)
    return path, data


def _read(path):
    reader = get_reader(str(path))
    assert callable(reader)
    return reader(str(path))


def test_reader_gives_one_named_layer_per_channel(timelapse_file):
    path, data = timelapse_file
    layers = _read(path)
    assert [kw["name"] for _, kw, _ in layers] == ["movie: bright-field", "movie: dna"]
    for c, (arr, kw, kind) in enumerate(layers):
        assert kind == "image"
        assert arr.shape == (2, 4, 16, 16)  # the time axis is kept
        np.testing.assert_allclose(np.asarray(arr), data[:, c])
        np.testing.assert_allclose(kw["scale"], (1.0, *SIZES))
        if layers_take_units():  # napari 0.5.1 and later: the scale bar reads um
            assert list(kw["units"]) == ["pixel", "um", "um", "um"]
            assert list(kw["axis_labels"]) == ["t", "z", "y", "x"]  # the sliders say t and z
        assert kw["metadata"]["labelfree"]["axes"] == "TZYX"
    assert layers[0][1]["colormap"] == "gray" and layers[0][1]["blending"] == "opaque"
    assert layers[1][1]["colormap"] == "blue" and layers[1][1]["blending"] == "additive"


def test_a_one_plane_file_opens_as_a_2d_layer_over_every_plane(make_napari_viewer, tmp_path):
    """A maximum projection beside its z-stack (as confocal stains often come): a 2D layer, which
    napari shows at every z of the stack, keeping its file's voxel size for the widgets."""
    from napari_labelfree._widgets._layers import layer_info, layer_source

    rng = np.random.default_rng(3)
    stack, projection = tmp_path / "cells.ome.tif", tmp_path / "cells_max.ome.tif"
    write_ome_tiff(stack, rng.random((1, 1, 6, 16, 16), dtype=np.float32), physical_sizes=SIZES)
    plane = rng.random((1, 1, 1, 16, 16), dtype=np.float32)
    write_ome_tiff(projection, plane, channel_names=["DAPI"], physical_sizes=SIZES)
    ((arr, kw, _),) = _read(projection)
    assert np.asarray(arr).shape == (16, 16) and kw["metadata"]["labelfree"]["axes"] == "YX"
    np.testing.assert_allclose(kw["scale"], SIZES[1:])
    if layers_take_units():
        assert list(kw["axis_labels"]) == ["y", "x"] and list(kw["units"]) == ["um", "um"]
    viewer = make_napari_viewer()
    viewer.open([str(stack)], plugin="napari-labelfree")
    dapi = viewer.add_image(arr, **kw)
    viewer.dims.set_current_step(0, 4)  # a plane of the stack other than the first
    assert dapi._slice.image.raw.shape == (16, 16)  # shown there, not empty
    np.testing.assert_allclose(dapi._slice.image.raw, plane[0, 0, 0])
    info = layer_info(dapi)
    assert info.voxel_size == SIZES  # the file's Z size too, from the layer's metadata
    assert layer_source(dapi, info).shape_tczyx == (1, 1, 1, 16, 16)


def test_reader_colours_channels_from_the_structure_table(tmp_path):
    from napari_labelfree.core.structures import colormap_for

    data = np.random.default_rng(2).random((1, 4, 4, 16, 16), dtype=np.float32)
    path = tmp_path / "four.ome.tif"
    names = ["EGFP", "TL Brightfield", "Hoechst 33342", "BFP"]
    write_ome_tiff(path, data, channel_names=names, physical_sizes=SIZES)
    layers = {kw["metadata"]["labelfree"]["channel"]: kw for _, kw, _ in _read(path)}
    # transmitted light comes first, so napari puts it beneath the additive fluorescence
    assert next(iter(layers)) == "TL Brightfield"
    assert layers["TL Brightfield"]["colormap"] == "gray"
    assert layers["Hoechst 33342"]["colormap"] == colormap_for("dna") == "blue"
    # unknown fluorescence (BFP is a fluorescent protein, not bright-field) gets free colours
    others = {layers[n]["colormap"] for n in ("EGFP", "BFP", "Hoechst 33342")}
    assert len(others) == 3 and "gray" not in others


def test_a_lone_channel_is_classified_by_the_file_name(tmp_path):
    bf, dna = _bright_field_and_dna()[0]
    hoechst, phase, unnamed = (tmp_path / n for n in ("cells_hoechst.tif", "cells_z.tif", "s.tif"))
    for p, vol in ((hoechst, bf), (phase, bf), (unnamed, dna)):
        tifffile.imwrite(p, vol, imagej=True, metadata={"axes": "ZYX", "spacing": 0.5})
    ((_, kw, _),) = _read(hoechst)  # the file's name says what it is, whatever its pixels
    assert (kw["colormap"], kw["blending"]) == ("blue", "additive")
    assert kw["name"] == "cells_hoechst: channel 0"  # not bioio's "Channel:0:0"
    ((_, kw, _),) = _read(phase)  # nothing in the name: the pixels are a bright field
    assert (kw["colormap"], kw["blending"]) == ("gray", "opaque")
    ((_, kw, _),) = _read(unnamed)  # dark with bright objects: fluorescence
    assert kw["blending"] == "additive" and kw["colormap"] != "gray"


def test_reader_opens_an_imagej_hyperstack(tmp_path):
    data = np.random.default_rng(4).integers(0, 1000, (5, 2, 16, 20)).astype(np.uint16)  # ZCYX
    data[:, 1] //= 50  # channel 1 dark with a few bright pixels: fluorescence
    data[:, 1, ::7, ::5] += 3000
    data[:, 0] = data[:, 0] // 10 + 2000  # channel 0 a bright field
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "ZCYX", "spacing": 0.5, "unit": "um"},
    )
    layers = _read(path)
    assert [kw["name"] for _, kw, _ in layers] == ["hyper: channel 0", "hyper: channel 1"]
    # the unnamed bright-field channel opens grey beneath the fluorescence (by its pixels)
    assert [kw["blending"] for _, kw, _ in layers] == ["opaque", "additive"]
    for c, (arr, kw, _) in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(arr), data[:, c])  # Z planes are not channels
        np.testing.assert_allclose(kw["scale"], SIZES)


def test_imagej_timelapse_channels_are_judged_on_the_whole_stack(tmp_path):
    """Three unnamed channels of a time-lapse: only the bright field opens grey, although the
    fluorescence channels' first planes (out of the cells) are symmetric noise like a bright field."""
    rng = np.random.default_rng(9)
    n_t, n_z = 4, 6
    y, x = np.mgrid[0:24, 0:24]
    nuclei = ((y - 8) ** 2 + (x - 8) ** 2 < 12) | ((y - 17) ** 2 + (x - 15) ** 2 < 15)
    data = np.empty((n_t, n_z, 3, 24, 24), np.float32)  # TZCYX, as ImageJ stores a hyperstack
    data[:, :, 0] = 2000 + 80 * np.sin(x / 2.0) + rng.normal(0, 30, (n_t, n_z, 24, 24))
    for c in (1, 2):
        data[:, :, c] = 100 + rng.normal(0, 5, (n_t, n_z, 24, 24))
        data[:, 2:4, c] += (1500 * c) * nuclei  # in focus in the middle planes only
    path = tmp_path / "lapse.tif"
    tifffile.imwrite(
        path,
        data.clip(0).astype(np.uint16),
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "TZCYX", "spacing": 0.5, "unit": "um"},
    )
    layers = _read(path)
    kinds = {
        kw["name"]: (kw["blending"], kw["metadata"]["labelfree"]["transmitted"])
        for _, kw, _ in layers
    }
    assert kinds == {
        "lapse: channel 0": ("opaque", True),
        "lapse: channel 1": ("additive", False),
        "lapse: channel 2": ("additive", False),
    }
    assert layers[0][0].shape == (n_t, n_z, 24, 24)


def test_reader_opens_a_czi_with_its_scale(tmp_path, write_czi):
    data = np.random.default_rng(1).integers(0, 3000, size=(1, 2, 5, 24, 20)).astype(np.uint16)
    path = write_czi(tmp_path / "cells.czi", data, ["TL Brightfield", "DAPI"], SIZES)
    layers = _read(path)
    assert [kw["name"] for _, kw, _ in layers] == ["cells: TL Brightfield", "cells: DAPI"]
    arr, kw, _ = layers[1]
    np.testing.assert_array_equal(np.asarray(arr).squeeze(), data[0, 1])
    np.testing.assert_allclose(kw["scale"][-3:], SIZES)


def test_reader_leaves_pictures_to_napari(tmp_path):
    """As the remembered reader for *.tif it must not open an RGB picture as one gray channel."""
    rgb = tmp_path / "photo.tif"
    tifffile.imwrite(rgb, np.zeros((16, 20, 3), np.uint8), photometric="rgb")
    (layer,) = _read(rgb)  # napari's own reader: (data,) with napari's defaults
    assert np.asarray(layer[0]).shape == (16, 20, 3)
    assert len(layer) == 1 or "labelfree" not in layer[1].get("metadata", {})


def test_reader_declines_what_it_cannot_read(tmp_path):
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "missing.tif")) is None
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"this is not a tiff")
    assert get_reader(str(bad)) is None


def test_writer_round_trip_keeps_names_colours_sizes_and_dtype(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.random((3, 4, 8, 8), dtype=np.float32)
    b = rng.random((3, 4, 8, 8), dtype=np.float32)
    layers = [
        (a, {"name": "dna (predicted)", "scale": (1.0, *SIZES), "colormap": "blue"}, "image"),
        (
            b,
            {"name": "lamin-b1 (predicted)", "scale": (1.0, *SIZES), "colormap": "magenta"},
            "image",
        ),
    ]
    written = write_predictions(str(tmp_path / "pred.ome.tif"), layers)
    assert written == [str(tmp_path / "pred.ome.tif")]
    src = open_image(written[0])
    assert src.channel_names == ["dna (predicted)", "lamin-b1 (predicted)"]
    assert src.shape_tczyx == (3, 2, 4, 8, 8)
    np.testing.assert_allclose(src.physical_sizes, SIZES)
    np.testing.assert_array_equal(src.frame(2, 1), b[2])
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind
    reopened = {kw["name"]: kw["colormap"] for _, kw, _ in _read(written[0])}
    assert reopened == {"pred: dna (predicted)": "blue", "pred: lamin-b1 (predicted)": "magenta"}

    raw = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    out = write_predictions(
        str(tmp_path / "raw.tif"), [(raw, {"name": "bf", "scale": SIZES}, "image")]
    )
    with tifffile.TiffFile(out[0]) as tif:
        assert tif.is_ome and tif.series[0].dtype == np.uint16  # pixels are not converted


def test_a_saved_crop_keeps_the_contrast_method_its_file_named(tmp_path):
    """Opened from a file that says phase contrast and fluorescence, a crop saved through the
    writer says so too (the modality checks of prediction and training read it); layers without
    one (a prediction beside them) write none rather than a guess."""
    rng = np.random.default_rng(2)
    data = rng.integers(100, 4000, size=(2, 4, 16, 16)).astype(np.uint16)
    meta = {"axes": "CZYX", "Channel": {"Name": ["TL", "Hoechst"]}, "PhysicalSizeX": 0.3}
    meta["Channel"]["ContrastMethod"] = ["Phase", "Fluorescence"]
    tifffile.imwrite(tmp_path / "cells.ome.tif", data, metadata=meta)
    layers = _read(str(tmp_path / "cells.ome.tif"))
    crops = [(d[:, 2:10, 2:10], kw, kind) for d, kw, kind in layers]
    saved = open_image(write_predictions(str(tmp_path / "crop.ome.tif"), crops)[0])
    assert saved.channel_modality == ("phase-contrast", "fluorescence")
    assert saved.declared("transmitted") == 0
    predicted = (np.ones((4, 8, 8), np.float32), {"name": "dna (predicted)"}, "image")
    mixed = write_predictions(str(tmp_path / "mixed.ome.tif"), [crops[0], predicted])
    assert open_image(mixed[0]).channel_modality in ((), (None, None))


def test_writer_keeps_unknown_sizes_unknown(tmp_path):
    """A layer at napari's default scale (no size known) is not written as 1 um voxels."""
    data = np.zeros((4, 8, 8), np.float32)
    meta = {"name": "dna (predicted)", "scale": (1.0, 1.0, 1.0), "units": ("pixel",) * 3}
    (out,) = write_predictions(str(tmp_path / "unknown.ome.tif"), [(data, meta, "image")])
    assert open_image(out).physical_sizes == (None, None, None)
    with tifffile.TiffFile(out) as tif:
        assert "PhysicalSize" not in tif.ome_metadata
    # a size in a real length unit is converted to um
    meta = {"name": "x", "scale": (290.0, 108.0, 108.0), "units": ("nanometer",) * 3}
    (out,) = write_predictions(str(tmp_path / "nm.ome.tif"), [(data, meta, "image")])
    np.testing.assert_allclose(open_image(out).physical_sizes, (0.29, 0.108, 0.108))


def test_contrast_limits_are_saved_and_restored(tmp_path):
    """A reopened prediction keeps the limits it was shown with (its background stays black)."""
    rng = np.random.default_rng(3)
    layers = [
        (
            rng.random((4, 8, 8), dtype=np.float32) - 0.7,
            {"name": name, "contrast_limits": lim},
            "image",
        )
        for name, lim in (("dna (predicted)", (-0.2, 0.25)), ("tom20 (predicted)", (-0.62, -0.36)))
    ]
    (out,) = write_predictions(str(tmp_path / "limits.ome.tif"), layers)
    read = _read(out)
    assert [kw["contrast_limits"] for _, kw, _ in read] == [[-0.2, 0.25], [-0.62, -0.36]]
    # a file without stored limits opens with napari's own
    (plain,) = write_predictions(
        str(tmp_path / "plain.ome.tif"), [(layers[0][0], {"name": "x"}, "image")]
    )
    assert all("contrast_limits" not in kw for _, kw, _ in _read(plain))


def test_writer_refuses_layers_of_different_shapes(tmp_path):
    layers = [
        (np.zeros((4, 8, 8), np.float32), {"name": "a"}, "image"),
        (np.zeros((4, 8, 9), np.float32), {"name": "b"}, "image"),
    ]
    with pytest.raises(LabelFreeError, match="differ in shape"):
        write_predictions(str(tmp_path / "x.ome.tif"), layers)


# --- through a viewer with fresh settings, as a user opens and saves ----------------------------


@pytest.fixture
def fresh_settings(monkeypatch):
    """napari settings as on a new installation, kept in memory (never written to disk)."""
    from napari import settings
    from napari.settings import NapariSettings

    fresh = NapariSettings(config_path=None)
    monkeypatch.setattr(settings, "_SETTINGS", fresh)
    return fresh


@pytest.fixture
def plugin_settings(tmp_path, monkeypatch):
    """This plugin's own settings file in a temporary folder, nothing asked yet this session."""
    from napari_labelfree import _preferences

    path = tmp_path / "config" / "settings.json"
    monkeypatch.setattr(_preferences, "settings_path", lambda: path)
    monkeypatch.setattr(_preferences, "_asked_this_session", False)
    return path


def _activate() -> None:
    """The plugin as npe2 activates it on its first use in a session (manifest ``on_activate``)."""
    from napari.plugins import _initialize_plugins
    from npe2 import PluginManager

    _initialize_plugins()
    pm = PluginManager.instance()
    pm.deactivate("napari-labelfree")
    pm.activate("napari-labelfree")


@pytest.fixture
def opted_in(fresh_settings, plugin_settings, make_napari_viewer):
    """The plugin activated and the user's "Yes" to its reader question (after
    ``make_napari_viewer``, which resets the settings)."""
    from napari_labelfree._preferences import answer

    _activate()
    answer(True)
    return fresh_settings


def _writer_order() -> list[str]:
    from npe2 import PluginManager

    return [str(w.command) for w in PluginManager.instance().iter_compatible_writers(["image"])]


def test_first_use_asks_and_writes_nothing_until_answered(fresh_settings, plugin_settings):
    from napari_labelfree._preferences import QUESTION

    _activate()  # a session's first use: asks
    before = _writer_order()
    n = len(notification_manager.records)
    _activate()  # npe2 may activate again in the same session: asked once
    _activate_new_session()
    asked = [r for r in notification_manager.records[n:] if r.message == QUESTION]
    assert len(asked) == 1 and [name for name, _ in asked[0].actions] == ["Yes", "No"]
    assert dict(fresh_settings.plugins.extension2reader) == {}  # napari's settings untouched
    assert _writer_order() == before  # npe2's writer order untouched
    assert not plugin_settings.exists()

    fresh_settings.plugins.extension2reader = {"*.tiff": "some-other-plugin"}
    dict(asked[0].actions)["Yes"](None)  # the notification's button (napari passes the toast)
    prefs = fresh_settings.plugins.extension2reader
    assert prefs["*.tiff"] == "some-other-plugin"  # a choice the user made is kept
    for pattern in ("*.czi", "*.ome.tif", "*.ome.tiff", "*.tif"):
        assert prefs[pattern] == "napari-labelfree"
    assert json.loads(plugin_settings.read_text()) == {"open_files_with_labelfree": True}

    # undone in Preferences > Plugins: a later session neither asks nor writes it back
    fresh_settings.plugins.extension2reader = {}
    n = len(notification_manager.records)
    _activate_new_session()
    assert dict(fresh_settings.plugins.extension2reader) == {}
    assert not any(r.message == QUESTION for r in notification_manager.records[n:])


def test_no_is_remembered_and_writes_nothing(fresh_settings, plugin_settings):
    from napari_labelfree._preferences import QUESTION

    n = len(notification_manager.records)
    _activate_new_session()
    (asked,) = [r for r in notification_manager.records[n:] if r.message == QUESTION]
    dict(asked.actions)["No"](None)
    assert dict(fresh_settings.plugins.extension2reader) == {}
    n = len(notification_manager.records)
    _activate_new_session()
    assert not any(r.message == QUESTION for r in notification_manager.records[n:])


def test_no_question_when_every_pattern_has_a_reader_already(fresh_settings, plugin_settings):
    from napari_labelfree._preferences import QUESTION, READER_PATTERNS

    chosen = dict.fromkeys(READER_PATTERNS, "some-other-plugin")
    fresh_settings.plugins.extension2reader = chosen
    n = len(notification_manager.records)
    _activate_new_session()
    assert not any(r.message == QUESTION for r in notification_manager.records[n:])
    assert dict(fresh_settings.plugins.extension2reader) == chosen


def test_an_unwritable_config_folder_is_one_warning(fresh_settings, tmp_path, monkeypatch):
    from napari_labelfree import _preferences

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setattr(_preferences, "settings_path", lambda: blocker / "settings.json")
    n = len(notification_manager.records)
    _preferences.answer(True)  # a button's callback: must not raise
    (warning,) = [str(r.message) for r in notification_manager.records[n:]]
    assert "could not remember the answer" in warning
    assert fresh_settings.plugins.extension2reader["*.czi"] == "napari-labelfree"


def test_the_predict_widget_asks_until_answered(
    fresh_settings, plugin_settings, make_napari_viewer
):
    from napari_labelfree._widgets._reader_question import ReaderQuestion

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-labelfree", "Label-free prediction")
    (question,) = widget.findChildren(ReaderQuestion)
    assert not question.isHidden()
    question.yes.click()
    assert question.isHidden()
    assert fresh_settings.plugins.extension2reader["*.czi"] == "napari-labelfree"
    _, second = viewer.window.add_plugin_dock_widget(
        "napari-labelfree", "Label-free prediction"
    )  # opened again later: not asked again
    assert all(q.isHidden() for q in second.findChildren(ReaderQuestion))


def _activate_new_session() -> None:
    from napari_labelfree import _preferences

    _preferences._asked_this_session = False
    _activate()


def _bright_field_and_dna() -> np.ndarray:
    """TCZYX uint16: a bright field with faint detail, and DNA: dark with two bright nuclei."""
    rng = np.random.default_rng(5)
    z, y, x = np.mgrid[0:4, 0:16, 0:16]
    nuclei = ((y - 4) ** 2 + (x - 5) ** 2 < 6) | ((y - 11) ** 2 + (x - 10) ** 2 < 6)
    bf = 1000 + 60 * np.sin(x / 2.0) + rng.normal(0, 20, x.shape)
    dna = 100 + 1500 * nuclei + rng.normal(0, 5, x.shape)
    return np.stack([bf, dna])[np.newaxis].clip(0).astype(np.uint16)


@pytest.fixture
def files(tmp_path, write_czi):
    """One file of each format, two channels (bright-field, DNA) at SIZES: path -> layer names."""
    from napari_labelfree.core.io import open_prediction_output

    data = _bright_field_and_dna()
    names = ["bright-field", "dna"]
    ome = write_ome_tiff(tmp_path / "a.ome.tif", data, channel_names=names, physical_sizes=SIZES)
    imagej = tmp_path / "b.tif"
    tifffile.imwrite(
        imagej,
        data[0].transpose(1, 0, 2, 3),
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "ZCYX", "spacing": 0.5, "unit": "um"},
    )
    czi = write_czi(tmp_path / "c.czi", data, ["TL Brightfield", "Hoechst 33342"], SIZES)
    with open_prediction_output(
        tmp_path / "d.ome.zarr", names, ["gray", "blue"], (4, 16, 16), SIZES, 1
    ) as out:
        out.write_frame(0, {n: data[0, c].astype(np.float32) for c, n in enumerate(names)})
        zarr = out.commit()
    return {
        ome: ["a: bright-field", "a: dna"],
        imagej: ["b: channel 0", "b: channel 1"],
        czi: ["c: TL Brightfield", "c: Hoechst 33342"],
        zarr: ["d: bright-field", "d: dna"],
    }


def test_files_open_with_this_reader_without_a_question(
    opted_in, make_napari_viewer, files, monkeypatch
):
    import napari._qt.qt_viewer as qt_viewer

    def asked(*args, **kwargs):
        raise AssertionError("napari asked which plugin should read the file")

    monkeypatch.setattr(qt_viewer, "handle_gui_reading", asked)
    viewer = make_napari_viewer()
    for path, names in files.items():
        for how in ("drop", "script"):
            viewer.layers.clear()
            if how == "drop":  # a drop, File > Open and `napari FILE` all go through _qt_open
                viewer.window._qt_viewer._qt_open([str(path)], stack=False)
            else:  # a script that names no plugin (viewer.open's default is napari's own reader)
                viewer.open(str(path), plugin=None)
            assert sorted(ly.name for ly in viewer.layers) == sorted(names), (path, how)
            for layer in viewer.layers:
                np.testing.assert_allclose(layer.scale, SIZES)
                if layers_take_units():
                    assert [str(u) for u in layer.units] == ["micrometer"] * 3
            bottom = viewer.layers[0]
            assert bottom.colormap.name == "gray" and bottom.blending == "opaque", path


def test_saving_predictions_keeps_sizes_names_and_colours(opted_in, make_napari_viewer, tmp_path):
    from napari.plugins import _npe2

    viewer = make_napari_viewer()
    rng = np.random.default_rng(6)
    # as the Predict widget adds them: named "<structure> (predicted)", in the model's colour
    dna, lamin = (
        viewer.add_image(
            rng.random((4, 8, 8), dtype=np.float32),
            name=f"{structure} (predicted)",
            colormap=colour,
            blending="additive",
            scale=SIZES,
        )
        for structure, colour in (("dna", "blue"), ("lamin-b1", "magenta"))
    )
    # File > Save Selected Layers lists this writer (npe2's order is napari's: not reordered)
    _, writers = _npe2.file_extensions_string_for_layers([dna])
    (ours,) = [w for w in writers if w.command == "napari-labelfree.write_predictions"]
    viewer.layers.selection = {dna}
    one = tmp_path / "one.ome.tif"
    assert viewer.layers.save(str(one), selected=True, _writer=ours) == [str(one)]
    # a script naming no writer gets this one for .ome.tif too; several layers go in one file
    viewer.layers.selection = {dna, lamin}
    both = tmp_path / "both.ome.tif"
    assert viewer.layers.save(str(both), selected=True) == [str(both)]

    viewer.layers.clear()
    viewer.open(str(one), plugin=None)
    viewer.open(str(both), plugin=None)
    shown = {ly.name: ly for ly in viewer.layers}
    assert set(shown) == {
        "one: dna (predicted)",
        "both: dna (predicted)",
        "both: lamin-b1 (predicted)",
    }
    for name, layer in shown.items():
        assert layer.colormap.name == ("magenta" if "lamin" in name else "blue")
        assert layer.blending == "additive"
        np.testing.assert_allclose(layer.scale, SIZES)
    np.testing.assert_array_equal(shown["one: dna (predicted)"].data, dna.data)


def test_writer_leaves_other_file_types_to_napari(tmp_path):
    """Offered first in the save dialog, it must still save a PNG typed there as a PNG."""
    picture = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) % 256).astype(np.uint8)
    (out,) = write_predictions(str(tmp_path / "a.png"), [(picture, {"name": "a"}, "image")])
    assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_scene_of_a_file_opens_as_its_own_layers_the_first_shown(tmp_path, write_positions):
    data = write_positions(tmp_path / "wells.ome.tif", n=3)
    layers = _read(tmp_path / "wells.ome.tif")
    names = [kw["name"] for _, kw, _ in layers]
    assert names == [
        f"wells [Position {k}]: {c}" for k in (1, 2, 3) for c in ("bright-field", "DAPI")
    ]
    for i, (arr, kw, _) in enumerate(layers):
        k, c = divmod(i, 2)
        np.testing.assert_allclose(np.asarray(arr), data[k][c])
        assert kw["metadata"]["labelfree"]["scene"] == f"Position {k + 1}"
        assert kw["visible"] is (k == 0)  # the scenes lie over each other: the first shows


def test_an_ome_zarr_plate_opens_each_image_as_a_scene(tmp_path, write_plate):
    """An NGFF plate dropped into napari: each field of view its own layers, named by its path
    in the plate, the first shown (before, the plate was refused as a corrupt file)."""
    images = write_plate(tmp_path / "plate.ome.zarr", wells=("A/1", "A/2"), fields=1)
    layers = _read(tmp_path / "plate.ome.zarr")
    names = [kw["name"] for _, kw, _ in layers]
    assert names == [f"plate [A/{k}/0]: {c}" for k in (1, 2) for c in ("bright-field", "DAPI")]
    np.testing.assert_allclose(np.asarray(layers[3][0]), images["A/2/0"][1])
    assert [kw["visible"] for _, kw, _ in layers] == [True, True, False, False]
    np.testing.assert_allclose(layers[0][1]["scale"], (0.29, 0.29, 0.29))


def test_the_scenes_of_a_file_without_channel_names_are_still_one_channel(tmp_path):
    """bioio makes up a channel name per scene where the file has none ("Channel:0:0",
    "Channel:1:0"): the widgets' "Every scene of this file" matches the channel by its index,
    else a plate without channel names offered no other scene."""
    from napari.layers import Image

    from napari_labelfree._widgets._scene_queue import scene_pairs, sibling_scenes

    with tifffile.TiffWriter(tmp_path / "plate.ome.tif", ome=True) as tw:
        for k in range(3):
            tw.write(
                np.ones((2, 4, 16, 16), np.float32) * k, metadata={"axes": "CZYX", "Name": f"P{k}"}
            )
    layers = [Image(d, **kw) for d, kw, _ in _read(tmp_path / "plate.ome.tif")]
    channels = {ly.metadata["labelfree"]["channel"] for ly in layers}
    assert len(channels) > 2  # names differ per scene: the case this guards
    first = layers[0]
    siblings = sibling_scenes(layers, first)
    assert [ly.metadata["labelfree"]["scene"] for ly in layers if ly.name in siblings] == [
        "P1",
        "P2",
    ]
    target = next(
        ly for ly in layers if ly.metadata["labelfree"]["scene"] == "P0" and ly is not first
    )
    assert len(scene_pairs(layers, first, target)) == 2


def test_scenes_beyond_the_cap_are_named_in_one_warning(tmp_path, write_positions, monkeypatch):
    from napari.utils import notifications

    import napari_labelfree._reader as reader_module

    write_positions(tmp_path / "wells.ome.tif", n=3)
    monkeypatch.setattr(reader_module, "MAX_SCENES", 2)
    said = []
    monkeypatch.setattr(notifications, "show_warning", said.append)
    layers = _read(tmp_path / "wells.ome.tif")
    assert {kw["metadata"]["labelfree"]["scene"] for _, kw, _ in layers} == {
        "Position 1",
        "Position 2",
    }
    assert len(said) == 1 and "holds 3 scenes; the first 2 were opened" in said[0]
    assert "--scene" in said[0]
