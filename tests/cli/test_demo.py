"""`labelfree demo`: the main job runs end to end (tiny model, small time-lapse)."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_labelfree.cli import main
from napari_labelfree.cli.demo import merge


def test_demo_end_to_end(tmp_path, make_tiny_model, capsys):
    dna = make_tiny_model("dna", "blue")
    tom = make_tiny_model("tom20", "green")
    out = tmp_path / "demo"
    rc = main(
        [
            "demo",
            "-o",
            str(out),
            "-m",
            str(dna.path),
            "-m",
            str(tom.path),
            "--timepoints",
            "2",
            "--shape",
            "16,64,64",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dna" in printed and "tom20" in printed and "Pearson r" in printed
    with tifffile.TiffFile(out / "predictions.ome.tif") as f:
        assert f.series[0].shape == (2, 2, 16, 64, 64)
    assert (out / "montage.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "scores.csv").read_text().startswith("structure,pearson_r,nl2")
    # nothing is overwritten without being asked
    assert main(["demo", "-o", str(out), "-m", str(dna.path), "--timepoints", "1"]) == 2


def test_merge_is_additive_and_clipped():
    a = np.array([[1.0, 0.0]])
    b = np.array([[1.0, 1.0]])
    rgb = merge([a, b], [(1.0, 0.0, 0.0), (1.0, 1.0, 0.0)])
    np.testing.assert_allclose(rgb[0, 0], [1.0, 1.0, 0.0])  # red + yellow, clipped
    np.testing.assert_allclose(rgb[0, 1], [1.0, 1.0, 0.0])
