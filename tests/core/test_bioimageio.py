"""bioimage.io packages: export validates offline, its test tensors reproduce, import round-trips."""

from __future__ import annotations

import importlib.util
import os
import socket
import zipfile

import numpy as np
import pytest
import torch

from napari_labelfree.core.bundle import open_bundle, save_bundle
from napari_labelfree.core.config import Architecture, ModelSpec, Normalization, TilingConfig
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.predict.run import iter_predict_volume
from napari_labelfree.core.unet import UNet3D, randomize_batchnorm
from napari_labelfree.core.weights import load_network

pytest.importorskip("bioimageio.spec", reason="bioimageio.spec absent (extra 'bioimageio')")

from napari_labelfree.core.interop.bioimageio import PAPER_DOI, import_package  # noqa: E402
from napari_labelfree.core.interop.bioimageio_export import (  # noqa: E402
    UNKNOWN_AUTHOR,
    _zmuv,
    export_package,
)

VOXEL = (0.3, 0.2, 0.25)
AUTHORS = ["Ada Lovelace", "Alan Turing"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Validation must not need the internet: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _trained_like_bundle(folder, **spec_kwargs):
    with torch.random.fork_rng():  # the same weights whatever ran before (test order)
        torch.manual_seed(5)
        net = randomize_batchnorm(UNet3D(Architecture(depth=2, width=8)), seed=5)
    spec = ModelSpec(
        structure="lamin-b1",
        colormap="cyan",
        voxel_size_um=VOXEL,
        architecture=Architecture(depth=2, width=8),
        metrics={"test_pearson_r": 0.9},
        **spec_kwargs,
    )
    save_bundle(folder, spec, net.state_dict())
    return open_bundle(folder)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("bioimageio")
    bundle = _trained_like_bundle(root / "lamin")
    return bundle, export_package(bundle, root / "lamin.zip", authors=AUTHORS)


def test_export_passes_format_validation_offline(package):
    from bioimageio.spec import load_description
    from bioimageio.spec.model import v0_5 as bm

    _, path = package
    descr = load_description(path, perform_io_checks=True)  # hashes every file in the zip
    summary = descr.validation_summary
    assert isinstance(descr, bm.ModelDescr), summary.display()
    # bioimageio.spec's own verdict is "valid-format"; "passed" needs a run of the model
    # (bioimageio.core, test below). Every check it made passed:
    assert summary.status == "valid-format" and not summary.errors
    assert all(d.status == "passed" for d in summary.details)
    (inp,), (out,) = descr.inputs, descr.outputs
    assert [str(a.id) for a in inp.axes] == ["batch", "channel", "z", "y", "x"]
    assert [a.scale for a in inp.axes[2:]] == list(VOXEL)
    assert {a.unit for a in inp.axes[2:]} == {"micrometer"}
    assert [str(a.id) for a in out.axes] == ["batch", "channel", "z", "y", "x"]
    assert "zero_mean_unit_variance" in [p.id for p in inp.preprocessing]
    assert descr.weights.pytorch_state_dict is not None and descr.weights.torchscript is not None
    assert descr.weights.pytorch_state_dict.architecture.sha256 is not None
    assert str(descr.cite[0].doi) == PAPER_DOI and str(descr.license) == "BSD-3-Clause"
    assert [a.name for a in descr.authors] == AUTHORS
    names = zipfile.ZipFile(path).namelist()
    assert {"cover.png", "README.md", "test_input.npy", "test_output.npy"} <= set(names)
    assert zipfile.ZipFile(path).read("cover.png")[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_bioimageio_core_runs_the_package_and_passes(package):
    if os.environ.get("NAPARI_LABELFREE_REQUIRE_BIOIMAGEIO_CORE"):
        # CI's bioimage.io step (.ci/run, tox -e bioimageio) installs it: never skipped there
        import bioimageio.core as core
    else:  # the main test environment cannot hold it (core 0.11 pins spec 0.5.12.0)
        core = pytest.importorskip("bioimageio.core", reason="bioimageio.core absent")
    summary = core.test_model(package[1])
    assert summary.status == "passed", summary.display()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_package_files_alone_reproduce_its_test_output(package, tmp_path):
    bundle, path = package
    with zipfile.ZipFile(path) as z:
        z.extractall(tmp_path)
    # the architecture file runs alone, outside napari_labelfree, as consumers load it
    loader = importlib.util.spec_from_file_location("standalone_unet", tmp_path / "unet.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    net = module.unet3d(depth=2, width=8, in_channels=1, out_channels=1)
    net.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    net.eval()
    test_in = np.load(tmp_path / "test_input.npy")
    expected = np.load(tmp_path / "test_output.npy")
    x = torch.from_numpy(_zmuv(test_in))
    with torch.no_grad():  # precision="fp32"
        assert np.abs(net(x).numpy() - expected).max() <= 1e-5
        scripted = torch.jit.load(str(tmp_path / "weights_torchscript.pt"))
        assert np.abs(scripted(x).numpy() - expected).max() <= 1e-5
        assert np.abs(load_network(bundle)(x).numpy() - expected).max() <= 1e-5


def test_round_trip_predicts_the_same(package, tmp_path, rng):
    bundle, path = package
    imported = import_package(path, tmp_path / "back")
    s = imported.spec
    assert (s.structure, s.colormap, s.voxel_size_um) == ("lamin-b1", "cyan", VOXEL)
    assert s.normalization == Normalization() and s.architecture == bundle.spec.architecture
    assert s.metrics == {"test_pearson_r": 0.9}
    assert s.provenance["imported_from"].startswith("bioimage.io package")
    volume = rng.normal(500, 40, size=(12, 40, 36)).astype(np.float32)
    tiling = TilingConfig(precision="fp32")
    a = drain(iter_predict_volume(volume, [bundle], (0.3, 0.1, 0.1), tiling, "cpu"))
    b = drain(iter_predict_volume(volume, [imported], (0.3, 0.1, 0.1), tiling, "cpu"))
    assert np.abs(a["lamin-b1"] - b["lamin-b1"]).max() <= 1e-5


def _edited_package(src, dst, edit):
    """A copy of package ``src`` whose rdf.yaml went through ``edit(dict)``."""
    import yaml

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "rdf.yaml":
                rdf = yaml.safe_load(data)
                edit(rdf)
                data = yaml.safe_dump(rdf).encode()
            zout.writestr(item, data)
    return dst


def test_torchscript_only_and_foreign_packages_are_refused(package, tmp_path):
    def torchscript_only(rdf):
        del rdf["weights"]["pytorch_state_dict"]
        rdf["weights"]["torchscript"].pop("parent", None)

    ts = _edited_package(package[1], tmp_path / "ts.zip", torchscript_only)
    with pytest.raises(LabelFreeError, match="TorchScript weights only"):
        import_package(ts, tmp_path / "a")

    def foreign(rdf):
        rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] = "ResUNet"

    other = _edited_package(package[1], tmp_path / "other.zip", foreign)
    with pytest.raises(LabelFreeError, match="not napari-labelfree's 3D U-Net"):
        import_package(other, tmp_path / "b")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(LabelFreeError, match="not a zip"):
        import_package(tmp_path / "junk.zip", tmp_path / "c")
    assert not any((tmp_path / n).exists() for n in "abc")


def test_center_slices_model_is_not_exported(tmp_path):
    bundle = _trained_like_bundle(
        tmp_path / "m", normalization=Normalization(scope="center-slices")
    )
    with pytest.raises(LabelFreeError, match="middle 32 z-slices"):
        export_package(bundle, tmp_path / "m.zip")
    assert not (tmp_path / "m.zip").exists()


def test_existing_package_is_not_overwritten(package):
    bundle, path = package
    before = path.read_bytes()
    with pytest.raises(LabelFreeError, match="already exists"):
        export_package(bundle, path)
    assert path.read_bytes() == before


def test_without_authors_the_package_says_unknown_not_a_made_up_name(package, tmp_path):
    from bioimageio.spec import load_description

    bundle, _ = package
    path = export_package(bundle, tmp_path / "anon.zip")
    descr = load_description(path, perform_io_checks=False)
    assert [a.name for a in descr.authors] == [UNKNOWN_AUTHOR]
    assert UNKNOWN_AUTHOR.startswith("unknown")


@pytest.mark.parametrize("name", ["", "  ", "Lab/Group", "a\\b"])
def test_an_author_bioimageio_refuses_is_one_clear_line(package, tmp_path, name):
    with pytest.raises(LabelFreeError, match="not a name bioimage.io accepts"):
        export_package(package[0], tmp_path / "x.zip", authors=["Ada Lovelace", name])
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize(
    ("spec_version", "pydantic_version", "refused"),
    [("0.5.12.0", "2.14.4", True), ("0.5.12.0", "2.13.5", False), ("0.5.14.3", "2.14.4", False)],
)
def test_a_spec_that_fails_under_this_pydantic_is_one_clear_line(
    monkeypatch, spec_version, pydantic_version, refused
):
    """bioimageio.spec 0.5.12 (bioimageio.core 0.11.0's pin) breaks under pydantic 2.14."""
    import bioimageio.spec
    import pydantic

    from napari_labelfree.core.interop.bioimageio import bioimageio_spec

    monkeypatch.setattr(bioimageio.spec, "__version__", spec_version)
    monkeypatch.setattr(pydantic, "VERSION", pydantic_version)
    if refused:
        with pytest.raises(LabelFreeError, match=r"install 'pydantic<2.14'"):
            bioimageio_spec()
    else:
        assert bioimageio_spec() is bioimageio.spec


def test_the_package_readme_names_training_images_without_their_fingerprints():
    """A person reads the README: the training images by name, not a thousand pixel digests."""
    from napari_labelfree.core.interop.bioimageio_export import _readme

    spec = ModelSpec(structure="dna", voxel_size_um=VOXEL)
    spec.provenance.update(
        training_images=["cells.ome.tif t=0"],
        training_pixels={"17f27f826447f388": "cells.ome.tif t=0"},
        init={"model": "dna-1", "training_pixels": {"0123456789abcdef": "old.tif"}},
    )
    text = _readme(spec, "dna")
    assert "cells.ome.tif t=0" in text and "dna-1" in text
    assert "17f27f826447f388" not in text and "0123456789abcdef" not in text
    assert "training_pixels" not in text
