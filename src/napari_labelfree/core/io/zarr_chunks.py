"""Which chunks of a local Zarr array are missing from its store.

Zarr reads a chunk that is not in the store as the array's fill value, which both Zarr
specifications allow: zarr-python 3 leaves out every chunk holding only the fill value
(``write_empty_chunks=False``, its default, for v2 and v3 arrays). An OME-Zarr copied only in
part looks the same, so the readers decide what a missing chunk means (:mod:`.read`: undefined
without a fill value, a blank frame when none is stored). The check looks for the chunk files
themselves, so it costs one ``stat`` per chunk and reads no pixels.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _stored_chunk_shape(array: Any) -> tuple[int, ...]:
    """The shape of what one file holds: a chunk, or a shard of chunks (Zarr v3 sharding)."""
    meta = array.metadata
    grid = getattr(meta, "chunk_grid", None)
    if grid is not None and hasattr(grid, "chunk_shape"):
        return tuple(int(n) for n in grid.chunk_shape)
    return tuple(int(n) for n in meta.chunks)


def missing_chunk_files(
    store: Path, array: Any, fixed: Mapping[int, int] | None = None
) -> tuple[int, int]:
    """(missing, total) chunk files of ``array`` in the local ``store`` for a selection.

    ``fixed`` maps an axis to the one index read on it (a time point, a channel); every other
    axis is read whole.
    """
    fixed = dict(fixed or {})
    chunks = _stored_chunk_shape(array)
    ranges: list[Sequence[int]] = []
    for axis, (size, chunk) in enumerate(zip(array.shape, chunks, strict=True)):
        if axis in fixed:
            ranges.append([int(fixed[axis]) // chunk])
        else:
            ranges.append(range(-(-int(size) // chunk)))
    folder = Path(store) / array.path if array.path else Path(store)
    missing = total = 0
    for coords in itertools.product(*ranges):
        total += 1
        if not (folder / array.metadata.encode_chunk_key(coords)).exists():
            missing += 1
    return missing, total


def ome_zarr_level0(store: Path) -> tuple[Any, list[str]] | None:
    """The full-resolution array of the first image of an OME-Zarr and its axis names.

    None where the store is not laid out as NGFF multiscales (nothing to check against).
    """
    import zarr

    try:
        group = zarr.open_group(str(store), mode="r")
        attrs = dict(group.attrs)
        multiscales = (attrs.get("ome") or {}).get("multiscales") or attrs.get("multiscales")
        image = multiscales[0]
        array = group[image["datasets"][0]["path"]]
        axes = image.get("axes") or ["t", "c", "z", "y", "x"][-array.ndim :]
        names = [str(a.get("name") if isinstance(a, dict) else a).lower() for a in axes]
    except Exception:  # noqa: BLE001 (any layout this does not know: not checked)
        return None
    if len(names) != array.ndim or not hasattr(array.metadata, "encode_chunk_key"):
        return None
    return array, names
