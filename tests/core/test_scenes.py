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
