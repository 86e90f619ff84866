"""The overlays of one prediction run, on the GUI thread: created lazily, replaced only on success.

A run's layers appear with the first finished frame, named "<structure> (predicting)"; the
earlier run's overlays of the same image and models are hidden meanwhile. When the run ends with
at least one frame (done, or cancelled by the user) the earlier overlays go and the new ones are
renamed "<structure> (predicted)"; when it fails, the new ones go and the earlier ones come back,
so a failed run never loses what was shown. No Qt here.
"""

from __future__ import annotations

from typing import Any

from ..core.bundle import ModelBundle
from ._layers import (
    META_KEY,
    LayerInfo,
    current_frame,
    find_prediction_layers,
    output_geometry,
    output_units,
    prediction_tag,
)
from ._overlays import PREDICTED_SUFFIX, RUNNING_SUFFIX, FrameReady
from ._predict_job import Planned
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

    def planned(self, event: Planned) -> None:
        self.names, self.bundles, self.stores = event.names, event.bundles, event.stores

    def owns(self, layer: Any) -> bool:
        """Whether removing ``layer`` concerns this run (its source or one of its overlays)."""
        layer = _unwrap(layer)
        mine = [self.source, *self.layers.values()]
        return any(layer is _unwrap(ly) for ly in mine)

    def frame_ready(self, event: FrameReady) -> None:
        """Take a finished frame: the first sets the layers to create; later ones redraw."""
        self.frames_done.append(event.frame)
        if not self.limits:  # the first frame: its data and display limits make the layers
            self.limits = event.limits or {}
            self.first_arrays = event.arrays
            self.pending = list(self.names)
            for layer, _ in self.previous:
                layer.visible = False
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
        if not self.pending:
            return False
        name = self.pending.pop(0)
        bundle = self.bundles[self.names.index(base_name(name))]  # an uncertainty: its model's
        data = self.first_arrays[name] if self.first_arrays else self.stores[name]  # type: ignore[index]
        meta = prediction_tag(self.source_name, str(bundle.path))
        meta["structure"] = bundle.spec.structure
        lo, hi = self.limits.get(name, (0.0, 1.0))
        layer = self.viewer.add_image(
            data,
            name=f"{name}{RUNNING_SUFFIX}",
            **overlay_style(name, bundle),  # an uncertainty: hidden, its own colormap
            blending="additive",
            scale=self.scale,
            translate=self.translate,
            contrast_limits=(lo, hi),
            metadata={META_KEY: meta},
            **output_units(self.source, self.info),  # the source's um: one unit for the scale bar
        )
        # room above the limits to brighten, for negative predictions too (hi < 0 doubled is lower)
        layer.contrast_limits_range = (min(lo, 0.0), hi + max(hi - lo, abs(hi)))
        self.layers[name] = layer
        if not self.pending and self.source in self.viewer.layers:
            self.viewer.layers.selection.active = self.source  # the source stays the active layer
        return bool(self.pending)

    def summary(self, error: BaseException | None, stopped: bool, total: int) -> str:
        """The status line for the end of the run."""
        n = len(self.frames_done)
        if error is not None:
            return "Prediction failed" + ("; earlier overlays are kept." if self.previous else ".")
        if stopped and n < max(total, 1):
            if self.info.has_time:
                return f"Stopped: {n} of {total} frames predicted; the others are empty."
            return "Stopped before the prediction finished."
        names = ", ".join(ly.name for ly in self.layers.values() if ly in self.viewer.layers)
        return f"Done: {names}" + (f" ({n} frames)" if self.info.has_time else "")

    def finish(self, succeeded: bool) -> list[str]:
        """End the run: keep the new overlays (and drop the earlier ones) or roll back."""
        while succeeded and self.create_next():
            pass
        alive = [ly for ly in self.layers.values() if ly in self.viewer.layers]
        if succeeded and alive:
            for layer, _ in self.previous:
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
            for layer in alive:
                layer.name = layer.name.removesuffix(RUNNING_SUFFIX) + PREDICTED_SUFFIX
            return [ly.name for ly in alive]
        for layer in alive:
            self.viewer.layers.remove(layer)
        for layer, visible in self.previous:
            if layer in self.viewer.layers:
                layer.visible = visible
        return []
