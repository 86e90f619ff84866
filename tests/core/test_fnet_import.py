"""Importing pytorch_fnet models: checked against files written by pytorch_fnet's own code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_labelfree.core.config import Architecture, ModelSpec, Normalization
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.interop.fnet import (
    NeedsDataVoxelSize,
    import_fnet,
    read_fnet_model,
)
from napari_labelfree.core.preprocess import center_slices, normalize
from napari_labelfree.core.unet import UNet3D, randomize_batchnorm
from napari_labelfree.core.weights import load_network

# ../shared/data beside the repository, as tests/conftest.py's SHARED_DATA
FNET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fnet-models"
RELEASE_1 = FNET / "release_1"
MASTER = FNET / "master"
needs_fnet = pytest.mark.skipif(
    not (FNET / "PROVENANCE.md").is_file(),
    reason=f"pytorch_fnet model folders absent ({FNET})",
)


def _tif(path):
    import tifffile

    return tifffile.imread(path).astype(np.float32)


def _forward(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x))[None, None])[0, 0].numpy()


def _triang(n: int) -> np.ndarray:
    # scipy.signal.windows.triang, which pytorch_fnet's predict_piecewise blends with
    from scipy.signal.windows import triang

    return triang(n).astype(np.float32)


def _fnet_piecewise(net, x: np.ndarray, piece_z: int = 32, overlap: int = 16) -> np.ndarray:
    """pytorch_fnet master's Model.predict_piecewise for a stack of at most 512x512 pixels.

    Pieces of ``piece_z`` slices stepping by ``piece_z - overlap``, the last moved back to end at
    the stack's end; each weighted by the product of triangular windows over Z, Y and X.
    """
    nz = x.shape[0]
    weight = _triang(piece_z)[:, None, None] * _triang(x.shape[1])[:, None] * _triang(x.shape[2])
    out = np.zeros(x.shape, np.float32)
    total = np.zeros(x.shape, np.float32)
    offset = 0
    while True:
        end = offset + piece_z
        out[offset:end] += _forward(net, x[offset:end]) * weight
        total[offset:end] += weight
        if end == nz:
            break
        offset += piece_z - overlap
        if offset + piece_z > nz:
            offset = nz - piece_z
    return out / total


@needs_fnet
def test_release_1_network_reproduces_fnet_prediction(tmp_path):
    bundle, warning = import_fnet(RELEASE_1 / "saved_models" / "dna", tmp_path / "dna")
    spec = bundle.spec
    assert spec.structure == "dna" and spec.colormap == "blue"
    assert spec.architecture == Architecture(depth=2, width=8)
    assert spec.normalization == Normalization(scope="per-image")
    # Resizer((1, 0.37241, 0.37241)) on the paper's (0.29, 0.108, 0.108) um data, assumed
    assert spec.voxel_size_um == pytest.approx((0.29, 0.108 / 0.37241, 0.108 / 0.37241))
    assert warning and "0.29, 0.108, 0.108" in warning
    assert spec.provenance["data_voxel_size_assumed"] is True
    assert spec.provenance["imported_from"] == "pytorch_fnet release_1"

    net = load_network(bundle)  # precision="fp32": the plain float32 network
    got = _forward(net, _tif(RELEASE_1 / "network_input_fnet.tif"))
    expected = _tif(RELEASE_1 / "prediction_fnet.tif")
    assert np.abs(got - expected).max() <= 1e-4


@needs_fnet
def test_master_network_reproduces_fnet_piecewise_prediction(tmp_path):
    bundle, warning = import_fnet(
        MASTER / "model_dna" / "model.p", tmp_path / "dna", data_voxel_size=(0.3, 0.2, 0.2)
    )
    assert warning is None
    assert bundle.spec.structure == "dna"  # model_dna -> dna
    assert bundle.spec.voxel_size_um == (0.3, 0.2, 0.2)  # no Resizer: the data's own
    assert bundle.spec.normalization == Normalization(scope="center-slices", center_slices=32)
    net = load_network(bundle)
    x = _tif(MASTER / "network_input_fnet.tif")  # 40 slices: pieces 0-32 and 8-40
    got = _fnet_piecewise(net, x)  # precision="fp32"
    expected = _tif(MASTER / "prediction_fnet.tif")
    assert np.abs(got - expected).max() <= 1e-4


@needs_fnet
def test_center_slices_normalization_matches_norm_around_center():
    signal = _tif(MASTER / "signal.tif")
    got = normalize(signal, Normalization(scope="center-slices"))
    assert np.abs(got - _tif(MASTER / "network_input_fnet.tif")).max() <= 1e-4  # precision="fp32"


def test_center_slices_window_follows_model_voxel_size(rng):
    assert center_slices(40, 32) == slice(4, 36)
    assert center_slices(20, 32) == slice(0, 20)  # fewer slices than the window: all of them
    volume = rng.normal(size=(64, 8, 8)).astype(np.float32)
    volume[:16] += 50.0  # out of the middle: must not move the statistics
    norm = Normalization(scope="center-slices", center_slices=16)
    # data at 0.1 um z-steps, model at 0.2: 16 model slices are the middle 32 data slices
    got = normalize(volume, norm, voxel_size=(0.1, 1, 1), model_voxel_size=(0.2, 1, 1))
    middle = volume[16:48]
    expected = (volume - middle.mean()) / middle.std()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_old_normalization_config_loads_unchanged():
    old = {"structure": "dna", "normalization": {"method": "zscore", "scope": "per-image"}}
    assert ModelSpec.from_dict(old).normalization == Normalization()
    with pytest.raises(LabelFreeError, match="upgrade"):
        ModelSpec.from_dict({"structure": "dna", "normalization": {"scope": "per-tile"}})
    with pytest.raises(LabelFreeError, match="upgrade"):
        ModelSpec.from_dict({"structure": "dna", "normalization": {"clip": 3}})


@needs_fnet
def test_master_without_data_voxel_size_is_refused(tmp_path):
    with pytest.raises(NeedsDataVoxelSize, match="voxel size"):
        import_fnet(MASTER / "model_dna", tmp_path / "dna")
    assert not (tmp_path / "dna").exists()


@needs_fnet
def test_given_data_voxel_size_is_divided_by_the_resizer(tmp_path):
    bundle, warning = import_fnet(
        RELEASE_1 / "saved_models" / "dna",
        tmp_path / "m",
        structure="Lamin_B1",
        data_voxel_size=(0.3, 0.1, 0.1),
    )
    assert warning is None
    assert bundle.spec.voxel_size_um == pytest.approx((0.3, 0.1 / 0.37241, 0.1 / 0.37241))
    assert bundle.spec.structure == "Lamin_B1" and bundle.spec.colormap == "cyan"


def _fnet_folder(tmp_path, nn_state, transforms=None, **extra):
    folder = tmp_path / "saved_models" / "nucleoli"
    folder.mkdir(parents=True)
    d = {"nn_module": "fnet_nn_3d_params", "nn_kwargs": {"depth": 2, "mult_chan": 8}}
    d.update(nn_state=nn_state, count_iter=3, **extra)
    torch.save(d, folder / "model.p")
    options = {"transform_signal": transforms or ["fnet.transforms.normalize"]}
    (folder / "train_options.json").write_text(json.dumps(options))
    return folder


def _fnet_state(net: UNet3D) -> dict:
    """UNet3D's weights under pytorch_fnet's names (the inverse of the import's renaming)."""
    names = {"encode": "sub_2conv_more", "decode": "sub_2conv_less", "down": "conv_down"}
    names |= {"down_bn": "bn0", "up": "convt", "up_bn": "bn1", "below": "sub_u"}
    state = {}
    for key, value in net.state_dict().items():
        parts = key.split(".")
        head = ["conv_out"] if parts[0] == "head" else ["net_recurse"]
        state[".".join(head + [names.get(p, p) for p in parts[1:]])] = value
    return state


def test_renaming_is_exact_for_any_weights(tmp_path):
    net = randomize_batchnorm(UNet3D(Architecture(depth=2, width=8)), seed=3)
    folder = _fnet_folder(tmp_path, _fnet_state(net))
    model = read_fnet_model(folder)
    assert model.format == "release_1" and model.resize_factors is None
    for key, value in net.state_dict().items():
        assert torch.equal(model.state_dict[key], value), key


def test_file_needing_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    folder = _fnet_folder(tmp_path, {"conv_out.weight": torch.zeros(1)}, trap=Payload())
    with pytest.raises(LabelFreeError, match="running code"):
        import_fnet(folder, tmp_path / "out", data_voxel_size=(1, 1, 1))
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_unsupported_transform_and_network_are_refused(tmp_path):
    net = UNet3D(Architecture(depth=2, width=8))
    folder = _fnet_folder(tmp_path, _fnet_state(net), ["fnet.transforms.Capper(0, 5)"])
    with pytest.raises(LabelFreeError, match="Capper"):
        read_fnet_model(folder)
    shutil.rmtree(tmp_path / "saved_models")
    folder = _fnet_folder(tmp_path, _fnet_state(net), nn_module="fnet_nn_2d")
    with pytest.raises(LabelFreeError, match="fnet_nn_2d"):
        read_fnet_model(folder)
    shutil.rmtree(tmp_path / "saved_models")
    folder = _fnet_folder(tmp_path, _fnet_state(net))
    (folder / "train_options.json").unlink()
    with pytest.raises(LabelFreeError, match="train_options.json"):
        import_fnet(folder / "model.p", tmp_path / "out")


def test_broken_weights_and_absurd_zoom_are_refused_on_import(tmp_path):
    """All-NaN weights and a zoom of 1e-9 were imported, and refused only by predict later."""
    net = UNet3D(Architecture(depth=2, width=8))
    state = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in _fnet_state(net).items()
    }
    folder = _fnet_folder(tmp_path, state)
    with pytest.raises(LabelFreeError, match="NaN or infinite values.*cannot be imported"):
        import_fnet(folder, tmp_path / "out", data_voxel_size=(0.29, 0.29, 0.29))
    shutil.rmtree(tmp_path / "saved_models")
    folder = _fnet_folder(
        tmp_path, _fnet_state(net), ["fnet.transforms.normalize", "fnet.transforms.Resizer(1e-9)"]
    )
    with pytest.raises(LabelFreeError, match="resample by more than 100x"):
        import_fnet(folder, tmp_path / "out", data_voxel_size=(0.29, 0.29, 0.29))
    assert not (tmp_path / "out").exists()
