import numpy as np
import pytest

from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.preprocess import (
    needs_resampling,
    resampled_shape,
    resize,
    to_model_grid,
    zscore,
)


def test_zscore_has_zero_mean_unit_std(rng):
    v = rng.normal(100, 7, size=(5, 20, 20)).astype(np.uint16)
    z = zscore(v)
    assert z.dtype == np.float32
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5


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
