"""npe2 writer: several image layers (e.g. the predictions) -> one multi-channel OME-TIFF.

Channels are named after the layers, physical sizes come from the layers' scale (Z, Y, X in um),
and the file is written atomically by :func:`napari_labelfree.core.io.write_ome_tiff`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import LabelFreeError
from .core.io import write_ome_tiff

PREDICTED_SUFFIX = " (predicted)"


def _channel_name(meta: dict[str, Any], i: int) -> str:
    """The layer's name without the ' (predicted)' suffix (the structure for a prediction layer)."""
    name = str(meta.get("name") or f"channel {i}")
    return name[: -len(PREDICTED_SUFFIX)] if name.endswith(PREDICTED_SUFFIX) else name


def write_predictions(
    path: str, layer_data: Sequence[tuple[Any, dict[str, Any], str]]
) -> list[str]:
    """Write image layers of one shape (ZYX or TZYX) as channels of one TCZYX OME-TIFF.

    napari's save dialog has already asked before replacing an existing file, so the file is
    replaced; it is written to a temporary name first, so a failed write leaves the old one.

    Returns
    -------
    list of str
        The path written (napari's writer contract).
    """
    if not layer_data:
        raise LabelFreeError("no layers to save; select the prediction layers first")
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
    if len(shape) not in (3, 4):
        raise LabelFreeError(f"expected Z, Y, X or T, Z, Y, X layers, got shape {shape}")
    stack = np.stack(arrays, axis=1 if len(shape) == 4 else 0)  # (T,) C, Z, Y, X
    if stack.ndim == 4:
        stack = stack[np.newaxis]
    scale = list(layer_data[0][1].get("scale") or [1.0] * len(shape))
    sizes = tuple(float(s) for s in scale[-3:])
    target = Path(path)
    if not target.name.lower().endswith((".ome.tif", ".ome.tiff")):
        target = target.with_name(target.name.split(".")[0] + ".ome.tif")
    write_ome_tiff(
        target,
        stack.astype(np.float32, copy=False),
        channel_names=[_channel_name(meta, i) for i, (_, meta, _) in enumerate(layer_data)],
        physical_sizes=sizes,
        overwrite=True,
    )
    return [str(target)]
