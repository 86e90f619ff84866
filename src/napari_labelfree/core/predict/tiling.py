"""Tile plan, blending window and stitching: pure functions, shaped like MONAI's sliding window.

The window is separable (a product of 1D windows) and tiles lie on a Cartesian grid, so the sum of
windows over all tiles is the product of 1D sums: each tile's weight is normalized on the fly from
three 1D arrays, and no volume-sized weight map is ever held.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..events import TileDone, drain
from .pipeline import iter_device_tiles, staging_for

Predictor = Callable[[torch.Tensor], torch.Tensor]


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


Multiple = int | Sequence[int]  # one for every axis, or per axis Z, Y, X (2D networks: Z any)


def per_axis(multiple: Multiple) -> tuple[int, int, int]:
    """``multiple`` as three numbers Z, Y, X."""
    if isinstance(multiple, int):
        return (multiple, multiple, multiple)
    return tuple(int(m) for m in multiple)  # type: ignore[return-value]


def effective_tile_shape(
    shape_zyx: Sequence[int], tile_shape: Sequence[int], multiple: Multiple = 1
) -> tuple[int, int, int]:
    """Tile per axis: a multiple of ``multiple``, no larger than the (rounded-up) volume."""
    out = []
    for n, t, m in zip(shape_zyx, tile_shape, per_axis(multiple), strict=True):
        t = max(m, (int(t) // m) * m)
        out.append(min(t, round_up(int(n), m)))
    return tuple(out)  # type: ignore[return-value]


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` (>= tile), last flush to the end."""
    if size <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def fit_tile_shape(
    shape_zyx: Sequence[int],
    max_tile_shape: Sequence[int],
    overlap: float = 0.25,
    multiple: Multiple = 1,
) -> tuple[int, int, int]:
    """The tile, no larger than ``max_tile_shape``, that covers a volume with the least work.

    Per axis, among lengths that are multiples of ``multiple`` up to the maximum, pick the one
    whose tiles (as :func:`tile_starts` places them) cost least, counting each tile as its length
    plus a fixed ``2 * multiple`` for its border: small tiles run slower per voxel (measured on
    the CPU: 16x128x128 tiles at about half the speed of 64x256x256 ones), so the cost keeps the
    tiles large; on a tie the longer tile wins. A 512-voxel axis with a maximum of 256 and 10 %
    overlap gets three 192-voxel tiles (576 voxels of work), not three 256-voxel ones (768)
    whose last two overlap by half.
    """
    tile = effective_tile_shape(shape_zyx, max_tile_shape, multiple)
    out = []
    for size, t_max, m in zip(shape_zyx, tile, per_axis(multiple), strict=True):
        size = max(int(size), t_max)  # a volume smaller than the tile is padded up to it
        border = 2 * max(1, m)
        best = (len(tile_starts(size, t_max, overlap)) * (t_max + border), -t_max)
        for t in range(max(1, m), t_max, max(1, m)):
            best = min(best, (len(tile_starts(size, t, overlap)) * (t + border), -t))
        out.append(-best[1])
    return tuple(out)  # type: ignore[return-value]


# The largest tile on a CPU computing in fp32, when the default tile is asked for: fp32
# activations of a 64x272x272 tile take ~1.6 GB, and plain (AVX2) CPUs, where fp32 is the
# default, are the laptops with the least memory. 144 = 128 + 16 covers a 256-voxel axis in two
# tiles (1.125x the work) at ~0.55x the activations.
CPU_FP32_MAX_TILE = (64, 144, 272)


def max_tile_shape(
    tile_shape: Sequence[int], device: torch.device, dtype: torch.dtype
) -> tuple[int, int, int]:
    """The largest tile to fit: ``tile_shape``, capped on a CPU in fp32 when it is the default."""
    from ..config import TilingConfig

    tile = tuple(int(t) for t in tile_shape)
    if (
        device.type == "cpu"
        and dtype == torch.float32
        and tile == tuple(TilingConfig.__dataclass_fields__["tile_shape"].default)
    ):
        return tuple(min(t, c) for t, c in zip(tile, CPU_FP32_MAX_TILE, strict=True))  # type: ignore[return-value]
    return tile  # type: ignore[return-value]


def window_1d(length: int, mode: str) -> np.ndarray:
    """1D blending window: Gaussian (sigma = length/8, as MONAI) or constant; strictly positive."""
    if mode == "constant" or length == 1:
        return np.ones(length, dtype=np.float64)
    centre = (length - 1) / 2.0
    sigma = length / 8.0
    w = np.exp(-0.5 * ((np.arange(length) - centre) / sigma) ** 2)
    return np.maximum(w / w.max(), 1e-3)


@dataclass(frozen=True)
class TilePlan:
    """Where tiles go in a (padded) volume and how each is weighted."""

    padded_shape: tuple[int, int, int]
    tile_shape: tuple[int, int, int]
    starts: tuple[list[int], list[int], list[int]]
    # per axis, per start: the normalized 1D weight of that tile along that axis
    weights: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]

    @property
    def n_tiles(self) -> int:
        return int(np.prod([len(s) for s in self.starts]))

    def tile_weight(self, index_zyx: tuple[int, int, int]) -> np.ndarray:
        iz, iy, ix = index_zyx
        wz, wy, wx = self.weights[0][iz], self.weights[1][iy], self.weights[2][ix]
        return (wz[:, None, None] * wy[None, :, None] * wx[None, None, :]).astype(np.float32)


def plan_tiles(
    shape_zyx: Sequence[int],
    tile_shape: Sequence[int],
    overlap: float = 0.25,
    blend: str = "gaussian",
    multiple: Multiple = 1,
) -> TilePlan:
    """Plan tiles over a volume; volumes smaller than a tile are padded up to it."""
    tile = effective_tile_shape(shape_zyx, tile_shape, multiple)
    padded = tuple(max(int(n), t) for n, t in zip(shape_zyx, tile, strict=True))
    starts, weights = [], []
    for size, t in zip(padded, tile, strict=True):
        s = tile_starts(size, t, overlap)
        w = window_1d(t, blend)
        total = np.zeros(size, dtype=np.float64)
        for a in s:
            total[a : a + t] += w
        starts.append(s)
        weights.append([w / total[a : a + t] for a in s])
    return TilePlan(padded, tile, tuple(starts), tuple(weights))  # type: ignore[arg-type]


def pad_to(volume: np.ndarray, shape_zyx: Sequence[int]) -> np.ndarray:
    """Pad a ZYX volume at the far end up to ``shape_zyx`` by mirroring (works for any size)."""
    pads = [(0, max(0, int(t) - n)) for n, t in zip(volume.shape, shape_zyx, strict=True)]
    if not any(p for _, p in pads):
        return volume
    return np.pad(volume, pads, mode="symmetric")


def symmetric_indices(n: int, size: int) -> np.ndarray:
    """Indices into an axis of length ``n`` that extend it to ``size`` as ``np.pad`` "symmetric"."""
    i = np.arange(size) % (2 * n)
    return np.where(i < n, i, 2 * n - 1 - i)


def pad_tensor_to(volume: torch.Tensor, shape_zyx: Sequence[int]) -> torch.Tensor:
    """:func:`pad_to` for a ZYX tensor, on its device (mirror indices, no host round trip)."""
    for axis, (n, t) in enumerate(zip(volume.shape, shape_zyx, strict=True)):
        if int(t) > n:
            idx = torch.from_numpy(symmetric_indices(n, int(t))).to(volume.device)
            volume = volume.index_select(axis, idx)
    return volume


def iter_sliding_window(
    volume: np.ndarray | torch.Tensor,
    predictor: Predictor,
    tile_shape: Sequence[int],
    n_out: int = 1,
    overlap: float = 0.25,
    blend: str = "gaussian",
    batch_size: int = 1,
    multiple: Multiple = 1,
    device: torch.device | str = "cpu",
    output_device: torch.device | str = "cpu",
    frame: int = 0,
) -> Generator[TileDone, None, torch.Tensor]:
    """Predict a ZYX volume tile by tile; yields TileDone, returns (n_out, Z, Y, X) float32.

    ``predictor`` maps a (B, 1, z, y, x) tensor on ``device`` to (B, n_out, z, y, x). Each input tile
    is moved to ``device`` once, whatever the number of outputs; a ``volume`` given as a tensor
    on ``device`` is cut there (padding included), so nothing crosses to the host. Closing the
    generator between tiles cancels the work.
    """
    if volume.ndim != 3:
        raise ValueError(f"expected a ZYX volume, got shape {tuple(volume.shape)}")
    shape = tuple(volume.shape)
    plan = plan_tiles(shape, tile_shape, overlap, blend, multiple)
    device = torch.device(device)
    output_device = torch.device(output_device)
    on_device = isinstance(volume, torch.Tensor)
    if on_device:
        src = pad_tensor_to(volume.to(device, torch.float32), plan.padded_shape)
    else:
        # float32 and padded only where needed: an in-range float32 volume is used without a copy
        src = pad_to(np.asarray(volume, dtype=np.float32), plan.padded_shape)
    out = torch.zeros((n_out, *plan.padded_shape), dtype=torch.float32, device=output_device)
    tz, ty, tx = plan.tile_shape
    grid = [
        ((iz, iy, ix), (z, y, x))
        for iz, z in enumerate(plan.starts[0])
        for iy, y in enumerate(plan.starts[1])
        for ix, x in enumerate(plan.starts[2])
    ]
    # 1D weights on the compute device once; a tile's 3D weight is their outer product there
    weights = [
        [torch.from_numpy(w.astype(np.float32)).to(device) for w in ws] for ws in plan.weights
    ]
    step = max(1, batch_size)
    batches = [grid[b0 : b0 + step] for b0 in range(0, len(grid), step)]

    def cut(i: int) -> np.ndarray | torch.Tensor:
        """Batch ``i`` as (B, 1, z, y, x), cut from ``src`` where it lives."""
        batch = batches[i]
        if len(batch) == 1:
            (z, y, x) = batch[0][1]
            return src[None, None, z : z + tz, y : y + ty, x : x + tx]
        tiles = [src[z : z + tz, y : y + ty, x : x + tx] for _, (z, y, x) in batch]
        return (torch.stack(tiles) if on_device else np.stack(tiles))[:, None]

    if on_device:
        inputs = (cut(i) for i in range(len(batches)))
    else:
        # on a GPU, tile n+1 is cut and uploaded (page-locked, side stream) while n computes
        inputs = iter_device_tiles(cut, len(batches), device, staging_for(device))
    done = 0
    for batch, inp in zip(batches, inputs, strict=True):
        pred = predictor(inp)
        del inp
        for k, (index, (z, y, x)) in enumerate(batch):
            target = out[:, z : z + tz, y : y + ty, x : x + tx]
            tile_pred = pred[k].float()
            if plan.n_tiles > 1:
                iz, iy, ix = index
                w = (
                    weights[0][iz][:, None, None]
                    * weights[1][iy][None, :, None]
                    * weights[2][ix][None, None, :]
                )
                tile_pred = tile_pred * w
            # a single tile has weight 1 everywhere: its prediction is copied, not multiplied
            target += tile_pred.to(output_device)
            done += 1
            # the blending weights sum to one: the sum so far is the output where tiles are done
            yield TileDone(
                done - 1,
                plan.n_tiles,
                frame,
                partial=lambda: out[:, : shape[0], : shape[1], : shape[2]],
            )
        del pred
    return out[:, : shape[0], : shape[1], : shape[2]]


def sliding_window_inference(
    volume: np.ndarray, predictor: Predictor, tile_shape: Sequence[int], **kwargs
) -> torch.Tensor:
    """Non-generator form of :func:`iter_sliding_window` (drains the progress)."""
    return drain(iter_sliding_window(volume, predictor, tile_shape, **kwargs))
