"""Tile sizes that serve an interactive user: tiny tiles raised, CPU frames cut into a few tiles.

Two rules a front end applies around :func:`~napari_labelfree.core.predict.plan.plan_prediction`:

- a tile under :data:`MIN_TILE` voxels on an axis is almost always a typo: every tile carries a
  border of the network's stride, so a 10x10x10 tile spends most of its work on borders (measured:
  259 s instead of 1.3 s for one frame). It is raised, with a Notice.
- on a CPU, one tile per frame makes a frame one long step that cannot be interrupted; cutting a
  large frame into about four tiles (two along Y and X) lets Cancel and the time slider take
  effect within a tile, at a small cost in overlap.

No torch, no Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..events import Notice

#: Smallest tile side (voxels) accepted without a notice.
MIN_TILE = 16
#: Y/X grid sides from which a CPU frame is cut in two along that axis.
CPU_SPLIT_FROM = 64


def _yx_multiple(multiple: int | Sequence[int]) -> int:
    """The Y/X stride of a network (``multiple`` given for every axis, or per axis Z, Y, X)."""
    return int(multiple) if isinstance(multiple, int) else int(max(multiple[1:]))


def raise_tiny_tile(
    tile_shape: Sequence[int], multiple: int | Sequence[int] = 1, flat: bool = False
) -> tuple[tuple[int, int, int], Notice | None]:
    """``tile_shape`` with each side at least ``max(MIN_TILE, 2 * multiple)``, and a Notice if raised.

    ``flat``: the models are 2D / 2.5D, whose tiles may be one plane thick (Z is left as given).
    """
    floor = max(MIN_TILE, 2 * _yx_multiple(multiple))
    raised = tuple(
        int(t) if flat and a == 0 else max(int(t), floor) for a, t in enumerate(tile_shape)
    )
    if raised == tuple(int(t) for t in tile_shape):
        return raised, None  # type: ignore[return-value]
    notice = Notice(
        f"a tile of {'x'.join(map(str, tile_shape))} voxels would spend most of its time on tile "
        f"borders; using {'x'.join(map(str, raised))}",
        field="tile_shape",
    )
    return raised, notice  # type: ignore[return-value]


def cpu_tile_shape(
    grid_shape: Sequence[int],
    max_tile: Sequence[int],
    multiple: int | Sequence[int] = 1,
    overlap: float = 0.1,
) -> tuple[int, int, int]:
    """A largest tile for a CPU: about half of a large frame along Y and X (so ~4 tiles a frame).

    ``max_tile`` is the plan's own tile, already fitted (and padded) to the frame: Z and any axis
    under :data:`CPU_SPLIT_FROM` voxels keep it. Taking the frame's own length there instead (13
    planes) let the tile fitting round it down to the network's multiple (8), which cut a 13-plane
    stack into two z-tiles with little context each: a prediction unlike the command line's
    (Pearson r 0.77 between the two on the ISL stack; r against its DAPI 0.44 instead of 0.46).
    """
    multiple = _yx_multiple(multiple)
    out = [int(max_tile[0])]
    for n, t_max in zip(grid_shape[1:], max_tile[1:], strict=True):
        t_max = int(t_max)
        if int(n) >= CPU_SPLIT_FROM:
            half = math.ceil(int(n) * (1.0 + overlap) / 2)
            t_max = min(t_max, -(-half // multiple) * multiple)
        out.append(t_max)
    return tuple(max(v, 1) for v in out)  # type: ignore[return-value]
