"""The simulator: determinism, channels, bright-field is not fluorescence, division, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_labelfree.core import synth
from napari_labelfree.core.errors import LabelFreeError


@pytest.fixture(scope="module")
def field() -> synth.SimulatedImage:
    return synth.simulate((32, 128, 128), seed=0)


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def test_contract(field):
    assert field.data.shape == (1, 7, 32, 128, 128)
    assert field.data.dtype == np.float32
    assert field.channel_names == ["bright-field", *synth.STRUCTURES]
    assert field.voxel_size == (0.29, 0.108, 0.108)
    assert set(field.masks) == set(synth.STRUCTURES)
    assert all(
        m.shape == (32, 128, 128) and m.dtype == bool and m.any() for m in field.masks.values()
    )


def test_deterministic():
    a = synth.simulate((12, 48, 48), seed=5, structures=("dna", "tom20"))
    b = synth.simulate((12, 48, 48), seed=5, structures=("dna", "tom20"))
    c = synth.simulate((12, 48, 48), seed=6, structures=("dna", "tom20"))
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert a.channel_names == ["bright-field", "dna", "tom20"]


def test_brightfield_is_not_a_copy_of_fluorescence(field):
    bf = field.data[0, 0]
    for i, name in enumerate(field.channel_names[1:], start=1):
        fl = field.data[0, i]
        assert abs(_r(bf, fl)) < 0.6, name
        scores = {m: _r(fl, mask) for m, mask in field.masks.items()}
        assert max(scores, key=scores.get) == name, (name, scores)


def test_brightfield_has_through_focus_contrast(field):
    bf = synth.simulate((32, 128, 128), seed=0, structures=(), noise=False).data[0, 0]
    contrast = bf.std(axis=(1, 2)) / bf.mean()
    assert contrast.max() > 0.02  # cells are visible
    assert 0.9 < bf.mean() / 3000 < 1.1  # transparent specimen: background level preserved


def test_dic_modality():
    im = synth.simulate((16, 64, 64), structures=("dna",), modality="dic")
    assert im.channel_names == ["dic", "dna"]


def test_absorber_darkens_and_phase_is_invisible_in_focus():
    dn = np.zeros((32, 64, 64), np.float32)
    ab = np.zeros_like(dn)
    ab[16, 28:36, 28:36] = 1e-3
    image = synth.transmitted_light(dn, ab, (0.29, 0.108, 0.108))
    assert image[16, 32, 32] < 1.0
    dn[16, 28:36, 28:36], ab[:] = 0.02, 0
    image = synth.transmitted_light(dn, ab, (0.29, 0.108, 0.108))
    # weak phase: contrast flips sign through focus
    assert (image[12, 32, 32] - 1) * (image[20, 32, 32] - 1) < 0


def test_matches_waveorder_if_installed():
    wo = pytest.importorskip("waveorder.models.phase_thick_3d")
    shape = (16, 32, 32)
    h_re, h_im = wo.calculate_transfer_function(shape, 0.108, 0.29, 0.532, 0, 1.337, 0.55, 1.2)
    m_re, m_im = synth.weak_object_transfer_functions(shape, (0.29, 0.108, 0.108))
    np.testing.assert_allclose(m_re, h_re.numpy(), atol=1e-5 * float(np.abs(m_re).max()))
    np.testing.assert_allclose(m_im, h_im.numpy(), atol=1e-5 * float(np.abs(m_im).max()))


def _nuclei(volume: np.ndarray) -> int:
    smooth = ndimage.gaussian_filter(volume, (1, 3, 3))
    lo, hi = np.percentile(smooth, [50, 99.5])
    labels, n = ndimage.label(smooth > lo + 0.35 * (hi - lo))
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes > 200).sum())


def test_timelapse_with_division():
    im = synth.simulate(
        (20, 128, 128), (0.29, 0.1, 0.1), ("dna",), seed=3, timepoints=4, cell_height=5.0
    )
    assert im.data.shape == (4, 2, 20, 128, 128)
    assert im.masks["dna"].shape == (20, 128, 128)
    assert not np.array_equal(im.data[0, 0], im.data[-1, 0])  # things move
    assert _nuclei(im.data[-1, 1]) > _nuclei(im.data[0, 1])  # one nucleus became two


def test_bad_arguments():
    with pytest.raises(LabelFreeError, match="unknown structure"):
        synth.simulate((8, 32, 32), structures=("dna", "golgi"))
    with pytest.raises(LabelFreeError, match="modality"):
        synth.simulate((8, 32, 32), modality="phase")


def test_cli_writes_ome_tiff(tmp_path, capsys):
    from napari_labelfree.cli import main
    from napari_labelfree.core.io import open_image

    out = tmp_path / "sim.ome.tif"
    argv = [
        "synth",
        str(out),
        "--shape",
        "12,48,40",
        "--voxel-size",
        "0.29,0.065,0.065",
        "--timepoints",
        "2",
        "--structures",
        "dna,cellmask",
        "--seed",
        "4",
    ]
    assert main(argv) == 0
    src = open_image(out)
    assert src.shape_tczyx == (2, 3, 12, 48, 40)
    assert src.channel_names == ["bright-field", "dna", "cellmask"]
    np.testing.assert_allclose(src.physical_sizes, (0.29, 0.065, 0.065), rtol=1e-6)
    ref = synth.simulate(
        (12, 48, 40), (0.29, 0.065, 0.065), ("dna", "cellmask"), seed=4, timepoints=2
    )
    np.testing.assert_array_equal(src.frame(1, 2), ref.data[1, 2])
    assert main(argv) == 2  # no silent overwrite
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert main(["synth", str(tmp_path / "b.ome.tif"), "--structures", "golgi"]) == 2
