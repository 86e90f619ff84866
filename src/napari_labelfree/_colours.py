"""How layers look <-> what files store: colours (OME-TIFF ``Channel/@Color``, OME-Zarr omero) and
contrast limits (an OME-TIFF MapAnnotation, OME-Zarr omero windows).

The RRGGBB of each named colormap is :data:`core.io.ome_zarr_out.OMERO_COLOURS`, so a prediction
saved as OME-TIFF or OME-Zarr reopens in the colour it was shown in, with the contrast limits it
was shown with (a prediction's background at black).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .core.io.ome_zarr_out import OMERO_COLOURS, omero_colour

#: RRGGBB -> napari colormap name (the first name of each colour in the table)
_NAMES = {hex_: name for name, hex_ in reversed(list(OMERO_COLOURS.items()))}


def layer_hex(colormap: Any) -> str | None:
    """RRGGBB of a layer's colormap (a name, a napari Colormap or its dict), or None."""
    if colormap is None:
        return None
    if isinstance(colormap, str):
        return omero_colour(colormap) if colormap.lower() in OMERO_COLOURS else None
    name = colormap.get("name") if isinstance(colormap, dict) else getattr(colormap, "name", None)
    if isinstance(name, str) and name.lower() in OMERO_COLOURS:
        return omero_colour(name)
    colors = (
        colormap.get("colors") if isinstance(colormap, dict) else getattr(colormap, "colors", None)
    )
    try:
        r, g, b = (float(v) for v in list(colors)[-1][:3])  # the brightest end
    except (TypeError, ValueError, IndexError):
        return None
    return "".join(f"{round(min(max(v, 0.0), 1.0) * 255):02X}" for v in (r, g, b))


def hex_to_ome_int(hex_: str) -> int:
    """OME's Color: RGBA packed in a signed 32-bit integer (the CLI's rule, core.io.ome_color)."""
    from .core.io.write import ome_color

    return ome_color(hex_)


def ome_int_to_hex(value: int) -> str:
    return f"{(int(value) & 0xFFFFFFFF) >> 8:06X}"


def colormap_for_hex(hex_: str) -> Any:
    """A napari colormap for RRGGBB: the named one of that colour, else black to that colour."""
    hex_ = hex_.upper()
    if hex_ in _NAMES:
        return _NAMES[hex_]
    from napari.utils.colormaps import Colormap

    rgb = [int(hex_[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return Colormap([[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], name=f"#{hex_}")


def stored_hexes(path: Path | None, n_channels: int) -> list[str | None]:
    """RRGGBB per channel as a file stores it (OME-TIFF, OME-Zarr), None where it stores none."""
    none: list[str | None] = [None] * n_channels
    if path is None:
        return none
    try:
        if path.is_dir():
            return _zarr_hexes(path, n_channels) or none
        return _ome_tiff_hexes(path, n_channels) or none
    except Exception:  # colours are a nicety: a file we cannot parse keeps the table's colours
        return none


def _ome_tiff_hexes(path: Path, n: int) -> list[str | None] | None:
    if not path.name.lower().endswith((".tif", ".tiff")):
        return None
    import xml.etree.ElementTree as ET

    import tifffile

    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    if not xml:
        return None
    channels = ET.fromstring(xml).findall("./{*}Image/{*}Pixels/{*}Channel")
    if len(channels) != n:
        return None
    return [
        ome_int_to_hex(int(c.get("Color"))) if c.get("Color") is not None else None
        for c in channels
    ]


def _zarr_hexes(path: Path, n: int) -> list[str | None] | None:
    for name in ("zarr.json", ".zattrs"):
        f = path / name
        if f.is_file():
            attrs = json.loads(f.read_text())
            attrs = attrs.get("attributes", attrs)
            omero = attrs.get("ome", attrs).get("omero", {})
            channels = omero.get("channels", [])
            if len(channels) == n:
                return [str(c["color"]) if c.get("color") else None for c in channels]
    return None


#: OME MapAnnotation namespace of the contrast limits this plugin's writer stores (key: channel
#: index, value: "low high").
CONTRAST_NAMESPACE = "napari-labelfree/contrast-limits"


def contrast_annotation(limits: list[Any]) -> dict[str, str] | None:
    """The MapAnnotation for per-channel contrast limits (None where a channel has none)."""
    pairs = {}
    for c, lim in enumerate(limits):
        try:
            lo, hi = (float(v) for v in lim)
        except (TypeError, ValueError):
            continue
        if np.isfinite([lo, hi]).all() and hi > lo:
            pairs[str(c)] = f"{lo!r} {hi!r}"
    return {"Namespace": CONTRAST_NAMESPACE, **pairs} if pairs else None


def stored_contrast_limits(path: Path | None, n_channels: int) -> list[tuple[float, float] | None]:
    """Contrast limits per channel as a file stores them, None where it stores none."""
    none: list[tuple[float, float] | None] = [None] * n_channels
    if path is None:
        return none
    try:
        found = _zarr_windows(path, n_channels) if path.is_dir() else _ome_tiff_limits(path)
    except Exception:  # a nicety: a file we cannot parse opens with napari's own limits
        return none
    return [found.get(c) for c in range(n_channels)] if found else none


def _ome_tiff_limits(path: Path) -> dict[int, tuple[float, float]]:
    if not path.name.lower().endswith((".tif", ".tiff")):
        return {}
    import xml.etree.ElementTree as ET

    import tifffile

    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    out: dict[int, tuple[float, float]] = {}
    for ann in ET.fromstring(xml).iter() if xml else ():
        if ann.tag.endswith("MapAnnotation") and ann.get("Namespace") == CONTRAST_NAMESPACE:
            for m in ann.iter():
                if m.tag.endswith("}M") and m.text:
                    lo, hi = (float(v) for v in m.text.split())
                    if hi > lo:
                        out[int(m.get("K", "-1"))] = (lo, hi)
    return out


def _zarr_windows(path: Path, n: int) -> dict[int, tuple[float, float]]:
    for name in ("zarr.json", ".zattrs"):
        f = path / name
        if f.is_file():
            attrs = json.loads(f.read_text())
            attrs = attrs.get("attributes", attrs)
            channels = attrs.get("ome", attrs).get("omero", {}).get("channels", [])
            if len(channels) == n:
                windows = [c.get("window") or {} for c in channels]
                return {
                    c: (float(w["start"]), float(w["end"]))
                    for c, w in enumerate(windows)
                    if "start" in w and "end" in w and float(w["end"]) > float(w["start"])
                }
    return {}
