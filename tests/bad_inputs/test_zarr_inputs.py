"""OME-Zarr inputs whose writer left chunks out: legal Zarr, read as the specification says.

Zarr (v2 and v3 alike) reads a chunk absent from the store as the array's fill value, and
zarr-python 3 leaves out every chunk that holds only the fill value (``write_empty_chunks=False``,
its default). Such a store is read and predicted; only chunks Zarr leaves undefined (no fill
value) or a frame with no chunk at all are refused (test_catalogue.py, the zarr cases).
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from bad_input_harness import run_cli

from napari_labelfree.core.io import open_image


def _sparse_store(path, zarr_format: int) -> np.ndarray:
    """An OME-Zarr whose lower half of z is blank (0, the fill value): its chunk is left out."""
    from bioio_ome_zarr.writers import OMEZarrWriter

    data = np.random.default_rng(3).normal(100, 10, (1, 1, 8, 16, 16)).astype(np.float32)
    data[0, 0, 4:] = 0
    writer = OMEZarrWriter(
        str(path),
        level_shapes=data.shape,
        dtype=np.float32,
        chunk_shape=(1, 1, 4, 16, 16),
        zarr_format=zarr_format,
        image_name="sparse",
        axes_names=["t", "c", "z", "y", "x"],
        axes_types=["time", "channel", "space", "space", "space"],
        axes_units=[None, None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 1.0, 0.29, 0.29, 0.29],
    )
    writer.initialize()
    # through zarr itself (the writer's dask.array.to_zarr speaks Zarr 2's API at the dask floor)
    zarr.open_array(str(path / "0"), mode="r+")[...] = data
    chunk_files = [p for p in path.rglob("*") if p.is_file() and p.name.isdigit()]
    assert len(chunk_files) == 1, "zarr-python wrote the blank chunk: nothing left out to test"
    return data[0, 0]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_chunk_left_out_as_all_fill_value_is_read_as_the_fill_value(tmp_path, zarr_format):
    store = tmp_path / "sparse.ome.zarr"
    expected = _sparse_store(store, zarr_format)
    with open_image(store) as source:
        np.testing.assert_array_equal(source.frame(0, 0), expected)


def test_such_a_store_is_predicted(work, assets, capsys):
    _sparse_store(work / "sparse.ome.zarr", 3)
    argv = ["predict", str(work / "sparse.ome.zarr"), "-m", str(assets.model)]
    result = run_cli([*argv, "-o", str(work / "out.ome.tif"), "--device", "cpu"], capsys)
    assert result.code == 0, result.err
    assert (work / "out.ome.tif").is_file()
