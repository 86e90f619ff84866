"""From napari layers to core inputs and back: axes, channels, voxel sizes, prediction layers.

No Qt here (napari layer objects only), so these helpers stay small and testable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import LabelFreeError
from ..core.io import ImageSource, from_array
from ..core.structures import looks_transmitted  # noqa: F401 (the widgets' name test)
from ..core.voxel_size import check_voxel_size, format_voxel_size, parse_voxel_size  # noqa: F401 (re-exported)

#: Key under which this plugin keeps its facts in ``layer.metadata``.
META_KEY = "labelfree"


@dataclass(frozen=True)
class LayerInfo:
    """What a layer is, as the core needs it."""

    axes: str  # of layer.data, a subset of "TCZYX" in that order, e.g. "TZYX"
    channel_names: list[str]
    voxel_size: tuple[float, float, float] | None  # um Z, Y, X, None when unknown

    @property
    def has_time(self) -> bool:
        return "T" in self.axes

    @property
    def has_channels(self) -> bool:
        return "C" in self.axes


def layer_data(layer) -> object:
    """The full-resolution array of an Image layer (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def plugin_metadata(layer) -> dict:
    """What this plugin's reader (or writer) stored with a layer; {} for other layers."""
    meta = layer.metadata.get(META_KEY, {}) if isinstance(layer.metadata, dict) else {}
    return meta if isinstance(meta, dict) else {}


def other_scene(a: dict, b: dict) -> bool:
    """Whether two layers' plugin metadata say they are different scenes (positions): of one
    file, or of two files of scenes, scene k of one going with scene k of the other (a
    transmitted-light file and a stain file of the same positions, as `labelfree train` pairs
    them). The same shape, but another field."""
    path = a.get("path")
    if bool(path) and path == b.get("path"):
        return a.get("scene") != b.get("scene")
    k, j = a.get("scene_index"), b.get("scene_index")
    return k is not None and j is not None and k != j


def field_of(meta: dict) -> tuple[str, Any] | None:
    """The file and scene a layer was read from (its plugin metadata), None for a layer of no
    file: layers of one file and scene are channels of one field."""
    return (meta["path"], meta.get("scene")) if meta.get("path") else None


def transmitted_fields(layers: Sequence[Any]) -> set[tuple[str, Any]]:
    """The fields (file, scene) of the open transmitted-light layers."""
    fields = {field_of(m) for ly in layers if (m := plugin_metadata(ly)).get("transmitted")}
    return {f for f in fields if f is not None}


def other_field(image: dict, stain: dict, fields: set[tuple[str, Any]]) -> bool:
    """Whether ``stain`` (a target, a stain to compare with) is of another field than the
    transmitted-light ``image`` (plugin metadata of both): another scene of its file, or, both
    read from files, a file and scene that hold a transmitted-light image of their own
    (``fields``). A stain in a file of its own (no transmitted light beside it) may be of any."""
    if other_scene(image, stain):
        return True
    mine, theirs = field_of(image), field_of(stain)
    return mine is not None and theirs != mine and theirs in fields


def layer_info(layer) -> LayerInfo:
    """Axes, channel names and voxel size of an Image layer.

    Axes come from this plugin's metadata (set by its reader), a plain ``metadata["axes"]``, or the
    number of dimensions: 2 = YX, 3 = ZYX, 4 = TZYX, 5 = TCZYX.
    """
    meta = plugin_metadata(layer)
    ndim = layer.ndim
    axes = str(meta.get("axes") or layer.metadata.get("axes", "") or "").upper()
    if len(axes) != ndim or any(a not in "TCZYX" for a in axes):
        axes = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TCZYX"}.get(ndim, "")
    if getattr(layer, "rgb", False) or not axes:
        raise LabelFreeError(
            f"layer {layer.name!r} is not a grayscale z-stack (shape {layer.data.shape}); "
            "open the transmitted-light z-stack (Z, Y, X, optionally with time)"
        )
    shape = layer_data(layer).shape
    n_c = shape[axes.index("C")] if "C" in axes else 1
    names = list(meta.get("channel_names") or [])
    if len(names) != n_c:
        names = [layer.name] if n_c == 1 else [f"channel {i}" for i in range(n_c)]
    return LayerInfo(axes, names, layer_voxel_size(layer, axes))


def layer_voxel_size(layer, axes: str | None = None) -> tuple[float, float, float] | None:
    """Voxel size (um Z, Y, X) from the layer's scale, else its metadata, else None.

    A scale of all ones is napari's default, so it says nothing about the physical size.
    """
    axes = axes or {3: "ZYX", 4: "TZYX", 5: "TCZYX"}.get(layer.ndim, "ZYX")
    scale = [float(s) for s in layer.scale]
    if len(axes) == len(scale) and all(a in axes for a in "ZYX"):
        zyx = tuple(scale[axes.index(a)] for a in "ZYX")
        if not np.allclose(zyx, 1.0) and min(zyx) > 0:
            return zyx  # type: ignore[return-value]
    meta = plugin_metadata(layer)
    vox = meta.get("voxel_size")
    if vox is not None and len(vox) == 3 and all(v is not None and v > 0 for v in vox):
        return tuple(float(v) for v in vox)  # type: ignore[return-value]
    return None


def layer_source(layer, info: LayerInfo) -> ImageSource:
    """The layer as a lazily indexed ImageSource (no copy of the data)."""
    # a 2D image or 2D time-lapse (no Z axis) is one plane per frame: 2D models predict it, the
    # plan refuses it for 3D and 2.5D models with the reason
    source = from_array(
        layer_data(layer), info.axes, info.channel_names, physical_sizes=info.voxel_size
    )
    meta = plugin_metadata(layer)
    modality = meta.get("modality")
    if isinstance(modality, str) and source.n_channels == 1:
        # the contrast method its file named (the plugin's reader keeps it): prediction warns
        # where a model's training files named another; the channel's light is the Predict
        # widget's own warning to give (core.predict.plan refuses only without a front end)
        source.channel_modality = (modality,)
    return source


def world_time_axis(viewer, layer) -> int:
    """The viewer axis showing the layer's first axis (napari aligns layer axes to the right)."""
    return viewer.dims.ndim - layer.ndim


def current_frame(viewer, layer, info: LayerInfo) -> int:
    """The time point of ``layer`` under the viewer's time slider (0 without a time axis)."""
    if not info.has_time:
        return 0
    t_axis = info.axes.index("T")
    world = world_time_axis(viewer, layer) + t_axis
    point = float(viewer.dims.point[world])
    t = round((point - float(layer.translate[t_axis])) / float(layer.scale[t_axis]))
    n = layer_data(layer).shape[t_axis]
    return int(min(max(t, 0), n - 1))


def output_geometry(layer, info: LayerInfo) -> tuple[list[float], list[float]]:
    """Scale and translate for a prediction layer (the source's, without a channel axis)."""
    keep = [i for i, a in enumerate(info.axes) if a != "C"]
    scale = [float(layer.scale[i]) for i in keep]
    translate = [float(layer.translate[i]) for i in keep]
    return scale, translate


def output_axes(layer, info: LayerInfo) -> dict[str, list[str]]:
    """``units`` and ``axis_labels`` for a prediction layer: the source's, without a channel axis
    (so the scale bar keeps saying um, napari does not warn of inconsistent units, and the
    overlay's axes are named as its source's); {} where napari has neither."""
    from .._reader import layers_take_units

    if not layers_take_units():
        return {}
    out = {}
    for key in ("units", "axis_labels"):
        values = getattr(layer, key, None)
        if values is not None and len(values) == len(info.axes):
            out[key] = [str(v) for a, v in zip(info.axes, values, strict=True) if a != "C"]
    return out


def prediction_tag(source_name: str, model_path: str) -> dict[str, str]:
    """The metadata that identifies a prediction layer (source layer + model folder)."""
    return {"role": "prediction", "source": source_name, "model": model_path}


def find_prediction_layers(viewer, source_name: str, model_paths: Sequence[str]) -> list:
    """Earlier prediction layers of ``source_name`` by any of ``model_paths``."""
    wanted = set(model_paths)
    found = []
    for layer in viewer.layers:
        tag = plugin_metadata(layer)
        if (
            tag.get("role") == "prediction"
            and tag.get("source") == source_name
            and tag.get("model") in wanted
        ):
            found.append(layer)
    return found


def set_voxel_size(layer, info: LayerInfo, vox: tuple[float, float, float]) -> bool:
    """Give the layer the physical scale of an entered voxel size (its Z, Y, X axes), checked by
    ``core.voxel_size`` first; True when the scale changed (the caller resets the view)."""
    vox = check_voxel_size(vox)
    scale = [float(s) for s in layer.scale]
    for axis, v in zip("ZYX", vox, strict=True):
        if axis in info.axes:
            scale[info.axes.index(axis)] = float(v)
    if np.allclose(scale, layer.scale):
        return False
    layer.scale = scale
    return True


class FollowsRenames:
    """For a widget whose lists name layers: its ``_on_renamed(event)`` is called when any layer
    of the viewer, present or added later, is renamed (``event.source`` is the layer). Bound
    methods are connected: napari keeps weak references to them, so a closed widget is neither
    kept alive nor called."""

    def watch_renames(self, viewer: Any) -> None:
        for layer in viewer.layers:
            layer.events.name.connect(self._on_renamed)
        viewer.layers.events.inserted.connect(self._watch_new_layer)

    def _watch_new_layer(self, event: Any) -> None:
        event.value.events.name.connect(self._on_renamed)

    def _on_renamed(self, event: Any) -> None:
        raise NotImplementedError


def follow_rename(combo: Any, viewer: Any, layer: Any) -> bool:
    """List the layers again in ``combo`` after ``layer`` was renamed; a choice of that layer
    follows it to its new name (napari names are unique, so the chosen name that vanished was
    the renamed layer's). True when the choice moved."""
    stale = combo.value
    combo.reset_choices()
    if stale is not None and stale not in viewer.layers and layer in viewer.layers:
        combo.value = layer.name
        return True
    return False


def add_unselected(viewer: Any, layer: Any) -> None:
    """Add ``layer`` to the viewer leaving the selection as it is (prediction overlays, a sample's
    hidden layers).

    napari makes a new layer the active one: the layer controls switch, the viewer's buttons are
    restyled, and selecting the earlier layer back does it all again (~50-100 ms of GUI thread
    per layer with a software OpenGL). Where napari has no switch for it, the layer is added and
    the selection put back.
    """
    layers = getattr(viewer, "__wrapped__", viewer).layers  # past napari's plugin proxy
    if not hasattr(layers, "_activate_on_insert"):
        active = layers.selection.active
        layers.append(layer)
        if active is not None:
            layers.selection.active = active
        return
    previous = layers._activate_on_insert
    layers._activate_on_insert = False
    try:
        layers.append(layer)
    finally:
        layers._activate_on_insert = previous
