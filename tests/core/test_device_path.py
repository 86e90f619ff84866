"""The accelerator path (frame on the device once; z-score, resampling, tiling there) on CPU tensors.

No GPU is needed: ``uses_device_path`` is forced on, so the same code a GPU runs is checked here
against the numpy path the CPU runs.
"""

import numpy as np
import pytest
import torch

import napari_labelfree.core.predict.volume as predict_volume
from napari_labelfree.core.config import Normalization, TilingConfig
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.predict.run import iter_predict_volume
from napari_labelfree.core.unet import randomize_batchnorm
from napari_labelfree.core.weights import load_network

FP32 = TilingConfig(tile_shape=(16, 32, 32), overlap=0.25, precision="fp32")


def _both_paths(monkeypatch, vol, bundles, voxel_size, tiling=FP32):
    numpy_out = drain(iter_predict_volume(vol, bundles, voxel_size, tiling, "cpu"))
    monkeypatch.setattr(predict_volume, "uses_device_path", lambda dev: True)
    seen = []
    real = predict_volume.to_device
    monkeypatch.setattr(
        predict_volume, "to_device", lambda v, d: seen.append(v.shape) or real(v, d)
    )
    tensor_out = drain(iter_predict_volume(vol, bundles, voxel_size, tiling, "cpu"))
    assert seen == [vol.shape], "the frame goes to the device exactly once"
    return numpy_out, tensor_out


@pytest.mark.parametrize(
    ("shape", "voxel_size"),
    [
        ((12, 40, 36), (0.29, 0.29, 0.29)),  # no resampling, several tiles
        ((10, 90, 70), (0.29, 0.13, 0.13)),  # down-sampled to the model grid (prefilter) and back
        ((5, 24, 24), (0.5, 0.4, 0.4)),  # up-sampled
    ],
)
def test_device_path_matches_the_numpy_path(monkeypatch, make_tiny_model, rng, shape, voxel_size):
    b = make_tiny_model()
    randomize_batchnorm(load_network(b))
    vol = (1000 + 200 * rng.normal(size=shape)).astype(np.uint16)
    ref, got = _both_paths(monkeypatch, vol, [b], voxel_size)
    assert got["dna"].shape == shape and got["dna"].dtype == np.float32
    scale = np.abs(ref["dna"]).max()
    assert np.abs(got["dna"] - ref["dna"]).max() < 1e-4 * scale
    assert np.corrcoef(got["dna"].ravel(), ref["dna"].ravel())[0, 1] > 0.99999


def test_device_path_with_groups_normalizing_differently(monkeypatch, make_tiny_model, rng):
    # two normalizations of one frame: the second group must not see the first's in-place z-score
    from napari_labelfree.core.bundle import save_bundle

    a = make_tiny_model("dna", seed=0)
    b = make_tiny_model("lamin-b1", seed=1)
    spec = b.spec
    spec.normalization = Normalization(scope="center-slices", center_slices=4)
    save_bundle(b.path, spec, load_network(b).state_dict(), overwrite=True)
    from napari_labelfree.core.bundle import open_bundle

    b = open_bundle(b.path)
    vol = rng.normal(size=(16, 32, 32)).astype(np.float32) * np.linspace(1, 3, 16)[:, None, None]
    before = vol.copy()
    ref, got = _both_paths(monkeypatch, vol, [a, b], (0.29, 0.29, 0.29))
    np.testing.assert_array_equal(vol, before)  # the caller's frame is never normalized in place
    for name in ref:
        assert np.abs(got[name] - ref[name]).max() < 1e-4 * np.abs(ref[name]).max()


def test_device_path_refuses_a_constant_frame(monkeypatch, make_tiny_model):
    monkeypatch.setattr(predict_volume, "uses_device_path", lambda dev: True)
    b = make_tiny_model()
    with pytest.raises(LabelFreeError, match="constant"):
        drain(iter_predict_volume(np.ones((8, 16, 16), np.float32), [b], (0.29,) * 3, FP32, "cpu"))


def test_to_device_never_shares_the_callers_memory():
    vol = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = predict_volume.to_device(vol, torch.device("cpu"))
    t += 1
    assert vol[0, 0, 0] == 0 and t.dtype == torch.float32
    u16 = predict_volume.to_device(vol.astype(np.uint16), torch.device("cpu"))
    np.testing.assert_array_equal(u16.numpy(), vol)
