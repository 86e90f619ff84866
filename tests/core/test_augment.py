"""Training augmentation: the same geometry on signal and target, intensity on the signal only,
reproducible by seed, and off when asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_labelfree.core.train import TrainConfig
from napari_labelfree.core.train import augment as aug
from napari_labelfree.core.train.augment import Augmenter, apply_gamma, gaussian_blur
from napari_labelfree.core.train.recipe import Recipe


def batch(n=6, shape=(4, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 1, *shape), generator=g)
    return x, 2.0 * x + 1.0  # the target a voxel-wise function of the signal


def test_geometry_is_the_same_on_signal_and_target(monkeypatch):
    monkeypatch.setattr(aug, "P_INTENSITY", 0.0)  # geometry alone
    x, y = batch()
    ax, ay = Augmenter(np.random.default_rng(0), torch.device("cpu"))(x, y)
    torch.testing.assert_close(ay, 2.0 * ax + 1.0, rtol=0, atol=1e-6)
    assert not torch.equal(ax, x)  # something moved


def test_every_yx_symmetry_occurs_on_square_patches(monkeypatch):
    monkeypatch.setattr(aug, "P_INTENSITY", 0.0)
    x = torch.arange(64, dtype=torch.float32).reshape(1, 1, 1, 8, 8).repeat(200, 1, 1, 1, 1)
    ax, _ = Augmenter(np.random.default_rng(1), torch.device("cpu"))(x, x.clone())
    seen = {tuple(p[0, 0].flatten()[:3].tolist()) for p in ax}
    # 8 symmetries of the square: each maps the corner (0, 1, 2 ...) row to a distinct start
    assert len(seen) == 8


def test_non_square_patches_keep_their_shape(monkeypatch):
    x, y = batch(n=20, shape=(4, 8, 16))
    ax, ay = Augmenter(np.random.default_rng(2), torch.device("cpu"))(x, y)
    assert ax.shape == x.shape and ay.shape == y.shape


def test_intensity_changes_the_signal_only():
    x, y = batch(n=32)
    ax, ay = Augmenter(np.random.default_rng(3), torch.device("cpu"))(x, y)
    # the target's voxels are the original ones, moved: per patch the same multiset of values
    for i in range(len(y)):
        torch.testing.assert_close(ay[i].flatten().sort().values, y[i].flatten().sort().values)
    # the signal is no longer 2x + 1 -> target for some patches (scale, offset, gamma, noise, blur)
    changed = [not torch.allclose(ay[i], 2.0 * ax[i] + 1.0, atol=1e-5) for i in range(len(y))]
    assert sum(changed) >= len(y) // 2
    assert torch.isfinite(ax).all()


def test_reproducible_by_seed():
    x, y = batch()
    a = Augmenter(np.random.default_rng(7), torch.device("cpu"))(x, y)
    b = Augmenter(np.random.default_rng(7), torch.device("cpu"))(x, y)
    c = Augmenter(np.random.default_rng(8), torch.device("cpu"))(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_blur_of_a_few_tenths_of_a_voxel():
    x = torch.zeros(2, 1, 5, 5, 5)
    x[:, 0, 2, 2, 2] = 1.0
    out = gaussian_blur(x, [0.0, 0.5])
    torch.testing.assert_close(out[0], x[0])  # sigma 0: untouched
    w = np.exp(-1 / (2 * 0.25))
    centre = (1 / (1 + 2 * w)) ** 3
    assert float(out[1, 0, 2, 2, 2]) == pytest.approx(centre, rel=1e-5)
    assert float(out[1].sum()) == pytest.approx(1.0, rel=1e-5)  # mass kept away from edges


def test_gamma_keeps_each_patch_range():
    x, _ = batch(n=2)
    out = apply_gamma(x, [1.0, 1.25])
    torch.testing.assert_close(out[0], x[0], rtol=0, atol=1e-5)
    assert float(out[1].min()) == pytest.approx(float(x[1].min()), abs=1e-5)
    assert float(out[1].max()) == pytest.approx(float(x[1].max()), abs=1e-5)
    assert not torch.allclose(out[1], x[1])


def test_off_and_paper_recipe_do_not_augment(tmp_path):
    rng = np.random.default_rng(0)
    for cfg in (TrainConfig(augment=False), TrainConfig.paper()):
        r = Recipe(cfg, tmp_path, rng, torch.device("cpu"), validating=False)
        x, y = batch()
        state = rng.bit_generator.state
        ax, ay = r.batch(x, y)
        assert ax is x and ay is y
        assert rng.bit_generator.state == state  # no draws: the patch stream is untouched
    assert TrainConfig().augment is False  # on request (it lowered held-out r at short budgets)
