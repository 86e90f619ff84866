"""npe2 writer: image layers (one prediction, or several) -> one multi-channel OME-TIFF.

Each layer becomes a channel named as the layer was shown (without the "file: " part the reader
adds), in the layer's colour (OME ``Channel/@Color``) and contrast limits (an OME MapAnnotation the
reader restores: a prediction's background stays black) and contrast method (where the reader
took one from the file for every channel saved), with physical sizes from the layer's scale
(Z, Y, X in um) where they are known: an axis of unknown size (scale 1 in napari's "pixel" unit, or
recorded as unknown by the reader) is written without a size, never as a made-up 1 um. The file is
written atomically by :func:`napari_labelfree.core.io.write_ome_tiff`, in the layers' own dtype.

napari's save dialog lists this writer as "OME-TIFF with voxel size, names and colours" beside its
own (npe2 has no public writer priority, so it is not preselected); what is not a grayscale image
saved as TIFF (another file type, an RGB layer) goes to napari's own writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._colours import contrast_annotation, hex_to_ome_int, layer_hex
from .core.errors import LabelFreeError
from .core.io import write_ome_tiff

PREDICTED_SUFFIX = " (predicted)"
TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff")
#: picture formats napari's own writer saves (typed in the save dialog while this writer is chosen)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npz", ".jp2", ".ico", ".tga")
#: micrometres per unit of the length units a napari layer may carry
_UM_PER_UNIT = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "meter": 1e6}


def channel_name(meta: dict[str, Any], i: int) -> str:
    """The channel name a layer is saved under: its name without the reader's "file: " part."""
    name = str(meta.get("name") or f"channel {i}")
    tag = _tag(meta)
    prefix = f"{tag.get('file')}: " if tag.get("file") else None
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def physical_sizes(meta: dict[str, Any], ndim: int) -> tuple[float | None, ...]:
    """Z, Y, X sizes in um from a layer's scale and units; None for an axis of unknown size.

    A 2D layer's Z is None.
    """
    scale = meta.get("scale")
    scale = [float(s) for s in scale] if scale is not None else [1.0] * ndim
    units = meta.get("units")
    units = [str(u) for u in units] if units is not None else [None] * len(scale)
    recorded = _tag(meta).get("voxel_size")
    if not (isinstance(recorded, list | tuple) and len(recorded) == 3):
        recorded = [0.0, 0.0, 0.0]  # nothing recorded: the scale decides
    n = min(3, len(scale))
    out: list[float | None] = [None] * (3 - n)
    for k, (s, unit) in enumerate(zip(scale[-n:], units[-n:], strict=True), start=3 - n):
        if recorded[k] is None and s == 1.0:
            out.append(None)  # the file this layer came from gave no size
        elif unit in _UM_PER_UNIT:
            out.append(s * _UM_PER_UNIT[unit])
        elif s == 1.0 and unit in (None, "pixel"):
            out.append(None)  # napari's default scale: nothing was measured
        else:
            out.append(s)
    return tuple(out)


def _napari_writer(path: str, layer_data: Sequence[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """napari's own writer, for what this one does not write (one layer only)."""
    if len(layer_data) != 1:
        raise LabelFreeError(
            "several layers are saved as one OME-TIFF (.ome.tif) of grayscale channels; "
            "save RGB layers or other file types one layer at a time"
        )
    from napari_builtins.io import napari_write_image

    data, meta, _ = layer_data[0]
    written = napari_write_image(path, data, meta)
    return [written] if isinstance(written, str) else list(written or [])


def write_predictions(
    path: str, layer_data: Sequence[tuple[Any, dict[str, Any], str]]
) -> list[str]:
    """Write image layers of one shape (YX, ZYX or TZYX) as channels of one TCZYX OME-TIFF.

    napari's save dialog has already asked before replacing an existing file, so the file is
    replaced; it is written to a temporary name first, so a failed write leaves the old one.
    A name without a TIFF ending gets ``.ome.tif``.

    Returns
    -------
    list of str
        The path written (napari's writer contract).
    """
    if not layer_data:
        raise LabelFreeError("no layers to save; select the prediction layers first")
    target = Path(path)
    lower = target.name.lower()
    if lower.endswith(PICTURE_SUFFIXES) or any(meta.get("rgb") for _, meta, _ in layer_data):
        return _napari_writer(path, layer_data)
    arrays = [
        np.asarray(data[0] if meta.get("multiscale") else data) for data, meta, _ in layer_data
    ]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise LabelFreeError(
            f"the selected layers differ in shape ({', '.join(map(str, sorted(shapes)))}); "
            "select layers of one image (e.g. the predictions of one z-stack)"
        )
    shape = shapes.pop()
    if len(shape) not in (2, 3, 4):
        raise LabelFreeError(f"expected Y, X or Z, Y, X or T, Z, Y, X layers, got shape {shape}")
    if len(shape) == 2:
        arrays = [a[np.newaxis] for a in arrays]
    stack = np.stack(arrays, axis=1 if len(shape) == 4 else 0)  # (T,) C, Z, Y, X
    if stack.ndim == 4:
        stack = stack[np.newaxis]
    first = layer_data[0][1]
    sizes = physical_sizes(first, len(shape))
    hexes = [layer_hex(meta.get("colormap")) for _, meta, _ in layer_data]
    if not lower.endswith(TIFF_SUFFIXES):
        target = target.with_name(target.name + ".ome.tif")
    dtype = np.result_type(*arrays)
    if dtype.kind not in "uif" or dtype.itemsize > 4:
        dtype = np.dtype(np.float32)  # what OME-TIFF readers take everywhere
    write_ome_tiff(
        target,
        stack.astype(dtype, copy=False),
        channel_names=[channel_name(meta, i) for i, (_, meta, _) in enumerate(layer_data)],
        physical_sizes=sizes,
        channel_colors=[hex_to_ome_int(h) if h else None for h in hexes],
        dtype=dtype,
        overwrite=True,
        annotation=contrast_annotation([meta.get("contrast_limits") for _, meta, _ in layer_data]),
        # the contrast method the reader took from the file (phase contrast, DIC, fluorescence),
        # written back where every channel has one: a crop saved for training keeps it
        channel_modalities=[_tag(meta).get("modality") for _, meta, _ in layer_data],
    )
    return [str(target)]


def _tag(meta: dict[str, Any]) -> dict[str, Any]:
    """This plugin's facts in a layer's metadata ({} for none)."""
    tag = (meta.get("metadata") or {}).get("labelfree")
    return tag if isinstance(tag, dict) else {}
