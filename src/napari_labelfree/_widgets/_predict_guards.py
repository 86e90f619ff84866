"""The Predict widget's guards against a wrong input: a typed voxel size checked before napari sees
it, the voxel size Predict assumes shown while it is unknown, a warning before predicting from a
layer that looks like fluorescence. Kept apart so the widget stays a thin form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.utils.notifications import show_warning

from ..core.bundle import ModelBundle
from ..core.errors import LabelFreeError
from ..core.voxel_size import VoxelSize, format_voxel_size, parse_voxel_size
from ._layers import layer_info, set_voxel_size
from ._source_kind import fluorescence_warning
from ._workers import notify_error


def enter_voxel_size(widget: Any) -> VoxelSize | None:
    """Check the typed voxel size (``core.voxel_size``), make it the chosen layer's scale, and
    reset the view when the scale changed (else the layer may sit far outside the view).

    An implausible size never reaches the layer: it is said in a notification and its control
    marked. Returns the size applied (None when empty or refused).
    """
    name = widget.image.value
    if not name or name not in widget.viewer.layers:
        return None  # no image yet: nothing to scale
    layer = widget.viewer.layers[name]
    try:
        vox = parse_voxel_size(widget.voxel_size.value)
        if vox is not None and set_voxel_size(layer, layer_info(layer), vox):
            widget.viewer.reset_view()
    except LabelFreeError as e:
        notify_error(e)
        widget.runner.highlight(e.fields)
        return None
    widget.runner.clear_highlight()
    return vox


def show_assumption(widget: Any) -> None:
    """Show, beside Predict, the voxel size it assumes while the image's is unknown."""
    name, typed = widget.image.value, widget.voxel_size.value
    text = assumed_voxel_text(widget.viewer, name, typed, widget.models.checked_bundles)
    widget.assumption.setText(text)
    widget.assumption.setVisible(bool(text))


def assumed_voxel_text(
    viewer: Any, name: str | None, typed: str, checked_bundles: Callable[[], list[ModelBundle]]
) -> str:
    """What Predict will assume while the z-stack ``name``'s voxel size is unknown ('' when it is
    known, or when no z-stack is chosen)."""
    if not name or name not in viewer.layers or typed.strip():
        return ""
    try:
        info = layer_info(viewer.layers[name])
    except LabelFreeError:
        return ""
    if "Z" not in info.axes:
        return ""
    bundles = checked_bundles()
    if not bundles:
        return "Voxel size unknown: enter it above, or Predict assumes the ticked model's."
    vox = format_voxel_size(bundles[0].spec.voxel_size_um)
    return (
        f"Voxel size unknown: Predict assumes {vox} um (the model's, no resampling). "
        "Enter the image's voxel size above if it differs."
    )


def warn_fluorescence_once(widget: Any, layer: Any, channel: int | None) -> bool:
    """Warn (once per layer and channel) before predicting from what looks like fluorescence;
    True when the warning was given now and the prediction must not start."""
    warning = fluorescence_warning(layer, channel)
    if warning is None or widget.warned == (layer.name, channel):
        return False
    widget.warned = (layer.name, channel)
    show_warning(warning)
    widget.runner.highlight(("image",))
    return True
