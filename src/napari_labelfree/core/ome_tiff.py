"""Reading plain OME-TIFF files with tifffile alone.

Most files users predict (and everything ``labelfree`` writes) are single-image OME-TIFFs. Opening
them through bioio costs ~1.8 s of imports (ome_types, dask, xarray, pint) in every process, a
third of a whole `labelfree predict` of a 64x256x256 stack on a 2-core CPU. tifffile is already
loaded for writing, so these files are read with it: the shape and axes from tifffile, channel
names and physical sizes from the OME-XML, and a frame's pages only. Anything this module does not
handle for certain (several images or series, RGB samples, unknown units, missing pages) returns
None, and bioio reads the file as before.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np

# OME length units -> micrometres (the OME default unit is um)
_TO_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "Å": 1e-4, "mm": 1e3, "cm": 1e4, "m": 1e6, "pm": 1e-6}

FrameReader = Callable[[int, int], np.ndarray]


def read_ome_tiff_header(
    path: Path,
) -> tuple[tuple[int, int, int, int, int], list[str], tuple, FrameReader] | None:
    """(TCZYX shape, channel names, physical sizes um Z,Y,X, frame reader), or None to use bioio."""
    import tifffile

    if not path.name.lower().endswith((".ome.tif", ".ome.tiff")):
        return None
    try:
        with tifffile.TiffFile(path) as tf:
            if not tf.is_ome or len(tf.series) != 1:
                return None
            series = tf.series[0]
            axes, shape = series.axes, tuple(int(n) for n in series.shape)
            n_pages = len(series.pages)
            if any(page is None for page in series.pages):
                return None  # a multi-file set with a file missing: bioio, and its message
            xml = tf.ome_metadata
    except Exception:  # unreadable here: let bioio try and report the error
        return None
    if not axes.endswith("YX") or set(axes) - set("TCZYX") or len(set(axes)) != len(axes):
        return None  # RGB samples, lightsheet angles, ...: bioio knows them
    plane_axes = axes[:-2]
    plane_shape = shape[:-2]
    if n_pages != int(np.prod(plane_shape, dtype=np.int64)):
        return None  # sparse or multi-file sets
    meta = _pixels_metadata(xml)
    if meta is None:
        return None
    names, sizes = meta
    tczyx = tuple(shape[axes.index(a)] if a in axes else 1 for a in "TCZYX")
    if len(names) != tczyx[1]:
        names = [f"channel {i}" for i in range(tczyx[1])]

    def page_index(t: int, c: int, z: int) -> int:
        """Index of the (t, c, z) plane among the series' pages, in the file's own plane order."""
        at = {"T": t, "C": c, "Z": z}
        return (
            int(np.ravel_multi_index([at[a] for a in plane_axes], plane_shape)) if plane_axes else 0
        )

    def read_frame(t: int, c: int) -> np.ndarray:
        keys = [page_index(t, c, z) for z in range(tczyx[2])]
        data = tifffile.imread(path, series=0, key=keys)
        return np.asarray(data, dtype=np.float32).reshape(tczyx[2:])

    return tczyx, names, sizes, read_frame  # type: ignore[return-value]


def _pixels_metadata(xml: str | None) -> tuple[list[str], tuple] | None:
    """Channel names and physical sizes (um, Z, Y, X; None where absent) of the only Image."""
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    images = [e for e in root if e.tag.endswith("}Image") or e.tag == "Image"]
    if len(images) != 1:
        return None
    pixels = next((e for e in images[0] if e.tag.endswith("Pixels")), None)
    if pixels is None:
        return None
    sizes = []
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            sizes.append(None)
            continue
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        if unit not in _TO_UM:
            return None
        try:
            v = float(value) * _TO_UM[unit]
        except ValueError:
            return None
        sizes.append(v if np.isfinite(v) and v > 0 else None)
    channels = [e for e in pixels if e.tag.endswith("Channel")]
    names = [e.get("Name") or f"channel {i}" for i, e in enumerate(channels)]
    return names, tuple(sizes)
