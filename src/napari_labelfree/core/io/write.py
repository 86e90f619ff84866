"""Writing TCZYX OME-TIFF files atomically, streamed one time point at a time."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelFreeError
from ..files import atomic_file, make_parent


def ome_color(colour: str) -> int:
    """OME's Channel Color for a napari colormap name or RRGGBB: RGBA in a signed 32-bit int.

    The colour of a name is the one OME-Zarr's omero metadata gets (:func:`.omero_colour`), so
    both formats open in the same colours.
    """
    from .ome_zarr_out import omero_colour

    value = (int(omero_colour(colour), 16) << 8) | 0xFF
    return value - (1 << 32) if value >= 1 << 31 else value


def ome_metadata(
    channel_names: Sequence[str],
    physical_sizes: Sequence[float | None],
    channel_colors: Sequence[int | None] | None = None,
    annotation: dict[str, str] | None = None,
    channel_modalities: Sequence[str | None] | None = None,
) -> dict:
    """tifffile's OME metadata: axes, channel names (and OME Colors), sizes known in um only, and
    an OME MapAnnotation (key-value pairs under ``annotation["Namespace"]``) when given.

    ``channel_modalities`` ("bright-field", "phase-contrast", "dic", "fluorescence"; what
    :mod:`.acquisition` reads back) become each Channel's ContrastMethod when every channel has one.
    """
    from .acquisition import OME_CONTRAST

    md: dict[str, Any] = {"axes": "TCZYX", "Channel": {"Name": list(channel_names)}}
    if annotation:
        md["MapAnnotation"] = dict(annotation)
    if channel_colors is not None and all(c is not None for c in channel_colors):
        md["Channel"]["Color"] = [int(c) for c in channel_colors]  # type: ignore[arg-type]
    if channel_modalities is not None and all(m in OME_CONTRAST for m in channel_modalities):
        md["Channel"]["ContrastMethod"] = [OME_CONTRAST[m] for m in channel_modalities]  # type: ignore[index]
    for axis, size in zip("ZYX", physical_sizes, strict=True):
        if size is not None:
            md[f"PhysicalSize{axis}"] = float(size)
            md[f"PhysicalSize{axis}Unit"] = "µm"
    return md


def write_ome_tiff(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    shape_tczyx: Sequence[int] | None = None,
    channel_names: Sequence[str] | None = None,
    physical_sizes: Sequence[float | None] = (None, None, None),
    channel_colors: Sequence[int | None] | None = None,
    dtype: Any = np.float32,
    overwrite: bool = False,
    annotation: dict[str, str] | None = None,
    channel_modalities: Sequence[str | None] | None = None,
) -> Path:
    """Write a TCZYX OME-TIFF atomically (temporary file, then rename).

    ``frames`` is a TCZYX array or an iterable of CZYX arrays (one per time point, streamed to disk
    so a long time-lapse never sits in memory whole; then ``shape_tczyx`` is required).
    ``channel_colors`` are OME Colors (RGBA in a signed 32-bit integer), written when all are given;
    ``annotation`` an OME MapAnnotation and ``channel_modalities`` each channel's contrast method
    (see :func:`ome_metadata`).
    """
    import tifffile

    path = Path(path)
    if path.exists() and not overwrite:
        raise LabelFreeError(
            f"{path} already exists; choose another output name (nothing was overwritten)"
        )
    if isinstance(frames, np.ndarray):
        if frames.ndim != 5:
            raise ValueError(f"expected a TCZYX array, got shape {frames.shape}")
        shape_tczyx = frames.shape
        frames = iter(frames)
    if shape_tczyx is None:
        raise ValueError("shape_tczyx is required when frames is an iterable")
    t, c, z, y, x = (int(v) for v in shape_tczyx)
    names = list(channel_names) if channel_names else [f"channel {i}" for i in range(c)]
    if len(names) != c:
        raise ValueError(f"{len(names)} channel names for {c} channels")

    def pages() -> Iterator[np.ndarray]:
        n = 0
        for frame in frames:
            frame = np.asarray(frame, dtype=dtype)
            if frame.shape != (c, z, y, x):
                raise ValueError(f"frame of shape {frame.shape}, expected {(c, z, y, x)}")
            n += 1
            yield from frame.reshape(c * z, y, x)
        if n != t:
            raise ValueError(f"got {n} frames, expected {t}")

    make_parent(path)
    with atomic_file(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tifffile.imwrite(
            tmp,
            data=pages(),
            shape=(t, c, z, y, x),
            dtype=dtype,
            ome=True,
            photometric="minisblack",
            metadata=ome_metadata(
                names, physical_sizes, channel_colors, annotation, channel_modalities
            ),
            bigtiff=t * c * z * y * x * np.dtype(dtype).itemsize > 2**31,
        )
        if path.exists() and not overwrite:
            raise LabelFreeError(f"{path} appeared while writing; nothing was overwritten")
    return path
