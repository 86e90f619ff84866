"""npe2 reader: CZI / OME-TIFF / TIFF / OME-Zarr z-stacks as one named layer per channel, in um.

Reading goes through :func:`napari_labelfree.core.io.open_image` (bioio). Each channel becomes an
Image layer named "file: channel", with scale (z, y, x in um; 1 for the time axis), units
("um" where the file gives a size, napari's "pixel" where it does not) and the time axis kept when
the file has more than one time point. A file of one plane and one time point (a maximum
projection, a single confocal section) opens as a 2D layer, which napari shows over every plane of
a z-stack beside it; its Z size stays in the layer's metadata. Transmitted light opens grey and opaque beneath the
fluorescence channels, which open additive in their structure's colour (or the colour the file
stores). A TIFF that is a plain picture (RGB, or one 2D plane without sizes) is handed to napari's
own reader, since this plugin may be the remembered reader for TIFFs (see :mod:`._preferences`).
Files this reader cannot read get ``None``, so napari tries the next reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._colours import colormap_for_hex, stored_contrast_limits, stored_hexes
from .core.errors import LabelFreeError
from .core.io import ImageSource, is_zarr, open_image
from .core.io.acquisition import TRANSMITTED
from .core.structures import (
    TRANSMITTED_COLORMAP,
    find_structure,
    fluorescence_colormaps,
    looks_transmitted,
)
from .core.transmitted import looks_transmitted_stack

LayerData = tuple[Any, dict[str, Any], str]
SUFFIXES = (".czi", ".ome.tif", ".ome.tiff", ".tif", ".tiff", ".zarr")
#: File-name endings left out of the "file" part of a layer name (longest first).
_NAME_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".czi", ".zarr")
#: bioio's made-up names for unnamed channels ("Channel:0:1")
_GENERIC_CHANNEL = re.compile(r"^channel:\d+:(\d+)$", re.IGNORECASE)
#: names that say nothing of the channel's contents ("channel 1", "C2", "ch0", "0")
_UNNAMED = re.compile(r"^(channel:\d+:\d+|(channel|ch|c)?[\s_-]*\d+)$", re.IGNORECASE)
#: Above this size (bytes, float32) a channel is read lazily, one frame at a time, through dask.
EAGER_LIMIT = 1 << 30
#: The scenes of one file opened as layers (each scene's channels; every scene read lazily).
MAX_SCENES = 12


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The reader function for ``path``, or None when it is not a file this plugin reads."""
    if isinstance(path, list):
        if not path or not all(_suffix_ok(p) for p in path):
            return None
        paths = [str(p) for p in path]
    else:
        if not _suffix_ok(path):
            return None
        picture = _plain_picture_reader(str(path))
        if picture is not None:
            return picture
        paths = [str(path)]
    sources = []
    left_out: list[str] = []
    for p in paths:
        try:
            first = open_image(p)
            sources.append(first)
            # a file of several scenes (positions, tiles): each its own layers, up to MAX_SCENES
            for k in range(1, min(len(first.scenes), MAX_SCENES)):
                sources.append(open_image(p, k))
        except LabelFreeError:
            return None  # let another reader try
        if len(first.scenes) > MAX_SCENES:
            left_out.append(
                f"{Path(p).name} holds {len(first.scenes)} scenes; the first {MAX_SCENES} were "
                "opened (predict every scene with labelfree predict --scene all -o FOLDER)"
            )

    def read(_path: str | list[str]) -> list[LayerData]:
        if left_out:
            from napari.utils.notifications import show_warning

            show_warning("; ".join(left_out))
        return [layer for src in sources for layer in source_layers(src)]

    return read


def _suffix_ok(path: str | Path) -> bool:
    """A file with an image suffix, or an OME-Zarr store (a folder named ``*.zarr``)."""
    name = str(path).rstrip("/\\").lower()
    if is_zarr(name):
        return Path(path).is_dir()
    return name.endswith(SUFFIXES) and Path(path).is_file()


def _plain_picture_reader(path: str) -> Callable | None:
    """napari's own reader for a TIFF that is a picture, not a microscopy stack; else None.

    RGB(A) TIFFs and single 2D planes without OME or ImageJ metadata read as napari reads them,
    so remembering this plugin for ``*.tif`` never makes opening a picture worse.
    """
    if not path.lower().endswith((".tif", ".tiff")):
        return None
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            rgb = "S" in series.axes
            plain_2d = len(series.shape) == 2 and not (tif.is_ome or tif.is_imagej)
        if not (rgb or plain_2d):
            return None
        from napari_builtins.io import napari_get_reader
    except Exception:  # not a TIFF tifffile reads, or no napari: this reader decides below
        return None
    return napari_get_reader(path)


def _channel_array(source: ImageSource, c: int) -> Any:
    """TZYX (or ZYX for one time point) float32 array of channel ``c``; lazy when large or one
    scene of several (their sum could be large)."""
    t, _, z, y, x = source.shape_tczyx
    if t * z * y * x * 4 <= EAGER_LIMIT and not source.scenes:
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


def file_label(path: Path | None) -> str:
    """The file part of a layer name: the file name without its image suffix."""
    if path is None:
        return "image"
    name = path.name.rstrip("/\\")
    for suffix in _NAME_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def channel_label(name: str) -> str:
    """A channel name for people: bioio's "Channel:0:1" reads "channel 1"."""
    m = _GENERIC_CHANNEL.match(name.strip())
    return f"channel {m.group(1)}" if m else name


def _pixels_look_transmitted(volume: Any) -> bool:
    """Whether an eagerly read channel looks like transmitted light: every frame, many planes."""
    if not isinstance(volume, np.ndarray) or volume.size == 0:
        return False  # lazy (huge) data is not read to decide a colour
    return looks_transmitted_stack(volume)


def _transmitted(source: ImageSource, label: str, arrays: list[Any]) -> list[bool]:
    """Which channels are transmitted light: as the file's acquisition metadata says; by channel
    name; by the file name for a lone channel the table does not know ("hoechst_stack.tif"); else
    by the pixels (when read eagerly)."""
    names = source.channel_names
    said = source.channel_light or (None,) * len(names)
    out = []
    for name, volume, light in zip(names, arrays, said, strict=True):
        if light is not None:
            out.append(light == TRANSMITTED)
        elif looks_transmitted(name):
            out.append(True)
        elif find_structure(name) is not None:
            out.append(False)
        elif len(names) == 1 and (find_structure(label) or looks_transmitted(label)):
            out.append(looks_transmitted(label))
        elif len(names) > 1 and not _UNNAMED.match(name.strip()):
            out.append(False)  # named, but not in the table ("EGFP", "Cy5"): fluorescence
        elif isinstance(volume, np.ndarray):
            out.append(_pixels_look_transmitted(volume))
        else:  # too big to look at: a lone channel is most likely the input of prediction
            out.append(len(names) == 1)
    return out


def layers_take_units() -> bool:
    """Whether napari's ``add_image`` takes per-axis ``units`` (0.5.1 and later; 0.5.0 has the
    layer attribute but refuses a sequence for it in ``add_image``)."""
    try:
        import napari
    except ImportError:
        return False
    try:
        major, minor, patch = (int(p) for p in re.findall(r"\d+", napari.__version__)[:3])
    except ValueError:
        return False
    return (major, minor, patch) >= (0, 5, 1)


def layer_axes(has_time: bool, sizes: tuple, planar: bool = False) -> dict[str, Any]:
    """``units`` where napari takes them, so the scale bar says um (unknown sizes stay pixels),
    and the axes' names, so the sliders say t and z (napari's own are -4 ... -1). ``planar``: a
    2D layer (Y, X) of an image's one plane; ``sizes`` are still its Z, Y, X."""
    if not layers_take_units():
        return {}
    zyx = ["um" if s else "pixel" for s in sizes]
    labels = ["z", "y", "x"]
    if planar:
        zyx, labels = zyx[1:], labels[1:]
    return {
        "units": (["pixel"] if has_time else []) + zyx,
        "axis_labels": (["t"] if has_time else []) + labels,
    }


def is_one_plane(source: ImageSource) -> bool:
    """Whether ``source`` is a single plane at a single time point: it opens as a 2D layer. (One
    plane per frame of a time-lapse stays T, Z, Y, X: napari lines up axes from the right, so a
    T, Y, X layer's time axis would move with the z slider of a stack beside it.)"""
    t, _, z, _, _ = source.shape_tczyx
    return t == 1 and z == 1


def source_layers(source: ImageSource) -> list[LayerData]:
    """One (data, kwargs, 'image') tuple per channel of ``source``: transmitted light first."""
    sizes = source.physical_sizes
    zyx_scale = [float(s) if s else 1.0 for s in sizes]
    has_time = source.n_timepoints > 1
    planar = is_one_plane(source)
    scale = zyx_scale[1:] if planar else ([1.0] if has_time else []) + zyx_scale
    label = file_label(source.path)
    if source.scenes:  # one scene of several: "cells [Position 2]: DAPI"
        label = f"{label} [{source.scenes[source.scene]}]"
    arrays = [_channel_array(source, c) for c in range(source.n_channels)]
    transmitted = _transmitted(source, label, arrays)
    if planar:
        arrays = [a[0] for a in arrays]
    stored = stored_hexes(source.path, source.n_channels)
    limits = stored_contrast_limits(source.path, source.n_channels)  # as it was shown when saved
    # a lone channel without a structure's name takes its colour from the file name
    lone = source.n_channels == 1 and find_structure(source.channel_names[0]) is None
    keys = [label] if lone else source.channel_names
    fluorescence = iter(
        fluorescence_colormaps([n for n, t in zip(keys, transmitted, strict=True) if not t])
    )
    units = layer_axes(has_time, sizes, planar)
    layers: list[tuple[bool, LayerData]] = []
    for c, channel in enumerate(source.channel_names):
        if transmitted[c]:
            colormap, blending = TRANSMITTED_COLORMAP, "opaque"
        else:
            colormap, blending = next(fluorescence), "additive"
        if stored[c] and not transmitted[c]:
            colormap = colormap_for_hex(stored[c])
        meta = {
            "labelfree": {
                "role": "source",
                "path": str(source.path) if source.path else None,
                "channel": channel,
                "channel_index": c,
                "channel_names": [channel],
                "axes": "YX" if planar else "TZYX" if has_time else "ZYX",
                "voxel_size": list(sizes),
                "file": label,
                "scene": source.scenes[source.scene] if source.scenes else None,
                "scene_index": source.scene if source.scenes else None,
                "transmitted": bool(transmitted[c]),  # the Predict widget's default input
                # the contrast method the file names (core.io.acquisition), None: not said
                "modality": source.modality_of(c),
            }
        }
        kwargs = {
            "name": f"{label}: {channel_label(channel)}",
            "scale": scale,
            "colormap": colormap,
            "blending": blending,
            "metadata": meta,
            # the scenes of one file lie over each other: the first shows, the others wait
            "visible": source.scene == 0 and (transmitted[c] or source.n_channels <= 4),
            **units,
        }
        if limits[c] is not None:
            kwargs["contrast_limits"] = list(limits[c])
        layers.append((transmitted[c], (arrays[c], kwargs, "image")))
    # napari stacks layers in the order given: transmitted light at the bottom, so the additive
    # fluorescence stays visible over it
    return [layer for t, layer in layers if t] + [layer for t, layer in layers if not t]
