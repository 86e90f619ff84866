"""The npe2 reader and writer: OME-TIFF in as named channel layers, prediction layers out."""

from __future__ import annotations

import numpy as np
import pytest

from napari_labelfree._reader import get_reader
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


def test_reader_gives_one_named_layer_per_channel(timelapse_file):
    path, data = timelapse_file
    reader = get_reader(str(path))
    assert callable(reader)
    layers = reader(str(path))
    assert [kw["name"] for _, kw, _ in layers] == ["bright-field", "dna"]
    for c, (arr, kw, kind) in enumerate(layers):
        assert kind == "image"
        assert arr.shape == (2, 4, 16, 16)  # the time axis is kept
        np.testing.assert_allclose(np.asarray(arr), data[:, c])
        np.testing.assert_allclose(kw["scale"], (1.0, *SIZES))
        assert kw["metadata"]["labelfree"]["axes"] == "TZYX"
    assert layers[0][1]["colormap"] == "gray"
    assert layers[1][1]["blending"] == "additive"


def test_reader_colours_channels_from_the_structure_table(tmp_path):
    from napari_labelfree.core.structures import colormap_for

    data = np.random.default_rng(2).random((1, 4, 4, 16, 16), dtype=np.float32)
    path = tmp_path / "four.ome.tif"
    names = ["TL Brightfield", "EGFP", "Hoechst 33342", "BFP"]
    write_ome_tiff(path, data, channel_names=names, physical_sizes=SIZES)
    colours = [kw["colormap"] for _, kw, _ in get_reader(str(path))(str(path))]
    assert colours[0] == "gray"
    assert colours[2] == colormap_for("dna") == "blue"  # as the built-in DNA model's overlay
    # unknown fluorescence (BFP is a fluorescent protein, not bright-field) gets free colours
    assert len(set(colours[1:])) == 3 and "gray" not in colours[1:]


def test_reader_opens_a_czi_with_its_scale(tmp_path, write_czi):
    data = np.random.default_rng(1).integers(0, 3000, size=(1, 2, 5, 24, 20)).astype(np.uint16)
    path = write_czi(tmp_path / "cells.czi", data, ["TL Brightfield", "DAPI"], SIZES)
    layers = get_reader(str(path))(str(path))
    assert [kw["name"] for _, kw, _ in layers] == ["TL Brightfield", "DAPI"]
    arr, kw, _ = layers[1]
    np.testing.assert_array_equal(np.asarray(arr).squeeze(), data[0, 1])
    np.testing.assert_allclose(kw["scale"][-3:], SIZES)


def test_reader_declines_what_it_cannot_read(tmp_path):
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "missing.tif")) is None
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"this is not a tiff")
    assert get_reader(str(bad)) is None


def test_writer_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.random((3, 4, 8, 8), dtype=np.float32)
    b = rng.random((3, 4, 8, 8), dtype=np.float32)
    layers = [
        (a, {"name": "dna (predicted)", "scale": (1.0, *SIZES)}, "image"),
        (b, {"name": "lamin-b1 (predicted)", "scale": (1.0, *SIZES)}, "image"),
    ]
    written = write_predictions(str(tmp_path / "pred.ome.tif"), layers)
    assert written == [str(tmp_path / "pred.ome.tif")]
    src = open_image(written[0])
    assert src.channel_names == ["dna", "lamin-b1"]
    assert src.shape_tczyx == (3, 2, 4, 8, 8)
    np.testing.assert_allclose(src.physical_sizes, SIZES)
    np.testing.assert_allclose(src.frame(2, 1), b[2])
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind


def test_writer_refuses_layers_of_different_shapes(tmp_path):
    layers = [
        (np.zeros((4, 8, 8), np.float32), {"name": "a"}, "image"),
        (np.zeros((4, 8, 9), np.float32), {"name": "b"}, "image"),
    ]
    with pytest.raises(LabelFreeError, match="differ in shape"):
        write_predictions(str(tmp_path / "x.ome.tif"), layers)


def test_open_and_save_through_the_viewer(make_napari_viewer, timelapse_file, tmp_path):
    path, data = timelapse_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-labelfree")
    assert [ly.name for ly in viewer.layers] == ["bright-field", "dna"]
    np.testing.assert_allclose(viewer.layers["dna"].scale, (1.0, *SIZES))
    out = tmp_path / "saved.ome.tif"
    viewer.layers.selection = set(viewer.layers)
    viewer.layers.save(str(out), selected=True, plugin="napari-labelfree")
    src = open_image(out)
    assert src.channel_names == ["bright-field", "dna"]
    np.testing.assert_allclose(src.frame(1, 0), data[1, 0])
    np.testing.assert_allclose(src.physical_sizes, SIZES)
