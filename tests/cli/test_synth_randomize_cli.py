"""`labelfree synth --randomize`: a domain-randomized field written as OME-TIFF, reproducible by seed."""

from __future__ import annotations

import numpy as np
import pytest

from napari_labelfree.cli import main
from napari_labelfree.core.io import open_image
from napari_labelfree.core.synth.randomize import random_settings

SMALL = "4,8,8"  # um: a field small enough for a quick test


def synth(tmp_path, name: str, *extra: str):
    out = tmp_path / name
    argv = ["synth", str(out), "--randomize", "--extent-um", SMALL, "--structures", "dna,cellmask"]
    assert main([*argv, *extra]) == 0
    src = open_image(out)
    data = np.stack([src.frame(0, c) for c in range(src.n_channels)])
    return src, data


def test_randomized_field_is_reproducible_by_seed_with_its_drawn_modality_and_voxel_size(tmp_path):
    a, da = synth(tmp_path, "a.ome.tif", "--seed", "3")
    b, db = synth(tmp_path, "b.ome.tif", "--seed", "3")
    s = random_settings(3)
    # the transmitted-light channel is named by the drawn modality, then one channel per structure
    assert a.channel_names == [s.modality, "dna", "cellmask"]
    assert a.physical_sizes == pytest.approx((s.z_step_um, s.pixel_um, s.pixel_um), rel=1e-5)
    assert np.isfinite(da).all() and da[0].std() > 0 and da[1].max() > da[1].min()
    np.testing.assert_array_equal(da, db)  # same seed, same field
    c, dc = synth(tmp_path, "c.ome.tif", "--seed", "4")
    assert dc.shape != da.shape or not np.array_equal(dc, da)


def test_randomized_modality_can_be_fixed(tmp_path):
    src, data = synth(tmp_path, "pc.ome.tif", "--seed", "3", "--modality", "phase-contrast")
    assert src.channel_names[0] == "phase-contrast"
    assert src.physical_sizes[1] == pytest.approx(random_settings(3).pixel_um, rel=1e-5)


def test_extent_without_randomize_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "x.ome.tif"
    assert main(["synth", str(out), "--extent-um", SMALL]) != 0
    err = capsys.readouterr().err
    assert "--randomize" in err and "Traceback" not in err
    assert not out.exists()
