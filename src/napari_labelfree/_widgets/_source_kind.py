"""Transmitted light or fluorescence? The layer to predict from by default, and when to warn.

The models predict fluorescence from transmitted light; predicting from a fluorescence layer gives
a plausible-looking but meaningless overlay. The evidence, strongest first: a prediction overlay,
or a name that says prediction or truth ("dna (predicted)", "sec61b (true)"); a name that says
transmitted light ("bright-field", "DIC"); the reader's verdict in the layer's metadata; a
structure's name ("Hoechst", "lamin B1"); the pixels of the whole stack, every frame
(``core.transmitted``, the one pixel test). No Qt here.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..core.errors import LabelFreeError
from ..core.structures import find_structure, looks_transmitted
from ..core.transmitted import TRANSMITTED_SKEW, stack_brightness_skew
from ._layers import layer_data, layer_info, plugin_metadata

#: Layer-name endings of predictions and of simulated truths: fluorescence, never an input.
NOT_INPUT_SUFFIXES = (" (predicted)", " (predicting)", " (true)")
#: Frames read of lazy data (first, middle, last: each read can be a large file read on the GUI
#: thread); data in memory is sampled in every frame.
LAZY_FRAMES = 3

_skews: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _unwrap(layer: Any) -> Any:
    """The layer behind napari's public-only proxy (plugins may get layers through one)."""
    return getattr(layer, "__wrapped__", layer)


def _channel_stack(layer: Any, channel: int | None) -> Any:
    """The layer's data (..., Z, Y, X) of one channel (all of it for a layer without channels);
    the smallest level of a multiscale layer (the same pixels, far fewer to read)."""
    data = layer.data[-1] if getattr(layer, "multiscale", False) else layer.data
    try:
        info = layer_info(layer)
    except LabelFreeError:
        return data
    if not info.has_channels:
        return data
    index = [slice(None)] * len(info.axes)
    index[info.axes.index("C")] = channel or 0
    return data[tuple(index)]


def pixel_skew(layer: Any, channel: int | None = None) -> float:
    """``core.transmitted.stack_brightness_skew`` of a layer (one channel), remembered per data."""
    data = layer_data(layer)
    key = (id(data), channel)
    try:
        cache = _skews.setdefault(_unwrap(layer), {})
    except TypeError:  # not weak-referenceable: no memory, just compute
        cache = {}
    if key not in cache:
        stack = _channel_stack(layer, channel)
        lazy = not isinstance(stack, np.ndarray)
        cache[key] = stack_brightness_skew(stack, LAZY_FRAMES if lazy else None)
    return cache[key]


def _names(layer: Any, channel: int | None) -> list[str]:
    meta = plugin_metadata(layer)
    names = [str(layer.name)]
    if meta.get("channel"):
        names.append(str(meta["channel"]))
    channel_names = meta.get("channel_names") or []
    if channel is not None and channel < len(channel_names) and len(channel_names) > 1:
        names = [str(channel_names[channel])]  # one channel of several: its own name decides
    return names


def kind(layer: Any, channel: int | None = None) -> str:
    """'transmitted' or 'fluorescence' for a layer (one channel of it), from the evidence above."""
    meta = plugin_metadata(layer)
    if meta.get("role") == "prediction" or str(layer.name).endswith(NOT_INPUT_SUFFIXES):
        return "fluorescence"
    names = _names(layer, channel)
    if any(looks_transmitted(n) for n in names):
        return "transmitted"
    if isinstance(meta.get("transmitted"), bool):  # the reader's verdict (one layer per channel)
        return "transmitted" if meta["transmitted"] else "fluorescence"
    if any(find_structure(n) is not None for n in names):
        return "fluorescence"
    return "transmitted" if pixel_skew(layer, channel) <= TRANSMITTED_SKEW else "fluorescence"


def _channels(layer: Any) -> list[int | None]:
    """The channels to judge: each of a multi-channel layer, else the layer as a whole."""
    try:
        info = layer_info(layer)
    except LabelFreeError:
        return [None]
    return list(range(len(info.channel_names))) if info.has_channels else [None]


def _transmitted_channel(layer: Any) -> int | None | bool:
    """The first channel of the layer that is transmitted light (None: the whole layer), or
    False when none is."""
    if getattr(layer, "rgb", False):
        return False
    return next((c for c in _channels(layer) if kind(layer, c) == "transmitted"), False)


def default_source(layers: Any) -> Any:
    """The layer to predict from when the user has not chosen: transmitted light (a z-stack before
    a plane, a telling name first, then the most bright-field-like pixels); None rather than a
    fluorescence, prediction or RGB layer."""
    inputs = [(ly, c) for ly in layers if (c := _transmitted_channel(ly)) is not False]
    if not inputs:
        return None

    def rank(item: tuple[Any, int | None]) -> tuple[bool, bool, float]:
        layer, c = item
        named = any(looks_transmitted(n) for n in _names(layer, c))
        # the name or the reader's verdict: no pixels read for these
        said = named or plugin_metadata(layer).get("transmitted") is True
        return (layer.ndim >= 3, said, 0.0 if said else -pixel_skew(layer, c))

    return max(inputs, key=rank)[0]


def fluorescence_warning(layer: Any, channel: int | None) -> str | None:
    """What to say before predicting from a layer that looks like fluorescence; None otherwise."""
    if kind(layer, channel) == "transmitted":
        return None
    what = f"{layer.name!r}" + (f" (channel {channel})" if channel is not None else "")
    return (
        f"{what} looks like fluorescence (a dark background with bright structures, or a "
        "prediction), not transmitted light: the models predict fluorescence from bright-field, "
        "phase or DIC images. Choose the transmitted-light layer, or press Predict again to "
        "predict from this one anyway."
    )
