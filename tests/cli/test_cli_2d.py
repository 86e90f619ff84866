"""`labelfree init-model / train / predict` with 2D and 2.5D models: single planes, 2D time-lapses,
a projection target; OME-TIFF and OME-Zarr outputs."""

import json

import numpy as np
import pytest

from napari_labelfree.cli import main
from napari_labelfree.core.io import open_image, write_ome_tiff

TINY = ["--depth", "2", "--width", "8", "--seed", "1"]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    write_ome_tiff(
        "plane.ome.tif",
        rng.random((1, 1, 1, 40, 48)).astype(np.float32),
        physical_sizes=(None, 0.5, 0.5),
    )
    write_ome_tiff(
        "movie.ome.tif",
        rng.random((3, 1, 1, 40, 48)).astype(np.float32),
        physical_sizes=(None, 0.5, 0.5),
    )
    sig = rng.random((1, 1, 7, 32, 32)).astype(np.float32)
    dapi = np.repeat(2 * sig.max(axis=2, keepdims=True), 7, axis=2)  # a projection target
    write_ome_tiff(
        "pair.ome.tif",
        np.concatenate([sig, dapi], axis=1),
        channel_names=["bf", "dapi"],
        physical_sizes=(1.0, 0.5, 0.5),
    )
    return tmp_path


def test_2d_model_predicts_a_plane_and_a_timelapse_into_tiff_and_zarr(files, capsys):
    assert (
        main(
            ["init-model", "m2d", "--structure", "dna", "--kind", "2d"]
            + ["--voxel-size", "0.5,0.5", *TINY]
        )
        == 0
    )
    assert "2D" in capsys.readouterr().out
    config = json.loads((files / "m2d" / "config.json").read_text())
    assert config["architecture"]["name"] == "unet2d"
    assert config["voxel_size_um"][1:] == [0.5, 0.5]

    assert main(["predict", "plane.ome.tif", "-m", "./m2d", "-o", "plane_dna.ome.tif"]) == 0
    out = open_image("plane_dna.ome.tif")
    assert (out.n_timepoints, out.shape_zyx) == (1, (1, 40, 48))
    assert out.physical_sizes[1:] == (0.5, 0.5)
    err = capsys.readouterr().err
    assert "physical size for Z" not in err  # a 2D model needs no z-step

    assert main(["predict", "movie.ome.tif", "-m", "./m2d", "-o", "movie_dna.ome.zarr"]) == 0
    out = open_image("movie_dna.ome.zarr")
    assert (out.n_timepoints, out.shape_zyx) == (3, (1, 40, 48))
    assert np.isfinite(out.frame(2, 0)).all()
    # Y,X is accepted for 2D models
    assert (
        main(
            ["predict", "plane.ome.tif", "-m", "./m2d", "-o", "b.ome.tif"]
            + ["--voxel-size", "0.5,0.5"]
        )
        == 0
    )


def test_25d_training_with_a_projection_target_predicts_one_plane(files, capsys, monkeypatch):
    argv = ["train", "pair.ome.tif", "--signal-channel", "bf", "--target-channel", "dapi"]
    argv += ["--structure", "dna", "--kind", "2.5d", "--in-planes", "5"]
    argv += ["--target-projection", "max", "--voxel-size", "1,0.5,0.5", "--depth", "2"]
    argv += ["--width", "8", "--iterations", "4", "--batch-size", "2", "--patch-shape", "1,16,16"]
    assert main([*argv, "-o", "m25", "--val", "pair.ome.tif"]) == 0
    config = json.loads((files / "m25" / "config.json").read_text())
    assert config["architecture"]["name"] == "unet2.5d"
    assert config["architecture"]["in_planes"] == 5 and config["target_projection"] == "max"
    assert (
        main(["predict", "pair.ome.tif", "--channel", "bf", "-m", "./m25", "-o", "p.ome.zarr"]) == 0
    )
    out = open_image("p.ome.zarr")
    assert out.shape_zyx == (1, 32, 32)  # the max-projection plane, not the stack
    capsys.readouterr()
    # its target here is a stack: scored on the target's projection, as it was trained
    evaluate = ["evaluate", "./m25", "pair.ome.tif", "--signal-channel", "bf"]
    assert main([*evaluate, "--target-channel", "dapi"]) == 0
    rows = [ln for ln in "".join(capsys.readouterr()).splitlines() if " r=" in ln]
    assert rows and "nan" not in rows[0]
    monkeypatch.setenv("NAPARI_LABELFREE_MODELS", str(files))  # labelfree models lists m25
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "KIND" in listing.splitlines()[0]
    assert "2.5D (5 planes, max-projection)" in listing


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--voxel-size", "0.5,0.5"], "Y,X"),
        (["--in-planes", "3"], "--kind 2.5d"),
        (["--kind", "2d", "--target-projection", "max"], "--kind 2.5d and 3d"),
        (["--kind", "2.5d", "--in-planes", "4"], "odd"),
    ],
)
def test_init_model_refuses_impossible_kinds_in_one_line(files, capsys, argv, words):
    assert main(["init-model", "bad", "--structure", "dna", *TINY, *argv]) != 0
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (files / "bad").exists()


@pytest.fixture
def projection_files(files):
    """A 7-plane signal stack and its target as one plane (a maximum projection), in two files,
    and the table pairing them (as the ISL data come: a z-stack and a projection)."""
    rng = np.random.default_rng(2)
    sig = rng.random((1, 1, 7, 32, 128)).astype(np.float32)  # wide enough for the strip
    write_ome_tiff("stack.ome.tif", sig, physical_sizes=(1.0, 0.5, 0.5))
    write_ome_tiff("maxproj.ome.tif", 2 * sig.max(axis=2, keepdims=True), channel_names=["dapi"])
    (files / "pairs.csv").write_text("signal,target\nstack.ome.tif,maxproj.ome.tif\n")
    return files


def test_a_one_plane_target_trains_a_25d_model_of_the_whole_stack(projection_files, capsys):
    argv = ["train", "pairs.csv", "--structure", "dna", "--kind", "2.5d", "--in-planes", "7"]
    argv += ["--target-projection", "max", "--voxel-size", "1,0.5,0.5", *TINY]
    argv += ["--iterations", "4", "--batch-size", "2", "--patch-shape", "1,16,16"]
    assert main([*argv, "-o", "m25"]) == 0
    config = json.loads((projection_files / "m25" / "config.json").read_text())
    assert config["target_projection"] == "max" and config["architecture"]["in_planes"] == 7
    assert config["metrics"]["val_source"] == "strip"  # the automatic strip cut the plane too
    # the card says which images, and claims no contrast method the files did not name
    assert config["provenance"]["training_images"] == ["stack.ome.tif|maxproj.ome.tif"]
    assert config["modality"] == "transmitted-light"
    capsys.readouterr()
    # scored as it was trained: the one predicted plane against the one target plane
    assert main(["evaluate", "./m25", "pairs.csv"]) == 0
    captured = capsys.readouterr()
    assert "maximum projection of the prediction" not in captured.err
    row = [line for line in captured.out.splitlines() if line.strip().startswith("dna")][0]
    assert "nan" not in row  # SSIM of one plane is a 2D SSIM, not an empty 3D window


def test_a_3d_network_learns_a_one_plane_target_at_every_plane_and_fine_tunes_a_3d_model(
    projection_files, capsys, monkeypatch
):
    """--kind 3d --target-projection max: the plane repeated at every plane is learned, the
    prediction is its one plane; a 3D model without a projection (a built-in) can start it, and
    the before/after are both scored on the one plane."""
    start = ["init-model", "start3d", "--structure", "dna", "--voxel-size", "1,0.5,0.5", *TINY]
    assert main(start) == 0
    argv = ["train", "pairs.csv", "--structure", "dna", "--kind", "3d"]
    argv += ["--target-projection", "max", "--voxel-size", "1,0.5,0.5", *TINY]
    argv += ["--iterations", "4", "--batch-size", "2", "--patch-shape", "4,16,16"]
    assert main([*argv, "--init", "./start3d", "-o", "m3p"]) == 0
    said = "".join(capsys.readouterr())
    assert "start3d: r " in said and "-> adapted: r " in said  # before/after on the strip
    config = json.loads((projection_files / "m3p" / "config.json").read_text())
    assert config["architecture"]["name"] == "unet3d" and config["target_projection"] == "max"
    assert config["provenance"]["init"]["model"] == "start3d"
    metrics = config["metrics"]
    assert metrics["val_source"] == "strip"
    assert np.isfinite(metrics["val_pearson_r_mean"]) and np.isfinite(
        metrics["init_val_pearson_r_mean"]
    )
    assert main(["predict", "stack.ome.tif", "-m", "./m3p", "-o", "p.ome.tif"]) == 0
    assert open_image("p.ome.tif").shape_zyx == (1, 32, 128)  # one plane, not the stack
    assert main(["evaluate", "./m3p", "pairs.csv"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.strip()][-1]
    assert "nan" not in row
    monkeypatch.setenv("NAPARI_LABELFREE_MODELS", str(projection_files))
    assert main(["models"]) == 0
    assert "3D (max-projection at every plane)" in capsys.readouterr().out


def test_a_one_plane_target_for_a_stack_network_is_refused_naming_the_25d_options(
    projection_files, capsys
):
    argv = ["train", "pairs.csv", "--structure", "dna", "--init", "none", *TINY]
    argv += ["--voxel-size", "1,0.5,0.5", "--iterations", "2", "-o", "m3"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "the target is one plane and the signal a stack of 7" in err
    assert "--kind 2.5d --target-projection max --in-planes 7" in err
    assert "--kind 3d --target-projection max" in err
    assert "Traceback" not in err and not (projection_files / "m3").exists()
    # 2.5D without the projection would pair the plane with one window: refused the same way
    assert main([*argv[:-2], "--kind", "2.5d", "-o", "m25"]) != 0
    assert "--target-projection max" in capsys.readouterr().err
    assert not (projection_files / "m25").exists()


def test_a_stack_model_is_scored_on_its_maximum_projection_against_a_one_plane_target(
    projection_files, capsys
):
    argv = ["init-model", "m3", "--structure", "dna", "--voxel-size", "1,0.5,0.5", *TINY]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["evaluate", "./m3", "pairs.csv", "-o", "scores.csv"]) == 0
    err = capsys.readouterr().err
    assert "predicts z-stacks and the target of" in err
    assert "the maximum projection of the prediction is scored" in err
    rows = (projection_files / "scores.csv").read_text().splitlines()
    assert len(rows) >= 2 and "nan" not in rows[1]
