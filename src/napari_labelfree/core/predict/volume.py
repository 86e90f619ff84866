"""The per-volume engine of a prediction plan: z-score, resample, tile, predict, stitch, resample back.

Nothing here validates: :func:`~napari_labelfree.core.predict.plan.plan_prediction` has checked
the image, the models, the voxel size, the device and the shapes once, and :func:`run_volume` runs
one ZYX volume through that plan (anything shaped like :class:`VolumeJob`). Models that share a
voxel size share the tile loop (a :class:`ModelGroup`): each input tile is read and moved to the
device once.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from ..config import Normalization, TilingConfig
from ..device import is_out_of_memory
from ..ensemble_net import spread_network
from ..errors import LabelFreeError
from ..events import Notice, Stage, TileDone
from ..preprocess import normalize, normalize_tensor_, resize, resize_tensor
from ..trust.names import combine_across_models, uncertainty_name, with_uncertainty_names
from ..weights import inference_network
from .compile_cache import Acceleration
from .fast_tiles import FixedShapeRunner, accelerated
from .pipeline import download_slabs, staging_for, upload_slabs
from .stages import timed_stage
from .tiling import iter_sliding_window
from .tta import spread_predictor, tta_predictor

if TYPE_CHECKING:
    from ..bundle import ModelBundle
    from ..io import VoxelSize


@dataclass(frozen=True)
class ModelGroup:
    """Models sharing a voxel size: each input tile is read and moved to the device once for all."""

    indices: tuple[int, ...]  # into the plan's bundles
    voxel_size: VoxelSize  # the models' (um, Z, Y, X)
    multiple: tuple[int, int, int]  # tile sides Z, Y, X are multiples of these (network strides)
    grid_shape: tuple[int, int, int]  # one frame resampled to the models' voxel size
    resample: bool  # whether the frame needs resampling at all
    normalization: Normalization = field(default_factory=Normalization)  # the models'
    window: int = 1  # 2.5D networks: the z-planes each output plane reads (1: 2D and 3D)
    projection: str = ""  # "max" / "mean": the models predict one plane, the stack's projection
    kind: str = "unet3d"  # the networks' (a 3D projection model reads the whole stack)

    @property
    def reads_window(self) -> bool:
        """Whether the group's one output plane comes from a 2.5D window of the stack (a 3D
        projection model predicts every plane, and their maximum is the plane)."""
        return bool(self.projection) and self.kind == "unet2.5d"

    def window_planes(self) -> tuple[int, int, int]:
        """(first, stop, kept): the grid planes a projection model reads, and which output plane
        is its prediction (the window centred on the stack's middle plane)."""
        z = self.grid_shape[0]
        centre, half = z // 2, self.window // 2
        first, stop = max(0, centre - half), min(z, centre + half + 1)
        return first, stop, centre - first

    @property
    def feed_shape(self) -> tuple[int, int, int]:
        """What the tiles cover: the grid, or a 2.5D projection model's window of it."""
        if not self.reads_window:
            return self.grid_shape
        first, stop, _ = self.window_planes()
        return (stop - first, *self.grid_shape[1:])  # type: ignore[return-value]


class VolumeJob(Protocol):
    """What the engine reads from a plan (:class:`~.plan.PredictionPlan` is one)."""

    bundles: tuple[ModelBundle, ...]
    names: tuple[str, ...]
    voxel_size: VoxelSize
    tiling: TilingConfig
    device: torch.device
    dtype: torch.dtype
    groups: tuple[ModelGroup, ...]
    tile_shapes: list[tuple[int, int, int]]  # shrunk for good after an out-of-memory


def make_predictor(
    nets: Sequence[nn.Module], device: torch.device, dtype: torch.dtype | None = None
):
    """A tile predictor running every network on the same input tile; outputs stacked as channels.

    ``dtype`` is the dtype the networks hold (see :func:`..weights.inference_network`); the tile is
    cast to it and the outputs come back as float32. None keeps the tile's dtype. Each network runs
    through :func:`.fast_tiles.accelerated` (cuDNN autotuning per tile shape on CUDA; opt-in
    compile and CUDA graphs, :class:`.compile_cache.Acceleration`); ``predict.take_notices()``
    returns the lines their fallbacks left.
    """
    settings = Acceleration.from_env()
    runs = [accelerated(net, device, dtype or torch.float32, settings) for net in nets]

    def predict(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = batch if dtype is None or batch.dtype == dtype else batch.type(dtype)
            outs = [run(x) for run in runs]
            if len(outs) == 1:
                return outs[0].float()
            return torch.cat(outs, dim=1).float()

    def take_notices() -> list[str]:
        return [t for r in runs if isinstance(r, FixedShapeRunner) for t in r.take_notices()]

    predict.take_notices = take_notices  # type: ignore[attr-defined]
    return predict


def group_tta(group, mode: str) -> str:
    """The test-time augmentation a group of networks is predicted with, asked for ``mode``.

    A 2.5D network reads its window of planes in one z-order: its prediction of a z-flipped
    copy is no estimate of the same thing, so "yxz" is narrowed to the YX variants ("yx").
    Every prediction path (whole frames, uncertainty, blocks) asks here.
    """
    return "yx" if group.window > 1 and mode == "yxz" else mode


def spread_source(
    nets: Sequence[nn.Module], device: torch.device, dtype: torch.dtype | None, tta: str
):
    """The arguments of :func:`.tta.spread_predictor` (tile predictor, TTA mode, within).

    Without an ensemble among ``nets``: their plain predictor. With one: each network gives its
    mean and the variance of its members (0 for a single network), reordered as all the means
    then all the variances, so the uncertainty includes the spread across the members.
    """
    spreads = [spread_network(n) for n in nets]
    if all(s is None for s in spreads):
        return make_predictor(nets, device, dtype), tta, False
    two = [
        s if s is not None else _with_zero_variance(n) for n, s in zip(nets, spreads, strict=True)
    ]
    run = make_predictor(two, device, dtype)

    def predict(batch: torch.Tensor) -> torch.Tensor:
        out = run(batch)  # mean 1, variance 1, mean 2, variance 2, ...
        return torch.cat([out[:, 0::2], out[:, 1::2]], dim=1)

    predict.take_notices = run.take_notices  # type: ignore[attr-defined]
    return predict, tta, True


_ZERO_VARIANCE: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


class _ZeroVariance(nn.Module):
    """One network beside an ensemble: its output and a variance of 0 (no members to differ)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return torch.cat([y, torch.zeros_like(y)], dim=1)


def _with_zero_variance(net: nn.Module) -> nn.Module:
    # one wrapper per network, so an accelerated runner tuned for it is kept (.fast_tiles)
    wrapped = _ZERO_VARIANCE.get(net)
    if wrapped is None:
        wrapped = _ZERO_VARIANCE[net] = _ZeroVariance(net)
    return wrapped


def shrink_tile(tile: tuple[int, int, int], multiple: int | Sequence[int]) -> tuple[int, int, int]:
    """Halve the largest axis that can still shrink (keeps multiples of the network's stride)."""
    ms = (multiple,) * 3 if isinstance(multiple, int) else tuple(multiple)
    order = sorted(range(3), key=lambda a: -tile[a])
    for a in order:
        if tile[a] // 2 >= ms[a]:
            t = list(tile)
            t[a] = max(ms[a], (tile[a] // 2) // ms[a] * ms[a])
            return tuple(t)  # type: ignore[return-value]
    return tile


def _output_device(dev: torch.device, n_bytes: int) -> torch.device:
    """Where to stitch: the GPU when the output takes at most a quarter of its free memory."""
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        if n_bytes <= free // 4:
            return dev
    return torch.device("cpu")


def plan_networks(plan: VolumeJob) -> list[list[nn.Module]]:
    """The inference networks of each model group of ``plan`` (from the one network cache)."""
    return [
        [inference_network(plan.bundles[i], plan.device, plan.dtype) for i in group.indices]
        for group in plan.groups
    ]


def uses_device_path(device: torch.device) -> bool:
    """Whether a frame is normalized, resampled and stitched on ``device`` (every accelerator).

    On the CPU the numpy path is as fast and holds fewer copies; the tests force the tensor path
    there to check it against the numpy one.
    """
    return device.type != "cpu"


# dtypes a frame crosses to the device in as they are (converted to float32 there); any other
# (uint16, uint32, float64, big-endian) is converted on the host first
_UPLOAD_DTYPES = {np.dtype(t) for t in ("uint8", "int8", "int16", "int32", "float16", "float32")}


def to_device(volume: np.ndarray, device: torch.device) -> torch.Tensor:
    """A ZYX frame as a float32 tensor of its own on ``device``: one host-to-device copy.

    On a GPU the frame crosses in Z-slabs through two page-locked buffers (:mod:`.pipeline`):
    slab k+1 is converted and staged on the host while slab k crosses, on a side stream.
    """
    v = np.asarray(volume)
    staging = staging_for(device)  # None unless the opt-in GPU pipeline is on
    if staging is not None:
        raw = v.dtype if v.dtype in _UPLOAD_DTYPES else np.dtype(np.float32)
        wire = torch.from_numpy(np.empty(0, raw)).dtype
        return upload_slabs(v, wire, device, staging).float()
    if v.dtype not in _UPLOAD_DTYPES:
        v = v.astype(np.float32)
    host = torch.from_numpy(np.ascontiguousarray(v))
    if device.type == "cuda":
        staging = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
        staging.copy_(host)
        host = staging
    out = host.to(device, non_blocking=True).float()
    # the tensor is normalized in place: it must never share memory with the caller's array
    return out.clone() if out.data_ptr() == host.data_ptr() else out


def to_host(t: torch.Tensor) -> np.ndarray:
    """A device tensor as a numpy array of its own (from a GPU in Z-slabs through two page-locked
    buffers: slab k crosses while slab k-1 is copied into the result)."""
    staging = staging_for(t.device)  # None unless the opt-in GPU pipeline is on
    if staging is None:
        return t.cpu().numpy()
    return download_slabs(t, staging)


def run_volume(
    plan: VolumeJob,
    volume: np.ndarray,
    networks: list[list[nn.Module]],
    frame: int = 0,
) -> Generator[TileDone | Notice | Stage, None, dict[str, np.ndarray]]:
    """Predict one ZYX volume of the plan's frame shape; returns {name: ZYX float32 array}.

    A tile that runs out of memory is halved and retried (a bounded number of times); the smaller
    tile is kept in the plan for the frames that follow. On an accelerator the frame crosses to it
    once and every step (z-score, resampling both ways, tiling, blending) runs there; the results
    cross back once.
    """
    dev, tiling = plan.device, plan.tiling
    on_device = uses_device_path(dev)
    keys = [_norm_key(group) for group in plan.groups]
    frame_t = to_device(volume, dev) if on_device else None
    normalized_by: dict[tuple, np.ndarray | torch.Tensor] = {}  # groups normalizing alike share
    if dev.type == "cuda":
        # every tile has the same shape: cuDNN's autotuning is paid once, then pays per tile
        # (LABELFREE_CUDNN_BENCHMARK=0 skips it, for a one-frame run that may not repay it)
        torch.backends.cudnn.benchmark = Acceleration.from_env().cudnn_benchmark
    results: dict[str, np.ndarray] = {}
    for g, (group, nets) in enumerate(zip(plan.groups, networks, strict=True)):
        key = keys[g]
        if key not in normalized_by:
            args = (group.normalization, plan.voxel_size, group.voxel_size)
            if frame_t is None:  # seconds on a big frame: said while it runs (.stages)
                normalized_by[key] = yield from timed_stage(
                    frame, "normalizing", lambda args=args: normalize(volume, *args)
                )
            else:
                yield Stage(frame, "normalizing")
                # in place when no other group needs the raw frame
                own = frame_t if len(set(keys)) == 1 else frame_t.clone()
                normalized_by[key] = normalize_tensor_(own, *args)
        normalized = normalized_by[key]
        grid = normalized
        if group.resample:
            text = "resampling to the model's voxel size"
            if on_device:
                yield Stage(frame, text)
                grid = resize_tensor(normalized, group.grid_shape)
            else:  # seconds on a big frame: said while it runs (.stages)
                grid = yield from timed_stage(
                    frame, text, lambda n=normalized, s=group.grid_shape: resize(n, s)
                )
        if group.reads_window:  # one window of planes around the middle gives the one output plane
            first, stop, kept = group.window_planes()
            grid = grid[first:stop]
        # test-time augmentation: each tile predicted once per variant, averaged (.tta)
        tta = group_tta(group, tiling.tta)
        if tiling.uncertainty:  # the variants' mean and spread, as 2n output channels (.tta)
            base, mode, within = spread_source(nets, dev, plan.dtype, tta)
            predictor = spread_predictor(base, mode, within)
        else:
            base = make_predictor(nets, dev, plan.dtype)
            predictor = tta_predictor(base, tta)
        tile = plan.tile_shapes[g]
        # on a GPU the stitched output stays there when it fits: blending runs on the GPU and the
        # result crosses to the host once, not tile by tile
        out_dev = _output_device(dev, len(group.indices) * int(np.prod(grid.shape)) * 4)
        if on_device and dev.type != "cuda":
            out_dev = dev  # the tensor path on another device (or forced on the CPU) stays there
        yield Stage(frame, "predicting the first tile")  # seconds on a big frame's large tiles
        for attempt in range(tiling.max_oom_retries + 1):
            try:
                out = yield from _named_partials(
                    iter_sliding_window(
                        grid,
                        predictor,
                        tile,
                        n_out=len(group.indices) * (2 if tiling.uncertainty else 1),
                        overlap=tiling.overlap,
                        blend=tiling.blend,
                        batch_size=tiling.batch_size,
                        multiple=group.multiple,
                        device=dev,
                        output_device=out_dev,
                        frame=frame,
                    ),
                    None
                    if group.projection
                    else [(k, plan.names[i]) for k, i in enumerate(group.indices)],
                    tuple(volume.shape),
                    on_device,
                )
                break
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                if not is_out_of_memory(e):
                    raise
                smaller = shrink_tile(tile, group.multiple)
                if attempt == tiling.max_oom_retries or smaller == tile:
                    raise LabelFreeError(
                        f"out of memory on {dev} even with tiles of {tile} voxels; "
                        "use smaller tiles, close other programs, or predict on the CPU",
                        field=("tile_shape", "device"),
                    ) from e
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                yield Notice(f"out of memory with tiles of {tile} voxels; retrying with {smaller}")
                tile = plan.tile_shapes[g] = smaller
        # a compile or CUDA-graph fallback, said once (any predictor without them says nothing)
        for text in getattr(base, "take_notices", list)():
            yield Notice(text)
        del grid
        if not bool(torch.isfinite(out).all()):
            bad = ", ".join(plan.names[i] for i in group.indices)
            raise LabelFreeError(
                f"the prediction of {bad} holds NaN or infinite values: the model's weights are "
                "broken or the image is far outside what it was trained on"
            )
        shape = tuple(volume.shape)
        if group.reads_window:
            out, shape = out[:, kept : kept + 1], (1, *shape[1:])
        elif group.projection:  # a 3D network learned the projection at every plane: the
            # same projection of its planes (the maximum for "max", as measured)
            if group.projection == "max":
                out = out.amax(dim=1, keepdim=True)
            else:
                out = out.mean(dim=1, keepdim=True)
            shape = (1, *shape[1:])
        for k, i in enumerate(group.indices):
            results[plan.names[i]] = _back_to_frame(out[k], shape, on_device)
        if tiling.uncertainty:
            n = len(group.indices)
            for k, i in enumerate(group.indices):
                name = plan.names[i]
                results[uncertainty_name(name)] = _back_to_frame(
                    out[n + k], results[name].shape, on_device
                )
        del out
    if tiling.uncertainty:  # several models of one structure: their joint spread (core.trust)
        combine_across_models(results, plan.names, [b.spec.structure for b in plan.bundles])
    return {n: results[n] for n in with_uncertainty_names(plan.names, tiling.uncertainty)}


def _named_partials(
    tiles: Generator[TileDone, None, torch.Tensor],
    outputs: list[tuple[int, str]] | None,
    shape: tuple,
    on_device: bool,
) -> Generator[TileDone, None, torch.Tensor]:
    """Forward the tiling's events; each ``TileDone.partial`` now gives the named outputs so far
    in the frame's shape (``outputs``: (channel, name) pairs; None: no partial results)."""
    try:
        while True:
            try:
                event = next(tiles)
            except StopIteration as done:
                return done.value
            if isinstance(event, TileDone) and event.partial is not None:
                raw = event.partial

                def partial(raw=raw) -> dict[str, np.ndarray]:
                    so_far = raw()
                    return {n: _back_to_frame(so_far[k], shape, on_device) for k, n in outputs}

                event = dataclasses.replace(event, partial=partial if outputs else None)
            yield event
    finally:
        tiles.close()  # a cancelled job closes this generator: the tiling's too


def _norm_key(group: ModelGroup) -> tuple:
    """Groups with equal keys see the same normalized frame."""
    norm = group.normalization
    return (repr(norm), group.voxel_size if norm.scope != "per-image" else None)


def _back_to_frame(out: torch.Tensor, shape: tuple, on_device: bool) -> np.ndarray:
    """One model's stitched output resampled to the frame's shape, as a host array."""
    if on_device:
        if tuple(out.shape) != tuple(shape):
            out = resize_tensor(out, shape)
        return to_host(out)
    arr = out.cpu().numpy()
    return resize(arr, shape) if arr.shape != tuple(shape) else arr
