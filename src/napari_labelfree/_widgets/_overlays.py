"""Prediction overlays: where predicted frames live, how they are shown, and the merged export.

A time-lapse prediction is written frame by frame into a temporary chunked store (zarr on disk,
one chunk per frame, removed with its layer), so hundreds of frames with several models do not
sit in RAM and an unwritten frame costs nothing (it reads as zeros). The worker writes each
frame; the GUI thread only redraws. No Qt here.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import LabelFreeError
from ..core.events import FrameDone
from ..core.files import atomic_file, write_error
from ..core.structures import rgb_for
from ._layers import plugin_metadata

PREDICTED_SUFFIX = " (predicted)"
RUNNING_SUFFIX = " (predicting)"


@dataclass(frozen=True)
class FrameReady(FrameDone):
    """A FrameDone whose arrays are already in the run's stores, with display limits per output."""

    limits: dict[str, tuple[float, float]] | None = None


def frame_store(shape_tzyx: tuple[int, ...]) -> Any:
    """An empty float32 TZYX array on disk, one chunk per frame, deleted when it is collected."""
    import zarr

    folder = tempfile.mkdtemp(prefix="labelfree-overlay-")
    store = zarr.create_array(
        store=folder,
        shape=shape_tzyx,
        chunks=(1, *shape_tzyx[1:]),
        dtype="float32",
        fill_value=0.0,
        compressors=None,  # frames are rewritten whole and read often: speed over size
    )
    weakref.finalize(store, shutil.rmtree, folder, True)
    return store


def display_limits(arr: np.ndarray, high: float = 99.9) -> tuple[float, float]:
    """Contrast limits with the prediction's background (its median) at black.

    Most of a field is background, so the median is the background level; putting it at the low
    end keeps several additive overlays from laying a coloured haze over the whole field.
    """
    sample = np.asarray(arr, dtype=np.float32).ravel()
    if sample.size > 1_000_000:  # a strided sample is enough for percentiles
        sample = sample[:: sample.size // 500_000]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [50.0, high]))
    if hi <= lo:
        hi = lo + max(abs(lo) * 1e-3, 1e-6)
    return lo, hi


def store_frame(
    event: FrameDone, stores: dict[str, Any] | None, drop_z: bool = False
) -> FrameReady:
    """Write a finished frame into its stores (worker thread) and compute its display limits.

    ``drop_z``: each array is one plane shown without a Z axis (a 2D layer, a projection)."""
    if drop_z:
        event = FrameDone(event.frame, event.n_frames, {n: a[0] for n, a in event.arrays.items()})
    limits = {name: display_limits(arr) for name, arr in event.arrays.items()}
    if stores is None:  # one volume: the arrays become the layers' data as they are
        return FrameReady(event.frame, event.n_frames, event.arrays, limits)
    for name, arr in event.arrays.items():
        stores[name][event.frame] = arr
    return FrameReady(event.frame, event.n_frames, {}, limits)


def is_prediction(layer: Any) -> bool:
    return plugin_metadata(layer).get("role") == "prediction"


def image_layer_names(viewer: Any) -> list[str]:
    """Names of the image layers a widget offers as inputs (not prediction overlays)."""
    from napari.layers import Image

    return [ly.name for ly in viewer.layers if isinstance(ly, Image) and not is_prediction(ly)]


def current_plane(viewer: Any, layer: Any) -> np.ndarray:
    """The 2D plane of ``layer`` the viewer shows now (its last two axes at the sliders' point)."""
    point = layer.world_to_data(viewer.dims.point[-layer.ndim :])
    shape = layer.data.shape
    index = tuple(
        int(min(max(round(float(p)), 0), n - 1))
        for p, n in zip(point[: layer.ndim - 2], shape[:-2], strict=True)
    )
    return np.asarray(layer.data[index], dtype=np.float32)


def merged_rgb(viewer: Any) -> np.ndarray:
    """RGB (uint8) of the visible prediction overlays on the shown plane, as the paper's Figure 5.

    Each overlay is scaled by its contrast limits and coloured by its colormap's colour from the
    structure table; colours add and saturate at white.
    """
    layers = [ly for ly in viewer.layers if is_prediction(ly) and ly.visible]
    if not layers:
        raise LabelFreeError("no prediction overlay is visible; predict or show one first")
    # one field's structures in one picture: overlays of another image (another file of the same
    # shape, shown over it) would add another field's cells
    sources = list(dict.fromkeys(str(plugin_metadata(ly).get("source")) for ly in layers))
    if len(sources) > 1:
        raise LabelFreeError(
            f"the visible overlays are predictions of {len(sources)} images ({', '.join(sources)}); "
            "hide the overlays of all but one image, then save"
        )
    rgb: np.ndarray | None = None
    for layer in layers:
        plane = current_plane(viewer, layer)
        lo, hi = layer.contrast_limits
        norm = np.clip((plane - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        colour = np.asarray(rgb_for(layer.colormap.name), dtype=np.float32)
        part = norm[..., np.newaxis] * colour
        if rgb is not None and rgb.shape != part.shape:
            raise LabelFreeError(
                "the visible overlays have different shapes; hide those of other images"
            )
        rgb = part if rgb is None else rgb + part
    assert rgb is not None
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def save_rgb(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an RGB image as PNG or TIFF (by the name's extension), via a temporary file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        path = path.with_suffix(".png")
        suffix = ".png"
    try:
        with atomic_file(path) as tmp:
            if suffix == ".png":
                from PIL import Image

                Image.fromarray(rgb).save(tmp, format="PNG")
            else:
                import tifffile

                tifffile.imwrite(tmp, rgb, photometric="rgb")
    except OSError as e:
        raise write_error(path, e) from e
    return path


def save_merged(viewer: Any, path: str | Path) -> Path | None:
    """Save the merged RGB of the visible overlays; a problem becomes a notification."""
    from napari.utils.notifications import show_info

    from ._workers import notify_error

    try:
        written = save_rgb(merged_rgb(viewer), path)
    except LabelFreeError as e:
        notify_error(e)
        return None
    show_info(f"saved {written}")
    return written
