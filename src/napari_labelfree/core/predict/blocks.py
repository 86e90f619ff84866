"""One frame cut into Z-Y-X blocks, each predicted on its own, together equal to the whole frame.

A frame too large for one worker (its outputs, or its time on one GPU) is cut into a regular
grid of blocks, one task each (:func:`block_regions`). A block is predicted on the same tile grid
as the whole frame (:func:`.tiling.plan_tiles` over the full volume, with the plan's tile shape,
overlap and blending): the block runs every tile of that grid that touches it, its own and, on
each side, the neighbours that overlap into it (its halo, the tile overlap), weights each tile
by the whole-frame window sums and adds them up in the whole-frame order. Each voxel of the block
therefore receives exactly the sum the single-process path computes, in the same order: with
fp32, batches of one tile (the default) and the output stitched on the CPU, the blocks together
are bit-identical to :meth:`.plan.PredictionPlan.predict_volume` (tested).

What makes this exact, and its limits:

- normalization: each block task reads the whole frame (input files are read a frame at a time)
  and z-scores it exactly as the whole-frame path, so the statistics are the frame's;
- resampling is a whole-frame operation (trilinear with an anti-aliasing filter, there and back)
  that cannot be cut into blocks bit-exactly, so blocks need the image at the models' voxel size
  (:func:`check_blocks`); resample such an image once beforehand;
- a worker holds the input frame, its normalized copy and the block's outputs (not the frame's),
  and predicts only the tiles touching its block.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import LabelFreeError

if TYPE_CHECKING:
    import torch

    from ..config import TilingConfig
    from .plan import PredictionPlan

#: a block's extent per axis Z, Y, X: (start, stop) in voxels of the frame
Region = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def block_regions(shape_zyx: Sequence[int], block_zyx: Sequence[int]) -> list[Region]:
    """A regular grid of blocks of ``block_zyx`` voxels covering a frame (last ones cut short)."""
    axes = [
        [(a, min(a + int(b), int(n))) for a in range(0, int(n), int(b))]
        for n, b in zip(shape_zyx, block_zyx, strict=True)
    ]
    return [tuple(r) for r in itertools.product(*axes)]  # type: ignore[misc]


def check_blocks(plan: PredictionPlan) -> None:
    """Blocks are exact only without resampling: refuse them for an image that needs it."""
    if any(g.projection for g in plan.groups):
        raise LabelFreeError(
            "a model trained on a projection predicts one plane per frame from the whole stack; "
            "it cannot be cut into blocks: predict whole frames"
        )
    groups = [g for g in plan.groups if g.resample]
    if groups:
        model_vox = ", ".join(str(tuple(g.voxel_size)) for g in groups)
        raise LabelFreeError(
            f"cutting frames into blocks needs the image at the models' voxel size "
            f"({model_vox} um), but it has {tuple(plan.voxel_size)} um; resample the image "
            "to it first, or predict whole frames",
            field="voxel_size",
        )


def predict_block(
    plan: PredictionPlan, volume: np.ndarray, region: Region
) -> dict[str, np.ndarray]:
    """Predict the ``region`` of one ZYX frame of ``plan``: {name: array of the region's shape}."""
    from ..preprocess import normalize
    from ..trust.names import combine_across_models, uncertainty_name
    from .tta import spread_predictor, tta_predictor
    from .volume import group_tta, make_predictor, spread_source

    check_blocks(plan)
    normalized_by: dict[tuple, np.ndarray] = {}  # groups normalizing alike share one pass
    results: dict[str, np.ndarray] = {}
    for g, (group, nets) in enumerate(zip(plan.groups, plan.networks(), strict=True)):
        norm = group.normalization
        key = (repr(norm), group.voxel_size if norm.scope != "per-image" else None)
        if key not in normalized_by:
            normalized_by[key] = normalize(volume, norm, plan.voxel_size, group.voxel_size)
        tta = group_tta(group, plan.tiling.tta)
        out = _predict_tiles(
            normalized_by[key],
            region,
            # with uncertainty the variants' mean, then their spread (.tta)
            spread_predictor(*spread_source(nets, plan.device, plan.dtype, tta))
            if plan.tiling.uncertainty
            else tta_predictor(make_predictor(nets, plan.device, plan.dtype), tta),
            plan.tile_shapes[g],
            len(group.indices) * (2 if plan.tiling.uncertainty else 1),
            plan.tiling,
            group.multiple,
            plan.device,
        )
        if not np.isfinite(out).all():
            bad = ", ".join(plan.names[i] for i in group.indices)
            raise LabelFreeError(
                f"the prediction of {bad} holds NaN or infinite values: the model's weights are "
                "broken or the image is far outside what it was trained on"
            )
        n = len(group.indices)
        for k, i in enumerate(group.indices):
            results[plan.names[i]] = out[k]
            if plan.tiling.uncertainty:
                results[uncertainty_name(plan.names[i])] = out[n + k]
    if plan.tiling.uncertainty:  # several models of one structure: their joint spread
        combine_across_models(results, plan.names, [b.spec.structure for b in plan.bundles])
    return {n: results[n] for n in plan.output_names}


def _predict_tiles(
    grid: np.ndarray,
    region: Region,
    predictor,
    tile_shape: Sequence[int],
    n_out: int,
    tiling: TilingConfig,
    multiple: int,
    device: torch.device,
) -> np.ndarray:
    """(n_out, *region shape): the tiles of the whole-frame grid that touch ``region``, blended.

    The arithmetic is :func:`.tiling.iter_sliding_window`'s, tile for tile and in its order.
    """
    import torch

    from .tiling import pad_to, plan_tiles

    tp = plan_tiles(grid.shape, tile_shape, tiling.overlap, tiling.blend, multiple)
    size = tp.tile_shape
    picks = [
        [i for i, s in enumerate(starts) if s < b and s + t > a]
        for starts, t, (a, b) in zip(tp.starts, size, region, strict=True)
    ]
    lo = [starts[p[0]] for starts, p in zip(tp.starts, picks, strict=True)]
    hi = [starts[p[-1]] + t for starts, p, t in zip(tp.starts, picks, size, strict=True)]
    src = pad_to(np.asarray(grid, dtype=np.float32), tp.padded_shape)
    src = src[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    out = torch.zeros((n_out, *(h - a for h, a in zip(hi, lo, strict=True))), dtype=torch.float32)
    weights = [[torch.from_numpy(w.astype(np.float32)).to(device) for w in ws] for ws in tp.weights]
    tiles = list(itertools.product(*picks))  # z, then y, then x: the whole-frame order
    step = max(1, tiling.batch_size)
    for b0 in range(0, len(tiles), step):
        batch = tiles[b0 : b0 + step]
        corners = [
            tuple(tp.starts[ax][i] - lo[ax] for ax, i in enumerate(index)) for index in batch
        ]
        cut = [src[z : z + size[0], y : y + size[1], x : x + size[2]] for z, y, x in corners]
        host = torch.from_numpy(np.ascontiguousarray(cut[0][None] if len(cut) == 1 else cut))
        pred = predictor(host[:, None].to(device))
        for k, ((iz, iy, ix), (z, y, x)) in enumerate(zip(batch, corners, strict=True)):
            tile_pred = pred[k].float()
            if tp.n_tiles > 1:
                w = (
                    weights[0][iz][:, None, None]
                    * weights[1][iy][None, :, None]
                    * weights[2][ix][None, None, :]
                )
                tile_pred = tile_pred * w
            out[:, z : z + size[0], y : y + size[1], x : x + size[2]] += tile_pred.cpu()
    core = tuple(slice(a - o, b - o) for (a, b), o in zip(region, lo, strict=True))
    return out[(slice(None), *core)].numpy().copy()
