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


def _write_plate(path, wells=("A/1", "B/2"), fields=2, shape=(6, 24, 24)):
    """An OME-Zarr plate (NGFF 0.4 HCS: plate -> wells -> images), each image bright-field and
    DAPI written by this package's OME-Zarr writer, image k's pixels offset by 10 k; returns
    {"A/1/0": CZYX, ...} in the plate's order."""
    import json
    import shutil

    from napari_labelfree.core.io import open_prediction_output

    root = Path(path)
    root.mkdir()
    group = '{"zarr_format": 2}'
    (root / ".zgroup").write_text(group)
    rows = sorted({w.split("/")[0] for w in wells})
    cols = sorted({w.split("/")[1] for w in wells})
    listed = [
        {
            "path": w,
            "rowIndex": rows.index(w.split("/")[0]),
            "columnIndex": cols.index(w.split("/")[1]),
        }
        for w in wells
    ]
    plate = {"version": "0.4", "rows": [{"name": r} for r in rows], "wells": listed}
    plate["columns"] = [{"name": c} for c in cols]
    (root / ".zattrs").write_text(json.dumps({"plate": plate}))
    rng = np.random.default_rng(0)
    images = {}
    for well in wells:
        (root / well).mkdir(parents=True)
        (root / well.split("/")[0] / ".zgroup").write_text(group)
        (root / well / ".zgroup").write_text(group)
        well_meta = {
            "well": {"version": "0.4", "images": [{"path": str(f)} for f in range(fields)]}
        }
        (root / well / ".zattrs").write_text(json.dumps(well_meta))
        for f in range(fields):
            data = (rng.random((2, *shape)) + 10 * len(images)).astype(np.float32)
            tmp = root.parent / f".image-{len(images)}.ome.zarr"
            out = open_prediction_output(
                tmp, ["bright-field", "DAPI"], ["gray", "blue"], shape, (0.29, 0.29, 0.29), 1
            )
            out.write_frame(0, {"bright-field": data[0], "DAPI": data[1]})
            out.commit()
            out.close()
            shutil.move(str(tmp), str(root / well / str(f)))
            images[f"{well}/{f}"] = data
    return images


@pytest.fixture
def write_plate():
    """write_plate(path, wells=("A/1", "B/2"), fields=2, shape=(6, 24, 24)) -> {image path:
    CZYX}: an OME-Zarr HCS plate"""
    return _write_plate
