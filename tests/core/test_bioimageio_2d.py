"""bioimage.io packages of 2D models: axes b, c, y, x; validates offline; imports back equal."""

from __future__ import annotations

import importlib.util
import socket
import zipfile

import numpy as np
import pytest
import torch

from napari_labelfree.core.bundle import open_bundle, save_bundle
from napari_labelfree.core.config import Architecture, ModelSpec, TilingConfig
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.io import from_array
from napari_labelfree.core.predict.run import iter_predict
from napari_labelfree.core.unet import UNet3D, randomize_batchnorm

pytest.importorskip("bioimageio.spec", reason="bioimageio.spec absent (extra 'bioimageio')")

from napari_labelfree.core.interop.bioimageio import import_package  # noqa: E402
from napari_labelfree.core.interop.bioimageio_export import _zmuv, export_package  # noqa: E402

PIXEL = (0.2, 0.25)  # Y, X


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _bundle(folder, kind="unet2d", planes=1, projection=""):
    arch = Architecture(name=kind, depth=2, width=8, in_planes=planes)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        net = randomize_batchnorm(UNet3D(arch), seed=5)
    spec = ModelSpec(
        "dna",
        voxel_size_um=(PIXEL[0], *PIXEL),
        architecture=arch,
        target_projection=projection,
    )
    save_bundle(folder, spec, net.state_dict())
    return open_bundle(folder)


def test_2d_package_validates_and_imports_back_equal(tmp_path):
    from bioimageio.spec import load_description
    from bioimageio.spec.model import v0_5 as bm

    bundle = _bundle(tmp_path / "m2d")
    path = export_package(bundle, tmp_path / "m2d.zip", authors=["Ada Lovelace"])
    descr = load_description(path, perform_io_checks=True)
    assert isinstance(descr, bm.ModelDescr), descr.validation_summary.display()
    assert descr.validation_summary.status == "valid-format"
    (inp,), (out,) = descr.inputs, descr.outputs
    assert [str(a.id) for a in inp.axes] == ["batch", "channel", "y", "x"]
    assert [str(a.id) for a in out.axes] == ["batch", "channel", "y", "x"]
    assert [a.scale for a in inp.axes[2:]] == list(PIXEL)

    # the package's files alone (its unet.py, weights, 4D test tensors) reproduce its output
    with zipfile.ZipFile(path) as z:
        z.extractall(tmp_path / "files")
    loader = importlib.util.spec_from_file_location("standalone_unet", tmp_path / "files/unet.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    kwargs = dict(descr.weights.pytorch_state_dict.architecture.kwargs)
    net = module.unet3d(**kwargs)
    net.load_state_dict(torch.load(tmp_path / "files/weights.pt", weights_only=True))
    test_in = np.load(tmp_path / "files/test_input.npy")
    assert test_in.ndim == 4
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(_zmuv(test_in))).numpy()
    assert np.abs(got - np.load(tmp_path / "files/test_output.npy")).max() <= 1e-5

    back = import_package(path, tmp_path / "back")
    assert back.spec.kind == "unet2d" and back.spec.voxel_size_um[1:] == PIXEL
    image = np.random.default_rng(0).normal(500, 40, size=(36, 44)).astype(np.float32)
    src = from_array(image, "YX", physical_sizes=(None, *PIXEL))
    fp32 = TilingConfig(precision="fp32")
    a = drain(iter_predict(src, bundle, tiling=fp32, device="cpu"))["dna"]
    b = drain(iter_predict(src, back, tiling=fp32, device="cpu"))["dna"]
    assert a.shape == (1, 1, 36, 44) and np.abs(a - b).max() <= 1e-5


def test_25d_export_is_refused_in_one_line(tmp_path):
    bundle = _bundle(tmp_path / "m25", "unet2.5d", 3)
    with pytest.raises(LabelFreeError, match="2.5D"):
        export_package(bundle, tmp_path / "m25.zip")
    assert not (tmp_path / "m25.zip").exists()
    # a 3D network whose planes' maximum is the prediction: a package would describe the stack
    bundle = _bundle(tmp_path / "m3p", "unet3d", 1, "max")
    with pytest.raises(LabelFreeError, match="max over z of its network's planes"):
        export_package(bundle, tmp_path / "m3p.zip")
    assert not (tmp_path / "m3p.zip").exists()
