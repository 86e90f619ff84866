"""Metric definitions against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.metrics import nl2, pearson_r, score


def test_pearson_r_hand_computed():
    # x = [1, 2, 3, 4], y = [2, 1, 4, 3]: deviations (-1.5,-0.5,0.5,1.5) and (-0.5,-1.5,1.5,0.5);
    # sum of products = 0.75 + 0.75 + 0.75 + 0.75 = 3.0; sums of squares = 5 and 5 -> r = 3/5.
    assert pearson_r(np.array([1, 2, 3, 4]), np.array([2, 1, 4, 3])) == pytest.approx(0.6)


def test_pearson_r_affine_invariance_and_sign():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 5, 6))
    assert pearson_r(3.0 * t + 7.0, t) == pytest.approx(1.0)
    assert pearson_r(-t, t) == pytest.approx(-1.0)


def test_pearson_r_constant_is_nan():
    assert math.isnan(pearson_r(np.zeros(5), np.arange(5.0)))


def test_nl2_blank_prediction_scores_one():
    rng = np.random.default_rng(1)
    target = rng.gamma(2.0, 50.0, size=(3, 8, 8)) + 100.0  # raw intensities, any offset and scale
    assert nl2(np.zeros_like(target), target) == pytest.approx(1.0)


def test_nl2_perfect_prediction_scores_zero():
    target = np.array([1.0, 2.0, 3.0, 6.0])
    z = (target - target.mean()) / target.std()
    assert nl2(z, target) == pytest.approx(0.0, abs=1e-12)


def test_nl2_hand_computed():
    # target [1, 3]: mean 2, population std 1 -> z = [-1, 1]; sum z^2 = 2.
    # prediction [0, 2]: differences [1, 1] -> sum of squares 2 -> nl2 = 2 / 2 = 1.0.
    assert nl2(np.array([0.0, 2.0]), np.array([1.0, 3.0])) == pytest.approx(1.0)
    # prediction [-1, 0]: differences [0, -1] -> 1 / 2.
    assert nl2(np.array([-1.0, 0.0]), np.array([1.0, 3.0])) == pytest.approx(0.5)
    # prediction [-2, 2] (too contrasted): differences [-1, 1] -> 2 / 2; r is still 1.
    s = score(np.array([-2.0, 2.0]), np.array([1.0, 3.0]))
    assert s["nl2"] == pytest.approx(1.0) and s["pearson_r"] == pytest.approx(1.0)


def test_shape_mismatch_and_constant_target_raise():
    with pytest.raises(LabelFreeError, match="differ"):
        nl2(np.zeros(3), np.zeros(4))
    with pytest.raises(LabelFreeError, match="constant"):
        nl2(np.zeros(3), np.ones(3))


def test_score_all_perfect_and_blank_predictions():
    from napari_labelfree.core.metrics import SCORES, score_all

    rng = np.random.default_rng(3)
    target = rng.gamma(2.0, 50.0, size=(9, 12, 12)) + 100.0
    z = (target - target.mean()) / target.std()
    span = z.max() - z.min()
    perfect = score_all(z, target)
    assert list(perfect) == list(SCORES)
    assert perfect["pearson_r"] == pytest.approx(1.0)
    assert perfect["nl2"] == pytest.approx(0.0, abs=1e-12)
    assert perfect["ssim"] == pytest.approx(1.0)
    assert perfect["psnr"] == math.inf and perfect["nrmse"] == pytest.approx(0.0, abs=1e-12)
    blank = score_all(np.zeros_like(target), target)
    # blank: MSE against the z-scored target is exactly 1 -> PSNR = 10 log10(range^2), NRMSE = 1/range
    assert blank["nl2"] == pytest.approx(1.0)
    assert blank["psnr"] == pytest.approx(10 * math.log10(span**2))
    assert blank["nrmse"] == pytest.approx(1.0 / span)
    assert blank["ssim"] < 0.1


def test_score_all_ssim_is_scikit_images_on_the_z_scored_target_2d_and_3d():
    from skimage.metrics import structural_similarity

    from napari_labelfree.core.metrics import score_all

    rng = np.random.default_rng(4)
    for shape, win in (((40, 50), 7), ((5, 30, 30), 5)):  # a 5-plane stack: a 5-voxel window
        target = rng.normal(size=shape) * 3 + 10
        z = (target - target.mean()) / target.std()
        pred = 0.7 * z + 0.3 * rng.normal(size=shape)
        want = structural_similarity(z, pred, win_size=win, data_range=z.max() - z.min())
        assert score_all(pred, target)["ssim"] == pytest.approx(want)
        # one plane as a stack of one (a projection target): the plane's 2D SSIM, not NaN
        one = score_all(pred[None], target[None])["ssim"] if len(shape) == 2 else None
        assert one is None or one == pytest.approx(want)
