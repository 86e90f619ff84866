"""The overlays of one prediction run, on the GUI thread: created lazily, never removing any layer.

A run's layers appear with the first finished frame, named "<structure> (predicting)", beside
the earlier run's overlays of the same image and models, which are hidden meanwhile (not
removed). At the end the new layers are renamed "<structure> (predicted)" (napari numbers a name
already taken). The overlays of a layer the reader opened carry its file's name, as its channels
do ("cells: dna (predicted)" beside "cells: DAPI"; one scene of several: "wells [Position 2]: dna
(predicted)"), so that the overlays of two files open together say which is which; a scene's are
shown only when that scene is, since the scenes lie over each other. A run that predicted every
frame stays shown, the earlier overlays hidden beside it; a run that stopped early (Cancel, a removed layer, an error) keeps the frames it finished,
and where there were earlier overlays those are shown again as they were and the partial new
ones are kept hidden. Only the user removes overlays: a finished prediction is never lost.
No Qt here.
"""

from __future__ import annotations

from typing import Any

from napari.layers import Image

from ..core.bundle import ModelBundle
from ._layers import (
    META_KEY,
    LayerInfo,
    add_unselected,
    current_frame,
    find_prediction_layers,
    layer_data,
    output_axes,
    output_geometry,
    plugin_metadata,
    prediction_tag,
)
from ._overlays import PREDICTED_SUFFIX, RUNNING_SUFFIX, FrameReady
from ._predict_job import Planned, VolumePartial
from ._trust import base_name, overlay_style


def _unwrap(obj: Any) -> Any:
    """The object behind napari's public-only proxy (plugins get the viewer through one, so the
    layers they add are proxies, while layer events carry the layers themselves)."""
    return getattr(obj, "__wrapped__", obj)


class OverlayRun:
    """Layers of one run of one source layer."""

    def __init__(self, viewer: Any, source: Any, info: LayerInfo, model_paths: list[str]) -> None:
        self.viewer, self.source, self.info = viewer, source, info
        self.source_name = source.name
        source_meta = plugin_metadata(source)
        # a file the reader opened ("cells", or one scene of several, "wells [Position 2]"): its
        # overlays say which, as its channels do ("cells: dna (predicted)" beside "cells: DAPI")
        self.file_label = source_meta.get("file") or None
        self.is_scene = source_meta.get("scene") is not None
        self.scale, self.translate = output_geometry(source, info)
        self.previous = [
            (ly, ly.visible) for ly in find_prediction_layers(viewer, source.name, model_paths)
        ]
        self.names: tuple[str, ...] = ()
        self.bundles: tuple[ModelBundle, ...] = ()
        self.stores: dict[str, Any] | None = None
        self.layers: dict[str, Any] = {}
        self.frames_done: list[int] = []
        self.limits: dict[str, tuple[float, float]] = {}
        self.first_arrays: dict[str, Any] = {}
        self.pending: list[str] = []  # overlays still to add (one per event-loop turn)
        self.creating = False  # a chain of additions (one per event-loop turn) is under way

    def planned(self, event: Planned) -> None:
        self.names, self.bundles, self.stores = event.names, event.bundles, event.stores
        if "Z" not in self.info.axes or not (event.drop_z or event.span_z):
            return
        z = [a for a in self.info.axes if a != "C"].index("Z")  # in the overlay's axes
        if event.drop_z:  # a projection: one plane over every z
            self.z_dropped = z
            del self.scale[z], self.translate[z]
        else:  # a time-lapse's projection: its one plane as thick as the stack
            n_z = layer_data(self.source).shape[self.info.axes.index("Z")]
            # centred, so that every plane of the stack rounds to this one
            self.translate[z] += (n_z - 1) / 2 * self.scale[z]
            self.scale[z] *= n_z

    def owns(self, layer: Any) -> bool:
        """Whether removing ``layer`` concerns this run (its source or one of its overlays)."""
        layer = _unwrap(layer)
        mine = [self.source, *self.layers.values()]
        return any(layer is _unwrap(ly) for ly in mine)

    def partial_ready(self, event: VolumePartial) -> None:
        """One volume's outputs so far: the first make the layers, later ones fill them in."""
        if self.stores is not None or self.frames_done:
            return  # a time-lapse fills in frame by frame; a finished volume is not undone
        if not self.limits:
            self._first(event.arrays, event.limits)
            return
        self._show_volume(event.arrays, None)

    def _first(self, arrays: dict[str, Any], limits: dict[str, Any] | None) -> None:
        """The first outputs: their data and display limits make the layers (added one per turn)."""
        self.limits = dict(limits or {})
        self.first_arrays = arrays
        self.pending = [n for n in self.names if self.stores is not None or n in arrays]
        for layer, _ in self.previous:
            layer.visible = False

    def _show_volume(self, arrays: dict[str, Any], limits: dict[str, Any] | None) -> None:
        """New data for a volume's layers (and the ones still to add); final limits if given."""
        self.first_arrays = {**self.first_arrays, **arrays}
        if limits:
            self.limits.update(limits)
        for name, layer in self.layers.items():
            if layer not in self.viewer.layers or name not in arrays:
                continue
            if layer.data is arrays[name]:
                layer.refresh()
            else:
                layer.data = arrays[name]
            if limits and name in limits:
                lo, hi = limits[name]
                layer.contrast_limits_range = (min(lo, 0.0), hi + max(hi - lo, abs(hi)))
                layer.contrast_limits = (lo, hi)
        have = set(self.layers) | set(self.pending)
        self.pending += [n for n in self.names if n in arrays and n not in have]

    def frame_ready(self, event: FrameReady) -> None:
        """Take a finished frame: the first sets the layers to create; later ones redraw."""
        self.frames_done.append(event.frame)
        if self.stores is None and self.limits:  # one volume shown filling in: its final data
            self._show_volume(event.arrays, event.limits)
            return
        if not self.limits:  # the first frame: its data and display limits make the layers
            self._first(event.arrays, event.limits)
            return
        if (
            self.source in self.viewer.layers
            and current_frame(self.viewer, self.source, self.info) != event.frame
        ):
            return  # the frame is off screen: the store has it, nothing to redraw
        for layer in self.layers.values():
            if layer in self.viewer.layers:
                layer.refresh()

    def create_next(self) -> bool:
        """Add one pending overlay layer; True while more are pending.

        Adding a napari layer costs a few hundred ms of GUI time (controls, canvas node): one per
        event-loop turn keeps the viewer responsive in between.
        """
        self.creating = bool(self.pending)
        if not self.pending:
            return False
        name = self.pending.pop(0)
        bundle = self.bundles[self.names.index(base_name(name))]  # an uncertainty: its model's
        data = self.first_arrays[name] if self.first_arrays else self.stores[name]  # type: ignore[index]
        meta = prediction_tag(self.source_name, str(bundle.path))
        meta["structure"] = bundle.spec.structure
        style = overlay_style(name, bundle)  # an uncertainty: hidden, its own colormap
        prefix = ""
        if self.file_label:
            meta["file"] = self.file_label  # saved, the channel is named without it (_writer)
            prefix = f"{self.file_label}: "
        if self.is_scene and not self.source.visible:
            style["visible"] = False  # a hidden scene's overlay would lie over the shown one
        lo, hi = self.limits.get(name, (0.0, 1.0))
        layer = Image(
            data,
            name=f"{prefix}{name}{RUNNING_SUFFIX}",
            **style,
            blending="additive",
            scale=self.scale,
            translate=self.translate,
            contrast_limits=(lo, hi),
            metadata={META_KEY: meta},
            **self._axes(),  # the source's um (one unit for the scale bar) and axis names
        )
        # room above the limits to brighten, for negative predictions too (hi < 0 doubled is lower)
        layer.contrast_limits_range = (min(lo, 0.0), hi + max(hi - lo, abs(hi)))
        add_unselected(self.viewer, layer)  # the source stays the active layer
        self.layers[name] = layer
        self.creating = bool(self.pending)
        return self.creating

    def _axes(self) -> dict[str, list[str]]:
        axes = output_axes(self.source, self.info)
        if getattr(self, "z_dropped", None) is not None:  # a one-plane output has no z axis
            for values in axes.values():
                del values[self.z_dropped]
        return axes

    def complete(self, total: int) -> bool:
        """Whether every frame of the source was predicted (``total``: frames in the run)."""
        return len(set(self.frames_done)) >= max(total, 1)

    def summary(self, error: BaseException | None, stopped: bool, total: int) -> str:
        """The status line for the end of the run."""
        n = len(self.frames_done)
        alive = [ly.name for ly in self.layers.values() if ly in self.viewer.layers]
        earlier = self._previous_alive()
        if self.complete(total) and error is None:
            done = f"Done: {', '.join(alive)}" + (f" ({n} frames)" if self.info.has_time else "")
            if self.is_scene and not self.source.visible:
                done += f" (hidden, as its scene is: show {self.source_name} to see them)"
            if earlier:
                done += f"; the earlier overlays are kept, hidden ({', '.join(earlier)})"
            return done
        head = "Prediction failed" if error is not None else "Stopped"
        if n == 0 or not alive:
            kept = "nothing new was predicted"
        elif self.info.has_time:
            kept = f"{n} of {total} frames predicted ({', '.join(alive)}; the others are empty)"
        else:
            kept = "before the prediction finished"
        text = f"{head}: {kept}"
        if earlier:
            text += f"; the earlier overlays are shown again ({', '.join(earlier)})"
            if alive and n:
                text += ", the new partial ones are hidden beside them"
        return text + "."

    def _previous_alive(self) -> list[str]:
        return [ly.name for ly, _ in self.previous if ly in self.viewer.layers]

    def finish(self, complete: bool) -> list[str]:
        """End the run; every finished frame is kept and no layer is removed.

        ``complete``: every frame was predicted. The new overlays are renamed "(predicted)"; when
        the run stopped early and earlier overlays exist, those are shown again and the partial
        new ones hidden beside them.
        """
        while self.create_next():  # frames that finished get their layers, whatever the end
            pass
        alive = [ly for ly in self.layers.values() if ly in self.viewer.layers]
        for layer in alive:
            layer.name = layer.name.removesuffix(RUNNING_SUFFIX) + PREDICTED_SUFFIX
        if not complete and self._previous_alive():
            for layer, visible in self.previous:
                if layer in self.viewer.layers:
                    layer.visible = visible
            for layer in alive:
                layer.visible = False
        return [ly.name for ly in alive]
