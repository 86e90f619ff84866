"""Shared fixtures: tiny model bundles (depth 2, width 8) and small OME-TIFF files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from napari_labelfree.core.bundle import ModelBundle, init_bundle
from napari_labelfree.core.config import Architecture, ModelSpec

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def same_code_path_on_every_cpu(monkeypatch):
    """Precision "auto" computes in fp32 in every test, whatever this CPU has.

    "auto" picks bf16 on CPUs with native bf16 and fp32 elsewhere, so without this the suite would
    run other code on other machines. Tests of the choice itself (tests/core/test_optimize.py)
    monkeypatch each kind of CPU in turn; tests that want bf16 ask for it.
    """
    from napari_labelfree.core import device

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)


@pytest.fixture
def load_script():
    """Factory: a module of scripts/ (not a package), loaded from its file by name."""

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def make_tiny_model(tmp_path):
    """Factory: an untrained tiny bundle with random-but-nontrivial weights in tmp_path."""

    def make(
        structure: str = "dna",
        colormap: str = "blue",
        voxel_size=(0.29, 0.29, 0.29),
        depth: int = 2,
        width: int = 8,
        seed: int = 0,
    ) -> ModelBundle:
        spec = ModelSpec(
            structure=structure,
            colormap=colormap,
            voxel_size_um=voxel_size,
            architecture=Architecture(depth=depth, width=width),
        )
        return init_bundle(tmp_path / f"{structure}-{seed}", spec, seed=seed)

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _write_czi(path, data, names, sizes_um):
    """A Zeiss CZI (TCZYX uint16) written with libCZI's writer, which bioio-czi itself builds on."""
    pyczi = pytest.importorskip(
        "pylibCZIrw.czi", reason="pylibCZIrw (a bioio-czi dependency) absent"
    )
    with pyczi.create_czi(str(path)) as w:
        for t in range(data.shape[0]):
            for c in range(data.shape[1]):
                for z in range(data.shape[2]):
                    w.write(data[t, c, z][..., None], plane={"T": t, "C": c, "Z": z})
        w.write_metadata(
            channel_names=dict(enumerate(names)),
            scale_z=sizes_um[0] * 1e-6,  # CZI stores metres
            scale_y=sizes_um[1] * 1e-6,
            scale_x=sizes_um[2] * 1e-6,
        )
    return path


@pytest.fixture
def write_czi():
    """write_czi(path, tczyx_uint16, channel_names, (z, y, x) um) -> path"""
    return _write_czi


def _write_positions(path, n=2, shape=(6, 24, 24)):
    """A multi-series OME-TIFF of ``n`` scenes ("Position 1", ...), channels bright-field and
    DAPI, the pixels of scene k offset by 10 k; returns each scene's CZYX array."""
    import tifffile

    rng = np.random.default_rng(0)
    data = []
    with tifffile.TiffWriter(path, ome=True) as tw:
        for k in range(n):
            d = (rng.random((2, *shape)) + 10 * k).astype(np.float32)
            data.append(d)
            meta = {"axes": "CZYX", "Name": f"Position {k + 1}"}
            meta.update(Channel={"Name": ["bright-field", "DAPI"]}, PhysicalSizeX=0.29)
            meta.update(PhysicalSizeY=0.29, PhysicalSizeZ=0.29)
            tw.write(d, metadata=meta)
    return data


@pytest.fixture
def write_positions():
    """write_positions(path, n=2, shape=(6, 24, 24)) -> [CZYX per scene]: a multi-position file"""
    return _write_positions
