"""Files of several scenes (a multi-position CZI, a multi-series OME-TIFF): every scene can be
opened by name or index, and nothing silently reads only the first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_labelfree.cli import main
from napari_labelfree.core.data import expand, load_pairs
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.io import open_image

NAMES = ["bright-field", "DAPI"]


@pytest.fixture
def positions(tmp_path, monkeypatch, write_positions):
    monkeypatch.chdir(tmp_path)
    return write_positions(tmp_path / "wells.ome.tif")


def test_every_scene_opens_by_name_or_index(positions):
    first = open_image("wells.ome.tif")
    assert first.scenes == ("Position 1", "Position 2") and first.scene == 0
    np.testing.assert_allclose(first.frame(0, 0), positions[0][0])
    for asked in (1, "1", "position 2", -1):
        second = open_image("wells.ome.tif", asked)
        assert second.scene == 1 and second.channel_names == NAMES
        np.testing.assert_allclose(second.frame(0, 1), positions[1][1])
    assert "holds 2 scenes (0: Position 1, 1: Position 2)" in first.scenes_note()
    with pytest.raises(LabelFreeError, match="no scene 'Position 3'; its scenes are 0: Position 1"):
        open_image("wells.ome.tif", "Position 3")
    # an error about one scene's image names the scene (which of a plate's 96 positions?)
    with pytest.raises(LabelFreeError, match=r"wells.ome.tif \[Position 2\] has no channel named"):
        second.channel_index("phase")


def test_a_file_of_one_scene_takes_scene_0_and_refuses_another(tmp_path):
    from napari_labelfree.core.io import write_ome_tiff

    path = write_ome_tiff(tmp_path / "one.ome.tif", np.ones((1, 1, 4, 8, 8), np.float32))
    assert open_image(path, 0).scenes == () and open_image(path).scenes_note() is None
    with pytest.raises(LabelFreeError, match="no scene '3'"):
        open_image(path, 3)


def test_predict_says_which_scene_and_predicts_the_one_asked_for(positions, capsys):
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec

    spec = ModelSpec("dna", architecture=Architecture(depth=2, width=8))
    init_bundle("m", spec, seed=0)
    base = ["predict", "wells.ome.tif", "-m", "./m", "--channel", "bright-field"]
    assert main([*base, "-o", "out"]) == 0
    err = capsys.readouterr().err
    assert "holds 2 scenes" in err and "--scene" in err
    assert main([*base, "--scene", "Position 2", "-o", "out"]) == 0
    assert "holds 2 scenes" not in capsys.readouterr().err  # asked for: nothing to say
    first = open_image("out/wells_predicted.ome.tif").frame(0, 0)
    second = open_image("out/wells_scene-Position-2_predicted.ome.tif").frame(0, 0)
    assert not np.allclose(first, second)  # the second position's cells, not the first's again
    assert main([*base, "--scene", "9", "-o", "bad.ome.tif"]) != 0
    err = capsys.readouterr().err
    assert "has no scene '9'; its scenes are 0: Position 1, 1: Position 2" in err
    assert "Traceback" not in err
    assert not Path("bad.ome.tif").exists()


def test_a_table_row_may_name_one_scene_so_a_plate_splits_into_train_and_test(
    tmp_path, monkeypatch, write_positions
):
    """Wells A and B for training, well C to test: a `scene` column picks one scene of the
    file (of both files, scene k with scene k); an empty one keeps every scene."""
    monkeypatch.chdir(tmp_path)
    data = write_positions("plate.ome.tif", n=3)
    Path("train.csv").write_text(
        "signal,target,signal_channel,target_channel,scene\n"
        "plate.ome.tif,plate.ome.tif,bright-field,DAPI,Position 1\n"
        "plate.ome.tif,plate.ome.tif,bright-field,DAPI,1\n"
    )
    pairs, _ = load_pairs(expand(["train.csv"], None, None))
    assert [p.name for p in pairs] == ["plate.ome.tif [Position 1]", "plate.ome.tif [Position 2]"]
    np.testing.assert_allclose(pairs[1].target, data[1][1])
    # two files of the same positions: the target's scene of the same index
    import tifffile

    from napari_labelfree.core.io import write_ome_tiff

    with tifffile.TiffWriter("stains.ome.tif", ome=True) as tw:
        for k in range(3):
            tw.write(data[k][1] + 100, metadata={"axes": "ZYX", "Name": f"Position {k + 1}"})
    Path("test.csv").write_text(
        "signal,target,signal_channel,scene\nplate.ome.tif,stains.ome.tif,bright-field,Position 3\n"
    )
    (test,) = load_pairs(expand(["test.csv"], None, None))[0]
    np.testing.assert_allclose(test.signal, data[2][0])
    np.testing.assert_allclose(test.target, data[2][1] + 100)
    Path("every.csv").write_text(
        "signal,target,signal_channel,scene\nplate.ome.tif,stains.ome.tif,0,\n"
    )
    assert len(load_pairs(expand(["every.csv"], None, None))[0]) == 3  # no scene: every one
    write_ome_tiff("dapi.ome.tif", data[2][1][None, None], channel_names=["DAPI"])
    Path("bad.csv").write_text(
        "signal,target,signal_channel,scene\nplate.ome.tif,dapi.ome.tif,bright-field,2\n"
    )
    with pytest.raises(LabelFreeError, match="holds 3 scene\\(s\\) and target dapi.ome.tif 1"):
        load_pairs(expand(["bad.csv"], None, None))
    Path("none.csv").write_text(
        "signal,target,signal_channel,target_channel,scene\n"
        "plate.ome.tif,plate.ome.tif,0,1,Position 9\n"
    )
    with pytest.raises(LabelFreeError, match="no scene 'Position 9'"):
        load_pairs(expand(["none.csv"], None, None))


def test_scene_all_predicts_every_scene_of_a_plate_into_its_own_file(
    tmp_path, monkeypatch, capsys, write_positions
):
    """A plate is one file of many positions: ``--scene all`` predicts each into the folder, named
    after it, the same as asking for each by name; a file of one scene keeps its plain name."""
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.io import write_ome_tiff

    monkeypatch.chdir(tmp_path)
    write_positions("plate.ome.tif", n=3)
    write_ome_tiff("single.ome.tif", np.random.default_rng(1).random((1, 1, 6, 24, 24)))
    init_bundle("m", ModelSpec("dna", architecture=Architecture(depth=2, width=8)), seed=0)
    base = ["predict", "-m", "./m", "--channel", "0"]
    assert main([*base, "plate.ome.tif", "single.ome.tif", "--scene", "ALL", "-o", "out"]) == 0
    written = sorted(p.name for p in Path("out").iterdir())
    assert written == [
        "plate_scene-Position-1_predicted.ome.tif",
        "plate_scene-Position-2_predicted.ome.tif",
        "plate_scene-Position-3_predicted.ome.tif",
        "single_predicted.ome.tif",
    ]
    out = capsys.readouterr()
    assert "holds 3 scenes" not in out.err  # asked for: nothing to say
    assert out.err.count("stores no statistics") == 1  # about the model: once, not per scene
    assert out.out.count("time point(s) x dna") == 4
    # each the same as that scene predicted alone
    assert main([*base, "plate.ome.tif", "--scene", "Position 3", "-o", "one.ome.tif"]) == 0
    alone = open_image("one.ome.tif").frame(0, 0)
    np.testing.assert_array_equal(
        open_image("out/plate_scene-Position-3_predicted.ome.tif").frame(0, 0), alone
    )
    assert not np.allclose(
        open_image("out/plate_scene-Position-1_predicted.ome.tif").frame(0, 0), alone
    )
    # several scenes need a folder: refused before anything is written
    capsys.readouterr()
    assert main([*base, "plate.ome.tif", "--scene", "all", "-o", "x.ome.tif"]) != 0
    err = capsys.readouterr().err
    assert "with several scenes, -o must be a folder; x.ome.tif is named like a file" in err
    assert "Traceback" not in err and not Path("x.ome.tif").exists()


def test_a_warning_about_one_of_several_images_names_it(capsys):
    from napari_labelfree.cli._progress import drive_prediction
    from napari_labelfree.core.trust.ood import DIFFERS, UNKNOWN, InputWarning

    def events(text):
        yield InputWarning(text, "model_input", "dna", DIFFERS)
        yield InputWarning("model m stores no statistics", "model_input", "m", UNKNOWN)

    said: set[str] = set()
    for label in ("wells.czi [A1]", "wells.czi [A2]"):
        drive_prediction(events("model dna: this image is unlike"), label, said=said)
    assert capsys.readouterr().err.splitlines() == [
        "warning: wells.czi [A1]: model dna: this image is unlike",
        "warning: model m stores no statistics",
        "warning: wells.czi [A2]: model dna: this image is unlike",
    ]
    drive_prediction(events("model dna: this image is unlike"), "cells.tif")  # one image
    assert capsys.readouterr().err.startswith("warning: model dna: this image is unlike")


def test_scene_all_numbers_scenes_whose_names_would_make_one_file_name(tmp_path):
    import tifffile

    with tifffile.TiffWriter(tmp_path / "w.ome.tif", ome=True) as tw:
        for name in ("A/1", "A 1"):
            tw.write(np.ones((4, 8, 8), np.float32), metadata={"axes": "ZYX", "Name": name})
    from napari_labelfree.cli.predict import _scene_items

    paths, scenes, tags = _scene_items([str(tmp_path / "w.ome.tif")], "all")
    assert scenes == [0, 1] and tags == ["0", "1"]


def test_an_ome_zarr_plate_opens_as_scenes_one_per_image(
    tmp_path, monkeypatch, write_plate, capsys
):
    """An NGFF plate (wells of fields of view): each image is a scene named by its path, opened
    by index or path, read as written; --scene all predicts each into its own file (bioio alone
    failed on a plate with an IndexError, said as a corrupt file)."""
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec

    monkeypatch.chdir(tmp_path)
    images = write_plate("plate.ome.zarr")
    first = open_image("plate.ome.zarr")
    assert first.scenes == ("A/1/0", "A/1/1", "B/2/0", "B/2/1") and first.scene == 0
    assert first.channel_names == NAMES and first.physical_sizes == (0.29, 0.29, 0.29)
    assert "holds 4 scenes (0: A/1/0, 1: A/1/1, 2: B/2/0, 3: B/2/1)" in first.scenes_note()
    for asked in ("b/2/1", 3, "3"):
        fourth = open_image("plate.ome.zarr", asked)
        assert fourth.scene == 3 and fourth.path == Path("plate.ome.zarr")
        np.testing.assert_allclose(fourth.frame(0, 1), images["B/2/1"][1])
    with pytest.raises(LabelFreeError, match="no scene 'C/3/0'; its scenes are 0: A/1/0"):
        open_image("plate.ome.zarr", "C/3/0")
    init_bundle("m", ModelSpec("dna", architecture=Architecture(depth=2, width=8)), seed=0)
    base = ["predict", "plate.ome.zarr", "-m", "./m", "--channel", "bright-field"]
    assert main([*base, "--scene", "all", "-o", "out"]) == 0
    written = sorted(p.name for p in Path("out").iterdir())
    assert written == [
        f"plate_scene-{w}_predicted.ome.tif" for w in ("A-1-0", "A-1-1", "B-2-0", "B-2-1")
    ]
    assert main([*base, "--scene", "B/2/1", "-o", "one.ome.tif"]) == 0
    np.testing.assert_array_equal(
        open_image("one.ome.tif").frame(0, 0),
        open_image("out/plate_scene-B-2-1_predicted.ome.tif").frame(0, 0),
    )
    # into a name ending .zarr: a plate of the same layout, each image the same prediction
    assert main([*base, "--scene", "all", "-o", "pred.ome.zarr"]) == 0
    assert "pred.ome.zarr: an OME-Zarr plate of 4 images" in capsys.readouterr().out
    plate = open_image("pred.ome.zarr", "B/2/1")
    assert plate.scenes == first.scenes and plate.channel_names == ["dna"]
    np.testing.assert_array_equal(plate.frame(0, 0), open_image("one.ome.tif").frame(0, 0))
    assert main([*base, "--scene", "all", "-o", "pred.ome.zarr"]) != 0  # not replaced unasked
    assert "pred.ome.zarr already exists" in capsys.readouterr().err
    assert main([*base, "--scene", "B/2/1", "-o", "one.ome.zarr"]) == 0  # one image: an image
    assert open_image("one.ome.zarr").scenes == ()
    # every image a training pair, as a multi-position file's scenes
    pairs, _ = load_pairs(expand(["plate.ome.zarr"], "bright-field", "DAPI"))
    assert [p.name for p in pairs][:2] == ["plate.ome.zarr [A/1/0]", "plate.ome.zarr [A/1/1]"]
    np.testing.assert_allclose(pairs[2].target, images["B/2/0"][1])


def test_plate_metadata_of_zarr_v3_and_a_plate_of_no_images(tmp_path):
    """NGFF 0.5 keeps the plate under zarr.json's attributes.ome; a plate whose wells list no
    image is refused in one line that says what to open instead."""
    import json

    from napari_labelfree.core.io.hcs import plate_images

    root = tmp_path / "v3.ome.zarr"
    (root / "A" / "1").mkdir(parents=True)

    def group(path, attributes):
        doc = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": attributes}}
        (path / "zarr.json").write_text(json.dumps(doc))

    group(
        root, {"version": "0.5", "plate": {"wells": [{"path": "A/1"}], "rows": [], "columns": []}}
    )
    group(root / "A" / "1", {"version": "0.5", "well": {"images": [{"path": "0"}, {"path": "1"}]}})
    assert plate_images(root) == ["A/1/0", "A/1/1"]
    group(root, {"version": "0.5", "plate": {"wells": [{"path": "A/1"}, {"path": "../../etc"}]}})
    assert plate_images(root) == ["A/1/0", "A/1/1"]  # a path out of the plate is no well
    assert plate_images(tmp_path) is None  # no plate: an image, or no Zarr at all
    group(root / "A" / "1", {"version": "0.5", "well": {"images": []}})
    with pytest.raises(LabelFreeError, match="is an OME-Zarr plate whose wells list no images"):
        open_image(root)


def test_every_scene_is_a_training_pair_with_the_targets_same_scene(positions, tmp_path):
    pairs, _ = load_pairs(expand(["wells.ome.tif"], "bright-field", "DAPI"))
    assert [p.name for p in pairs] == ["wells.ome.tif [Position 1]", "wells.ome.tif [Position 2]"]
    for pair, scene in zip(pairs, positions, strict=True):
        np.testing.assert_allclose(pair.signal, scene[0])
        np.testing.assert_allclose(pair.target, scene[1])
    # two files: scene k of the signal with scene k of the target; other counts are refused
    from napari_labelfree.core.io import write_ome_tiff

    write_ome_tiff("one.ome.tif", np.ones((1, 1, 6, 24, 24), np.float32), channel_names=["DAPI"])
    Path("t.csv").write_text("signal,target,signal_channel\nwells.ome.tif,one.ome.tif,0\n")
    with pytest.raises(LabelFreeError, match="holds 2 scene\\(s\\) and target one.ome.tif 1"):
        load_pairs(expand(["t.csv"], None, None))
