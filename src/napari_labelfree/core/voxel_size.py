"""Voxel sizes typed by people: read, checked and shown by one rule before anything uses them.

A voxel size becomes a napari layer's scale the moment it is entered, so an implausible one must
never get that far: ``290, 108, 108`` (nanometres typed as um) rescaled a layer 1000x, ``1e9, 1, 1``
overflowed napari's sliders. Light microscopy z-stacks have voxels between a few nanometres
(super-resolution) and some tens of micrometres (coarse light-sheet steps); anything outside
:data:`PLAUSIBLE_UM` is refused with a line saying what to type instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import LabelFreeError

#: Smallest and largest voxel edge (um) accepted from a person.
PLAUSIBLE_UM = (0.001, 50.0)
VoxelSize = tuple[float, float, float]


def format_voxel_size(vox: Sequence[float] | None, digits: int = 4) -> str:
    """'0.29, 0.108, 0.108' (``digits`` significant digits: a stored 0.290003 reads 0.29);
    '' for None."""
    return ", ".join(f"{float(v):.{digits}g}" for v in vox) if vox else ""


def check_voxel_size(vox: Sequence[float], what: str = "voxel size") -> VoxelSize:
    """Three finite numbers within :data:`PLAUSIBLE_UM`, as floats Z, Y, X in um.

    Raises
    ------
    LabelFreeError
        (field ``voxel_size``) saying what to enter instead; nanometres are recognised.
    """
    try:
        values = tuple(float(v) for v in vox)
    except (TypeError, ValueError):
        values = ()
    shown = ", ".join(map(str, vox)) if isinstance(vox, Sequence) else str(vox)
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise LabelFreeError(
            f"{what} {shown!r} is not three positive numbers Z, Y, X in um "
            "(e.g. 0.29, 0.108, 0.108)",
            field="voxel_size",
        )
    lo, hi = PLAUSIBLE_UM
    if all(lo <= v <= hi for v in values):
        return values  # type: ignore[return-value]
    hint = ""
    if all(lo <= v / 1000 <= hi for v in values):
        hint = f"; in nanometres? Then enter {format_voxel_size([v / 1000 for v in values])}"
    raise LabelFreeError(
        f"{what} {format_voxel_size(values)} um is outside what a microscope takes "
        f"({lo:g} to {hi:g} um per voxel){hint}",
        field="voxel_size",
    )


def parse_voxel_size(text: str, what: str = "voxel size") -> VoxelSize | None:
    """'0.29, 0.108, 0.108' (commas, semicolons or spaces) -> checked (0.29, 0.108, 0.108);
    empty -> None (unknown).

    Raises
    ------
    LabelFreeError
        See :func:`check_voxel_size`.
    """
    text = text.strip()
    if not text:
        return None
    parts = [v for v in text.replace(";", ",").replace(" ", ",").split(",") if v]
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) != 3:
        raise LabelFreeError(
            f"{what} {text!r} is not three positive numbers Z, Y, X in um "
            "(e.g. 0.29, 0.108, 0.108)",
            field="voxel_size",
        )
    return check_voxel_size(values, what)
