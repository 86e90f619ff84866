"""Opening microscopy files (CZI, OME-TIFF, TIFF, OME-Zarr, ...) as an :class:`ImageSource`.

Reading goes through bioio (with its CZI, OME-TIFF, TIFF and OME-Zarr plugins, and whatever other
bioio readers are installed); where bioio is absent but aicsimageio is installed, the same adapter
uses that. Plain single-image OME-TIFFs are read with tifffile alone (:mod:`.ome_tiff`), which
spares every process bioio's start-up. A TIFF's pixels are read from one open file whichever reader
parsed its header; an OME-Zarr is read chunk by chunk from its store, so a frame never pulls in
the rest of the time-lapse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelFreeError
from .ome_tiff import read_ome_tiff_header, tiff_planes_for
from .source import ImageSource, _clean_size

ZARR_SUFFIXES = (".zarr",)  # ".ome.zarr" ends with ".zarr" too
FORMATS = "CZI, OME-TIFF, TIFF or OME-Zarr"


def is_zarr(path: str | Path) -> bool:
    """True for an OME-Zarr store path (``x.zarr`` or ``x.ome.zarr``, a folder)."""
    return str(path).rstrip("/\\").lower().endswith(ZARR_SUFFIXES)


def _open_reader(path: Path) -> Any:
    try:
        from bioio import BioImage
    except ImportError:
        BioImage = None
    if BioImage is not None:
        try:
            return BioImage(path)
        except Exception as e:  # bioio raises many types for unreadable/unsupported files
            raise LabelFreeError(
                f"cannot read {path}: {e.__class__.__name__}: {e}. Is it a {FORMATS} file? "
                "(install the bioio reader plugin for other formats)"
            ) from e
    try:
        from aicsimageio import AICSImage
    except ImportError as e:
        raise LabelFreeError("reading files needs bioio (pip install bioio bioio-ome-tiff)") from e
    try:
        return AICSImage(path)
    except Exception as e:
        raise LabelFreeError(f"cannot read {path}: {e}") from e


def open_image(path: str | Path) -> ImageSource:
    """Open a microscopy file lazily as TCZYX with channel names and physical sizes.

    The returned source reads one (T, C) frame at a time and keeps the file open between frames;
    close it (or use it in a ``with`` block) to release the file early.
    """
    path = Path(path)
    if not path.exists():
        raise LabelFreeError(f"{path} does not exist; check the path")
    if path.is_dir() and not is_zarr(path):
        raise LabelFreeError(f"{path} is a folder; give an image file or store ({FORMATS})")
    header = read_ome_tiff_header(path)
    if header is not None:
        shape, names, sizes, planes = header
        return ImageSource(
            path,
            shape,
            names,
            sizes,
            "tifffile",
            lambda t, c: planes.read_frame(t, c, shape[2]),
            _close=planes.close,
            dtype=getattr(planes, "dtype", None),
        )
    reader = _open_reader(path)
    dims = reader.dims
    shape = tuple(int(getattr(dims, a, 1)) for a in "TCZYX")
    names = list(reader.channel_names or [])
    if len(names) != shape[1]:
        names = [f"channel {i}" for i in range(shape[1])]
    names = [str(n) if n else f"channel {i}" for i, n in enumerate(names)]
    pps = reader.physical_pixel_sizes
    sizes = tuple(_clean_size(getattr(pps, a, None)) for a in "ZYX")
    backend = "bioio" if type(reader).__module__.startswith("bioio") else "aicsimageio"
    if sizes[0] is None and sizes[1] == sizes[2] == 1.0:
        # a TIFF without resolution tags reports tifffile's default of 1 unit per pixel in Y and X:
        # that is no measurement, and keeping it would skip resampling at a made-up size
        sizes = (None, None, None)
    dtype = np.dtype(reader.dtype) if getattr(reader, "dtype", None) is not None else None
    planes = _tiff_planes(path, reader)
    if planes is not None:
        return ImageSource(
            path,
            shape,  # type: ignore[arg-type]
            names,
            sizes,
            backend,
            lambda t, c: planes.read_frame(t, c, shape[2]),
            _close=planes.close,
            dtype=dtype,
        )

    def read_frame(t: int, c: int) -> np.ndarray:
        data = reader.get_image_dask_data("ZYX", T=t, C=c)
        return np.asarray(data.compute(), dtype=np.float32)

    return ImageSource(path, shape, names, sizes, backend, read_frame, dtype=dtype)  # type: ignore[arg-type]


def _tiff_planes(path: Path, reader: Any) -> Any:
    """tifffile planes for a TIFF bioio opened, when they provably match bioio's axes."""
    native = getattr(reader, "reader", None)  # bioio's plugin reader: the file's own axes
    try:
        order, native_shape = native.dims.order, native.dims.shape
        scene = int(native.current_scene_index)
    except Exception:
        return None
    return tiff_planes_for(path, order, native_shape, scene)
