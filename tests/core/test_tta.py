"""Test-time augmentation: an equivariant predictor is unchanged; otherwise the mean of the variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_labelfree.core.bundle import init_bundle
from napari_labelfree.core.config import Architecture, ModelSpec, TilingConfig
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.predict import volume as predict_volume
from napari_labelfree.core.predict.run import iter_predict_volume
from napari_labelfree.core.predict.tta import forward, inverse, tta_predictor, variants


def test_variants_are_distinct_and_invertible():
    t = torch.arange(2 * 4 * 8 * 8, dtype=torch.float32).reshape(1, 2, 4, 8, 8)
    for mode, n in (("none", 1), ("yx", 8), ("yxz", 16)):
        vs = variants(mode)
        assert len(vs) == n
        outs = {tuple(forward(t, *v).flatten().tolist()) for v in vs}
        assert len(outs) == n
        for v in vs:
            torch.testing.assert_close(inverse(forward(t, *v), *v), t, rtol=0, atol=0)


def test_rotations_swap_y_and_x_of_non_square_tiles():
    t = torch.zeros(1, 1, 4, 8, 16)
    assert forward(t, False, False, 1).shape == (1, 1, 4, 16, 8)


def test_averages_the_variants_of_a_non_equivariant_predictor():
    calls = []

    def ramp(b: torch.Tensor) -> torch.Tensor:  # depends on position along X: not equivariant
        calls.append(b.shape)
        return b * torch.arange(b.shape[-1], dtype=b.dtype)

    x = torch.ones(1, 1, 2, 4, 4)
    out = tta_predictor(ramp, "yx")(x)
    assert len(calls) == 8
    # averaged over the 8 symmetries of the square, a ramp along X becomes the same everywhere
    torch.testing.assert_close(out, torch.full_like(x, 1.5))


@pytest.fixture
def tiny_bundle(tmp_path):
    spec = ModelSpec(
        "dna", voxel_size_um=(1.0, 1.0, 1.0), architecture=Architecture(depth=2, width=4)
    )
    return init_bundle(tmp_path / "m", spec)


def test_identity_predictor_tta_equals_no_tta(monkeypatch, tiny_bundle):
    # an identity network is equivariant: TTA must give exactly what a plain prediction gives
    monkeypatch.setattr(
        predict_volume, "make_predictor", lambda nets, dev, dtype=None: lambda b: b.float()
    )
    vol = np.random.default_rng(0).normal(size=(8, 20, 28)).astype(np.float32)
    outs = {}
    for mode in ("none", "yx", "yxz"):
        tiling = TilingConfig(tile_shape=(8, 16, 16), precision="fp32", tta=mode)
        res = drain(iter_predict_volume(vol, [tiny_bundle], (1.0, 1.0, 1.0), tiling, "cpu"))
        outs[mode] = next(iter(res.values()))
    np.testing.assert_allclose(outs["yx"], outs["none"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(outs["yxz"], outs["none"], rtol=0, atol=1e-6)


def test_real_network_tta_differs_and_is_finite(tiny_bundle):
    vol = np.random.default_rng(1).normal(size=(8, 16, 16)).astype(np.float32)
    res = {}
    for mode in ("none", "yx"):
        tiling = TilingConfig(precision="fp32", tta=mode)
        out = drain(iter_predict_volume(vol, [tiny_bundle], (1.0, 1.0, 1.0), tiling, "cpu"))
        res[mode] = next(iter(out.values()))
    assert np.isfinite(res["yx"]).all()
    assert not np.allclose(res["yx"], res["none"])


def test_unknown_mode_is_refused():
    with pytest.raises(LabelFreeError, match="test-time augmentation"):
        TilingConfig(tta="sideways")
