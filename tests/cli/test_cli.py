import os
import subprocess
import sys

import numpy as np
import pytest

from napari_labelfree.cli import main
from napari_labelfree.core.io import open_image, write_ome_tiff


@pytest.fixture
def two_channel_timelapse(tmp_path, rng):
    data = rng.normal(100, 10, size=(2, 2, 9, 40, 36)).astype(np.float32)
    return write_ome_tiff(
        tmp_path / "in.ome.tif", data, None, ["GFP", "Bright-field"], (0.5, 0.2, 0.2)
    )


def test_init_model_then_predict_with_two_models(tmp_path, two_channel_timelapse, capsys):
    for s, c in (("dna", "blue"), ("tom20", "green")):
        assert (
            main(
                [
                    "init-model",
                    str(tmp_path / s),
                    "--structure",
                    s,
                    "--depth",
                    "2",
                    "--width",
                    "4",
                    "--colormap",
                    c,
                ]
            )
            == 0
        )
    out = tmp_path / "pred.ome.tif"
    rc = main(
        [
            "predict",
            str(two_channel_timelapse),
            "-m",
            str(tmp_path / "dna"),
            "-m",
            str(tmp_path / "tom20"),
            "--channel",
            "bright-field",
            "-o",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    src = open_image(out)
    assert src.shape_tczyx == (2, 2, 9, 40, 36)
    assert src.channel_names == ["dna", "tom20"]
    assert src.physical_sizes == pytest.approx((0.5, 0.2, 0.2))
    assert all(np.isfinite(src.frame(t, c)).all() for t in range(2) for c in range(2))
    # each model's colour, as OME-Zarr (omero 2659FF, 00FF00) and napari's writer store it
    import xml.etree.ElementTree as ET

    import tifffile

    with tifffile.TiffFile(out) as tif:
        channels = ET.fromstring(tif.ome_metadata).findall("./{*}Image/{*}Pixels/{*}Channel")
    assert [int(c.get("Color")) for c in channels] == [0x2659FFFF, 0x00FF00FF]


def test_predict_a_czi_by_channel_name(tmp_path, rng, write_czi, make_tiny_model):
    data = rng.integers(100, 4000, size=(1, 2, 6, 40, 44)).astype(np.uint16)
    czi = write_czi(tmp_path / "cells.czi", data, ["DNA", "Bright"], (0.29, 0.108, 0.108))
    b = make_tiny_model(structure="dna")
    out = tmp_path / "cells_predicted.ome.tif"
    rc = main(
        [
            "predict",
            str(czi),
            "-m",
            str(b.path),
            "--channel",
            "Bright",
            "-o",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    src = open_image(out)
    assert src.shape_tczyx == (1, 1, 6, 40, 44) and src.channel_names == ["dna"]
    assert src.physical_sizes == pytest.approx((0.29, 0.108, 0.108))


def test_several_inputs_go_to_a_folder(tmp_path, two_channel_timelapse):
    main(["init-model", str(tmp_path / "m"), "--structure", "dna", "--depth", "1", "--width", "2"])
    other = tmp_path / "b.ome.tif"
    other.write_bytes(two_channel_timelapse.read_bytes())
    outdir = tmp_path / "preds"
    outdir.mkdir()
    assert (
        main(
            [
                "predict",
                str(two_channel_timelapse),
                str(other),
                "-m",
                str(tmp_path / "m"),
                "--channel",
                "1",
                "-o",
                str(outdir),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in outdir.iterdir()) == [
        "b_predicted.ome.tif",
        "in_predicted.ome.tif",
    ]


def test_user_error_is_one_line_and_nonzero(tmp_path, two_channel_timelapse):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_labelfree",
            "init-model",
            str(tmp_path / "m"),
            "--structure",
            "dna",
            "--depth",
            "1",
            "--width",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_labelfree",
            "predict",
            str(two_channel_timelapse),
            "-m",
            str(tmp_path / "m"),
            "--channel",
            "DIC",
            "-o",
            str(tmp_path / "o.ome.tif"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    err_lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(err_lines) == 1 and "no channel named 'DIC'" in err_lines[0]
    assert not (tmp_path / "o.ome.tif").exists()


def test_existing_output_is_kept(tmp_path, two_channel_timelapse, capsys):
    main(["init-model", str(tmp_path / "m"), "--structure", "dna", "--depth", "1", "--width", "2"])
    out = tmp_path / "o.ome.tif"
    out.write_bytes(b"keep me")
    rc = main(
        [
            "predict",
            str(two_channel_timelapse),
            "-m",
            str(tmp_path / "m"),
            "--channel",
            "1",
            "-o",
            str(out),
        ]
    )
    assert rc == 2 and out.read_bytes() == b"keep me"
    assert "--overwrite" in capsys.readouterr().err


def test_models_lists_env_models(tmp_path, monkeypatch, capsys):
    main(
        [
            "init-model",
            str(tmp_path / "zoo" / "my-dna"),
            "--structure",
            "dna",
            "--depth",
            "1",
            "--width",
            "2",
            "--voxel-size",
            "0.3,0.1,0.1",
        ]
    )
    monkeypatch.setenv("NAPARI_LABELFREE_MODELS", str(tmp_path / "zoo"))
    capsys.readouterr()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "my-dna" in out and "0.3,0.1,0.1" in out and "env" in out


def test_2d_input_is_refused(tmp_path, rng):
    import tifffile

    tifffile.imwrite(tmp_path / "flat.tif", rng.integers(0, 9, size=(32, 32)).astype(np.uint8))
    main(["init-model", str(tmp_path / "m"), "--structure", "dna", "--depth", "1", "--width", "2"])
    assert (
        main(
            [
                "predict",
                str(tmp_path / "flat.tif"),
                "-m",
                str(tmp_path / "m"),
                "-o",
                str(tmp_path / "o.tif"),
            ]
        )
        == 2
    )


def test_output_names_folders_and_permissions(tmp_path, rng, make_tiny_model, monkeypatch):
    import os

    from napari_labelfree.cli.predict import image_stem

    assert (
        image_stem("cell.1.ome.tif") == "cell.1"
        and image_stem("2024.05.01_x.czi") == "2024.05.01_x"
    )
    b = make_tiny_model()
    data = rng.normal(size=(1, 1, 6, 16, 16)).astype(np.float32)
    inputs = []
    for name in ("cell.1.ome.tif", "cell.2.ome.tif"):
        write_ome_tiff(
            tmp_path / name, data, channel_names=["bf"], physical_sizes=(0.29, 0.29, 0.29)
        )
        inputs.append(str(tmp_path / name))
    out = tmp_path / "results"
    old = os.umask(0o022)
    try:
        assert main(["predict", *inputs, "-m", str(b.path), "-o", str(out), "--device", "cpu"]) == 0
    finally:
        os.umask(old)
    written = sorted(p.name for p in out.iterdir())
    assert written == ["cell.1_predicted.ome.tif", "cell.2_predicted.ome.tif"]
    # readable by colleagues on a shared server, as any file the user makes
    assert (out / written[0]).stat().st_mode & 0o777 == 0o644
    # one input, -o ending in a separator: a folder, not a file named "single"
    single = f"{tmp_path / 'single'}{os.sep}"
    assert main(["predict", inputs[0], "-m", str(b.path), "-o", single, "--device", "cpu"]) == 0
    assert (tmp_path / "single" / "cell.1_predicted.ome.tif").is_file()


def _predict_args(tmp_path, source, *extra):
    main(["init-model", str(tmp_path / "m"), "--structure", "dna", "--depth", "1", "--width", "2"])
    out = tmp_path / "o.ome.tif"
    return out, ["predict", str(source), "-m", str(tmp_path / "m"), "-o", str(out), *extra]


def test_an_absurd_voxel_size_is_refused_until_forced(tmp_path, rng, capsys):
    src = write_ome_tiff(
        tmp_path / "in.ome.tif", rng.normal(size=(1, 1, 4, 8, 8)).astype(np.float32)
    )
    out, args = _predict_args(tmp_path, src, "--voxel-size", "1.45,1.45,1.45", "--device", "cpu")
    capsys.readouterr()
    assert main(args) == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Z 5x, Y 5x, X 5x (125x the voxels)" in err
    assert err.endswith("(--voxel-size Z,Y,X, --force)")  # the CLI's own hint
    assert main([*args, "--force"]) == 0
    assert open_image(out).shape_tczyx == (1, 1, 4, 8, 8)


@pytest.mark.parametrize("value", ["nan,0.1,0.1", "0.29,inf,0.1", "0,1,1"])
def test_non_finite_voxel_size_is_a_usage_error(tmp_path, value, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["predict", "x.tif", "-m", "m", "-o", str(tmp_path / "o.tif"), "--voxel-size", value])
    assert stop.value.code == 2 and "three positive numbers" in capsys.readouterr().err


def test_an_assumed_voxel_size_is_not_written_as_measured(tmp_path, rng, capsys):
    src = write_ome_tiff(
        tmp_path / "in.ome.tif", rng.normal(size=(1, 1, 4, 8, 8)).astype(np.float32)
    )
    out, args = _predict_args(tmp_path, src, "--device", "cpu")
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "assuming" in err and "(--voxel-size Z,Y,X)" in err
    assert open_image(out).physical_sizes == (None, None, None)


def test_broken_weights_end_in_an_error_not_a_file(tmp_path, two_channel_timelapse, capsys):
    from safetensors.torch import load_file, save_file

    out, args = _predict_args(tmp_path, two_channel_timelapse, "--channel", "1")
    weights = tmp_path / "m" / "weights.safetensors"
    state = load_file(str(weights))
    state["head.bias"].fill_(float("nan"))
    save_file(state, str(weights))
    capsys.readouterr()
    assert main([*args, "--device", "cpu"]) == 2
    assert "NaN or infinite" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".o.ome.tif*"))


def test_every_input_is_checked_before_any_is_predicted(tmp_path, two_channel_timelapse, capsys):
    flat = tmp_path / "flat.ome.tif"
    write_ome_tiff(flat, np.ones((1, 1, 1, 8, 8), np.float32))
    out_dir = tmp_path / "preds"
    main(["init-model", str(tmp_path / "m"), "--structure", "dna", "--depth", "1", "--width", "2"])
    rc = main(
        ["predict", str(two_channel_timelapse), str(flat), "-m", str(tmp_path / "m")]
        + ["--channel", "0", "-o", f"{out_dir}{os.sep}", "--device", "cpu"]
    )
    assert rc == 2 and "2D" in capsys.readouterr().err
    assert not out_dir.exists() or not any(out_dir.iterdir())


_NO_TORCH = """
import sys
{body}
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH" if loaded else "CLEAN")
"""


def _imports_torch(body: str, tmp_path) -> bool:
    env = {**os.environ, "NAPARI_LABELFREE_MODELS": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH.format(body=body)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1] == "TORCH"


def test_model_discovery_and_the_predict_command_import_no_torch(tmp_path):
    body = """
import argparse
import napari_labelfree._widgets
from napari_labelfree.cli import models, predict
from napari_labelfree.core import bundle
from napari_labelfree.core.predict import plan, run, schedule
sub = argparse.ArgumentParser().add_subparsers()
models.register(sub)
predict.register(sub)
bundle.discover_models()
"""
    assert not _imports_torch(body, tmp_path)


def test_help_and_models_import_no_torch(tmp_path):
    body = """
from napari_labelfree.cli import build_parser, main
build_parser()
main(["models"])
"""
    assert not _imports_torch(body, tmp_path)


def test_plain_bad_arguments_are_refused_before_torch_is_imported(tmp_path):
    """--iterations 0 is said at once, not after seconds of importing torch (and never becomes
    the default, as `0 or default` made it)."""
    body = """
from napari_labelfree.cli import main
for bad in (["--iterations", "0"], ["--lr", "nan"], ["--batch-size", "-1"], ["--gpus", "0"]):
    try:
        main(["train", "x.ome.tif", "-o", "m", *bad])
    except SystemExit as e:
        assert e.code == 2, e.code
    else:
        raise AssertionError(bad)
"""
    assert not _imports_torch(body, tmp_path)


def test_evaluate_scores_every_builtin_model_on_one_simulated_file(tmp_path, monkeypatch, capsys):
    # the built-in models name their target "Hoechst 33342" etc.; a simulated file names channels
    # by structure: the target channel is found through the structure table
    monkeypatch.chdir(tmp_path)
    assert main(["synth", "sim.ome.tif", "--shape", "16,48,48", "--seed", "2"]) == 0
    builtins = ["dna", "lamin-b1", "fibrillarin", "tom20", "sec61b", "cellmask"]
    argv = ["evaluate", *builtins, "test=sim.ome.tif", "--signal-channel", "bright-field"]
    assert main([*argv, "-o", "scores.csv"]) == 0
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    scored = {r.split(",")[0] for r in rows[1:] if ",sim.ome.tif," in r}
    assert scored == set(builtins)


def test_output_into_a_pipe_closed_early_ends_quietly(tmp_path):
    """`labelfree models | head`: the reader goes away; no BrokenPipeError traceback."""
    env = {**os.environ, "NAPARI_LABELFREE_MODELS": str(tmp_path)}
    code = "import sys\nfrom napari_labelfree.cli import main\nsys.exit(main(['models']))\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    proc.stdout.close()  # before the command writes its table
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as shells report it
    assert err == ""
