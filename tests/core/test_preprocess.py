import numpy as np
import pytest
import torch

from napari_labelfree.core.config import Normalization
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.preprocess import (
    gaussian_filter_tensor,
    needs_resampling,
    normalize,
    normalize_tensor_,
    resampled_shape,
    resize,
    resize_tensor,
    to_model_grid,
    zscore,
)


def test_zscore_has_zero_mean_unit_std(rng):
    v = rng.normal(100, 7, size=(5, 20, 20)).astype(np.uint16)
    z = zscore(v)
    assert z.dtype == np.float32
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5


def test_zscore_statistics_taken_in_slabs_match_numpy(rng, monkeypatch):
    import napari_labelfree.core.preprocess as preprocess

    monkeypatch.setattr(preprocess, "_STATS_CHUNK", 37)  # slabs that split planes unevenly
    v = rng.normal(1000, 50, size=(4, 30, 30)).astype(np.float32)
    region = v[1:3, 5:25]  # not contiguous: the statistics of the region, not of v
    z = zscore(v, region)
    expected = (v - region.mean(dtype=np.float64)) / region.std(dtype=np.float64)
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-5)


def test_zscore_never_changes_the_callers_image(rng):
    v = rng.normal(100, 7, size=(3, 8, 8)).astype(np.float32)
    before = v.copy()
    zscore(v)
    zscore(v[:, 2:])  # a view of it
    np.testing.assert_array_equal(v, before)


def test_an_image_with_nan_is_a_user_error():
    v = np.ones((3, 4, 4), np.float32)
    v[1, 2, 2] = np.nan
    with pytest.raises(LabelFreeError, match="NaN"):
        zscore(v)


def test_constant_image_is_a_user_error():
    with pytest.raises(LabelFreeError, match="constant"):
        zscore(np.ones((3, 4, 4)))


def test_resampled_shape_follows_voxel_sizes():
    # a 0.065 um/px time-lapse seen by a model trained at 0.29 um
    assert resampled_shape((20, 580, 290), (0.29, 0.065, 0.13), (0.29, 0.29, 0.29)) == (
        20,
        130,
        130,
    )


def test_small_differences_do_not_resample():
    assert not needs_resampling((0.29, 0.108, 0.108), (0.29, 0.109, 0.107))
    assert needs_resampling((0.29, 0.108, 0.108), (0.29, 0.29, 0.29))


def test_round_trip_keeps_a_smooth_image():
    z, y, x = np.meshgrid(
        np.linspace(0, 1, 24), np.linspace(0, 2, 96), np.linspace(0, 2, 80), indexing="ij"
    )
    v = (np.sin(3 * y) * np.cos(2 * x) + z).astype(np.float32)
    down = to_model_grid(v, (0.29, 0.1, 0.1), (0.29, 0.29, 0.29))
    assert down.shape == (24, 33, 28)
    back = resize(down, v.shape)
    assert back.shape == v.shape
    r = np.corrcoef(back.ravel(), v.ravel())[0, 1]
    assert r > 0.99


def test_resize_to_same_shape_is_identity(rng):
    v = rng.normal(size=(4, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(resize(v, v.shape), v)


# the device path's tensor preprocessing against the numpy path (run here on CPU tensors)
@pytest.mark.parametrize("sigma", [(0.8, 1.5, 0.0), (3.0, 0.0, 0.7), (2.0, 2.0, 2.0)])
def test_gaussian_filter_tensor_matches_scipy(sigma, rng):
    from scipy.ndimage import gaussian_filter

    v = (1000 + 100 * rng.normal(size=(9, 40, 33))).astype(np.float32)
    got = gaussian_filter_tensor(torch.from_numpy(v), sigma).numpy()
    np.testing.assert_allclose(got, gaussian_filter(v, sigma, mode="nearest"), rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 20, 70), (18, 13, 33), (3, 40, 33), (9, 40, 33)])
def test_resize_tensor_matches_resize(shape, rng):
    v = (1000 + 100 * rng.normal(size=(9, 40, 33))).astype(np.float32)
    got = resize_tensor(torch.from_numpy(v), shape).numpy()
    np.testing.assert_allclose(got, resize(v, shape), rtol=1e-6)


@pytest.mark.parametrize(
    "norm", [Normalization(), Normalization(scope="center-slices", center_slices=4)]
)
def test_normalize_tensor_matches_normalize(norm, rng):
    v = (30000 + 20 * rng.normal(size=(12, 16, 16))).astype(np.float32)
    v *= np.linspace(1, 1.01, 12, dtype=np.float32)[:, None, None]
    want = normalize(v, norm, (0.58, 0.2, 0.2), (0.29, 0.29, 0.29))
    got = normalize_tensor_(torch.from_numpy(v.copy()), norm, (0.58, 0.2, 0.2), (0.29, 0.29, 0.29))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4)


def test_normalize_tensor_refuses_what_normalize_refuses():
    with pytest.raises(LabelFreeError, match="constant"):
        normalize_tensor_(torch.ones(4, 5, 6))
    bad = torch.zeros(4, 5, 6)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(LabelFreeError, match="NaN"):
        normalize_tensor_(bad)
