"""npe2 reader: CZI / OME-TIFF / TIFF / OME-Zarr z-stacks as one named layer per channel, in um.

Reading goes through :func:`napari_labelfree.core.io.open_image` (bioio). Each channel becomes an
Image layer named after the channel, with scale (z, y, x in um; 1 for the time axis) and the time
axis kept when the file has more than one time point. Files this reader cannot read get ``None``,
so napari tries the next reader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import LabelFreeError
from .core.io import ImageSource, is_zarr, open_image
from .core.structures import TRANSMITTED_COLORMAP, fluorescence_colormaps, looks_transmitted

LayerData = tuple[Any, dict[str, Any], str]
SUFFIXES = (".czi", ".ome.tif", ".ome.tiff", ".tif", ".tiff", ".zarr")
#: Above this size (bytes, float32) a channel is read lazily, one frame at a time, through dask.
EAGER_LIMIT = 1 << 30


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The reader function for ``path``, or None when it is not a file this plugin reads."""
    if isinstance(path, list):
        if not path or not all(_suffix_ok(p) for p in path):
            return None
        paths = [str(p) for p in path]
    else:
        if not _suffix_ok(path):
            return None
        paths = [str(path)]
    sources = []
    for p in paths:
        try:
            sources.append(open_image(p))
        except LabelFreeError:
            return None  # let another reader try
    return lambda _path: [layer for src in sources for layer in source_layers(src)]


def _suffix_ok(path: str | Path) -> bool:
    """A file with an image suffix, or an OME-Zarr store (a folder named ``*.zarr``)."""
    name = str(path).rstrip("/\\").lower()
    if is_zarr(name):
        return Path(path).is_dir()
    return name.endswith(SUFFIXES) and Path(path).is_file()


def _channel_array(source: ImageSource, c: int) -> Any:
    """TZYX (or ZYX for one time point) float32 array of channel ``c``; lazy when large."""
    t, _, z, y, x = source.shape_tczyx
    if t * z * y * x * 4 <= EAGER_LIMIT:
        arr = np.stack([source.frame(i, c) for i in range(t)])
    else:
        import dask
        import dask.array as da

        arr = da.stack(
            [
                da.from_delayed(dask.delayed(source.frame)(i, c), (z, y, x), dtype=np.float32)
                for i in range(t)
            ]
        )
    return arr if t > 1 else arr[0]


def source_layers(source: ImageSource) -> list[LayerData]:
    """One (data, kwargs, 'image') tuple per channel of ``source``."""
    sizes = source.physical_sizes
    zyx_scale = [float(s) if s else 1.0 for s in sizes]
    has_time = source.n_timepoints > 1
    scale = ([1.0] if has_time else []) + zyx_scale
    label = source.path.name if source.path else "image"
    layers: list[LayerData] = []
    # a file of one channel is taken for transmitted light: the input of prediction
    transmitted = [looks_transmitted(n) or source.n_channels == 1 for n in source.channel_names]
    fluorescence = iter(
        fluorescence_colormaps(
            [n for n, t in zip(source.channel_names, transmitted, strict=True) if not t]
        )
    )
    for c, channel in enumerate(source.channel_names):
        if transmitted[c]:
            colormap, blending = TRANSMITTED_COLORMAP, "translucent_no_depth"
        else:
            colormap, blending = next(fluorescence), "additive"
        meta = {
            "labelfree": {
                "role": "source",
                "path": str(source.path) if source.path else None,
                "channel": channel,
                "channel_index": c,
                "channel_names": [channel],
                "axes": "TZYX" if has_time else "ZYX",
                "voxel_size": list(sizes),
                "file": label,
            }
        }
        kwargs = {
            "name": channel,
            "scale": scale,
            "colormap": colormap,
            "blending": blending,
            "metadata": meta,
            "visible": transmitted[c] or source.n_channels <= 4,
        }
        layers.append((_channel_array(source, c), kwargs, "image"))
    return layers
