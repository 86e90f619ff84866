"""Prediction as generators: yield typed progress, return arrays.

Per frame: z-score (as the paper), resample to the model's voxel size, predict tile by tile with a
blending window, resample back so the output has the input's Z, Y, X shape. Models that share a
voxel size share the tile loop: each input tile is read and moved to the device once.
"""

from __future__ import annotations

import copy
import functools
import weakref
from collections import OrderedDict
from collections.abc import Generator, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .bundle import WEIGHTS_NAME, ModelBundle, load_network
from .config import TilingConfig
from .device import compute_dtype, is_out_of_memory, resolve_device
from .errors import LabelFreeError
from .events import FrameDone, FrameStarted, Notice, TileDone
from .io import ImageSource, VoxelSize, check_3d, resolve_voxel_size
from .optimize import optimize_for_inference
from .preprocess import needs_resampling, normalize, resampled_shape, resize
from .tiling import fit_tile_shape, iter_sliding_window

Event = TileDone | FrameStarted | FrameDone | Notice


def output_names(bundles: Sequence[ModelBundle]) -> list[str]:
    """One distinct name per model: its structure, with its folder name where two share a structure.

    Names key the results, so two models may never share one (runs/a/model and runs/b/model both
    named "dna (model)" would overwrite each other): a name still taken gets " #2", " #3", ...
    """
    structures = [b.spec.structure for b in bundles]
    names: list[str] = []
    for s, b in zip(structures, bundles, strict=True):
        name = s if structures.count(s) == 1 else f"{s} ({b.name})"
        base, k = name, 2
        while name in names:
            name, k = f"{base} #{k}", k + 1
        names.append(name)
    return names


@functools.lru_cache(maxsize=16)
def _network_on(folder: str, stamp: int, device: str) -> nn.Module:
    from .bundle import open_bundle

    net = load_network(open_bundle(folder))
    if torch.device(device).type != "cpu":
        net = copy.deepcopy(net).to(device)
    return net.eval()


def network_on_device(bundle: ModelBundle, device: torch.device) -> nn.Module:
    """The bundle's network in eval mode on ``device`` (cached per device)."""
    stamp = (bundle.path / WEIGHTS_NAME).stat().st_mtime_ns
    return _network_on(str(bundle.path), stamp, str(device))


# (id of the source network, device, dtype) -> (weak reference to it, its state, the twin)
_TwinKey = tuple[int, str, torch.dtype]
_TWINS: OrderedDict[_TwinKey, tuple[weakref.ref, tuple, nn.Module]] = OrderedDict()
_MAX_TWINS = 8


def _state_stamp(net: nn.Module) -> tuple:
    # in-place edits (load_state_dict, copy_, an optimizer step) bump a tensor's version counter;
    # edits through ``.data`` do not, so a checksum of every tensor is part of the stamp too
    # (one pass over the weights, ~10 ms for the paper network, against seconds per volume)
    with torch.no_grad():
        tensors = list(net.state_dict().values())
        sums = torch.stack([t.double().sum() for t in tensors]).tolist()
    return tuple((t.data_ptr(), t._version) for t in tensors), tuple(sums)


def inference_network(
    bundle: ModelBundle, device: torch.device, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """The network prediction runs: the bundle's, BatchNorm folded and lean (core.optimize).

    Built from :func:`network_on_device` (CPU) and cached; rebuilt when that network's weights or
    statistics change. Hooks on that network fire on this one too.
    """
    base = network_on_device(bundle, torch.device("cpu"))
    key = (id(base), str(device), dtype)
    stamp = _state_stamp(base)
    hit = _TWINS.get(key)
    if hit is not None and hit[0]() is base and hit[1] == stamp:
        _TWINS.move_to_end(key)
        return hit[2]
    twin = optimize_for_inference(base, device)
    if dtype != torch.float32:
        twin.to_precision(dtype)
    _TWINS[key] = (weakref.ref(base), stamp, twin)
    while len(_TWINS) > _MAX_TWINS:
        _TWINS.popitem(last=False)
    return twin


def make_predictor(
    nets: Sequence[nn.Module], device: torch.device, dtype: torch.dtype | None = None
):
    """A tile predictor running every network on the same input tile; outputs stacked as channels.

    ``dtype`` is the dtype the networks hold (see :func:`inference_network`); the tile is cast to
    it and the outputs come back as float32. None keeps the tile's dtype.
    """

    def predict(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = batch if dtype is None or batch.dtype == dtype else batch.type(dtype)
            outs = [net(x) for net in nets]
            if len(outs) == 1:
                return outs[0].float()
            return torch.cat(outs, dim=1).float()

    return predict


def _group_by_voxel_size(bundles: Sequence[ModelBundle]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, b in enumerate(bundles):
        groups.setdefault((b.spec.voxel_size_um, repr(b.spec.normalization)), []).append(i)
    return list(groups.values())


def _shrink(tile: tuple[int, int, int], multiple: int) -> tuple[int, int, int]:
    """Halve the largest axis that can still shrink (keeps multiples of the network's stride)."""
    order = sorted(range(3), key=lambda a: -tile[a])
    for a in order:
        if tile[a] // 2 >= multiple:
            t = list(tile)
            t[a] = max(multiple, (tile[a] // 2) // multiple * multiple)
            return tuple(t)  # type: ignore[return-value]
    return tile


def _output_device(dev: torch.device, n_bytes: int) -> torch.device:
    """Where to stitch: the GPU when the output takes at most a quarter of its free memory."""
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        if n_bytes <= free // 4:
            return dev
    return torch.device("cpu")


def iter_predict_volume(
    volume: np.ndarray,
    bundles: Sequence[ModelBundle],
    voxel_size: VoxelSize,
    tiling: TilingConfig | None = None,
    device: str | torch.device = "auto",
    frame: int = 0,
) -> Generator[TileDone | Notice, None, dict[str, np.ndarray]]:
    """Predict one ZYX volume with several models; returns {name: ZYX float32 array of the input's shape}."""
    if volume.ndim != 3:
        raise LabelFreeError(f"expected a 3D (Z, Y, X) volume, got shape {volume.shape}")
    if volume.shape[0] < 2:
        raise LabelFreeError("the image is 2D (one z-plane); label-free models need a z-stack")
    if not bundles:
        raise LabelFreeError("choose at least one model")
    tiling = tiling or TilingConfig()
    dev = resolve_device(device)
    names = output_names(bundles)
    results: dict[str, np.ndarray] = {}
    for group in _group_by_voxel_size(bundles):
        model_voxel = bundles[group[0]].spec.voxel_size_um
        multiple = max(bundles[i].spec.architecture.multiple for i in group)
        normalized = normalize(
            volume, bundles[group[0]].spec.normalization, voxel_size, model_voxel
        )
        grid = normalized
        if needs_resampling(voxel_size, model_voxel):
            grid = resize(normalized, resampled_shape(normalized.shape, voxel_size, model_voxel))
        dtype = compute_dtype(dev, tiling.precision)
        if dev.type == "cuda":
            # every tile has the same shape: cuDNN's autotuning is paid once, then pays per tile
            torch.backends.cudnn.benchmark = True
        nets = [inference_network(bundles[i], dev, dtype) for i in group]
        predictor = make_predictor(nets, dev, dtype)
        tile = fit_tile_shape(grid.shape, tiling.tile_shape, tiling.overlap, multiple)
        # on a GPU the stitched output stays there when it fits: blending runs on the GPU and the
        # result crosses to the host once, not tile by tile
        out_dev = _output_device(dev, len(group) * int(np.prod(grid.shape)) * 4)
        for attempt in range(tiling.max_oom_retries + 1):
            try:
                out = yield from iter_sliding_window(
                    grid,
                    predictor,
                    tile,
                    n_out=len(group),
                    overlap=tiling.overlap,
                    blend=tiling.blend,
                    batch_size=tiling.batch_size,
                    multiple=multiple,
                    device=dev,
                    output_device=out_dev,
                    frame=frame,
                )
                break
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                if not is_out_of_memory(e):
                    raise
                smaller = _shrink(tile, multiple)
                if attempt == tiling.max_oom_retries or smaller == tile:
                    raise LabelFreeError(
                        f"out of memory on {dev} even with tiles of {tile} voxels; "
                        "use smaller tiles, close other programs, or predict on the CPU (--device cpu)"
                    ) from e
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                yield Notice(f"out of memory with tiles of {tile} voxels; retrying with {smaller}")
                tile = smaller
        out = out.cpu()
        for k, i in enumerate(group):
            arr = out[k].numpy()
            results[names[i]] = resize(arr, volume.shape) if arr.shape != volume.shape else arr
    return {n: results[n] for n in names}


def iter_predict(
    source: ImageSource,
    bundles: Sequence[ModelBundle],
    channel: str | int | None = None,
    voxel_size: VoxelSize | None = None,
    tiling: TilingConfig | None = None,
    device: str | torch.device = "auto",
    frames: Iterable[int] | None = None,
    collect: bool = True,
) -> Generator[Event, None, dict[str, np.ndarray] | None]:
    """Predict every (or the given) time point of one channel of an image.

    Yields FrameStarted / TileDone / FrameDone / Notice. Returns {name: TZYX array} for the
    predicted frames in the order given when ``collect`` is true, else None (for callers that
    stream each FrameDone to disk).
    """
    check_3d(source)
    if not bundles:
        raise LabelFreeError("choose at least one model")
    c = source.channel_index(channel)
    vox, warning = resolve_voxel_size(source, voxel_size, bundles[0].spec.voxel_size_um)
    if warning:
        yield Notice(warning)
    order = list(range(source.n_timepoints)) if frames is None else list(frames)
    for t in order:
        if not 0 <= t < source.n_timepoints:
            raise LabelFreeError(
                f"time point {t} does not exist (the image has {source.n_timepoints})"
            )
    collected: dict[str, list[np.ndarray]] = {n: [] for n in output_names(bundles)}
    for t in order:
        yield FrameStarted(t, len(order))
        arrays = yield from iter_predict_volume(
            source.frame(t, c), bundles, vox, tiling, device, frame=t
        )
        yield FrameDone(t, len(order), arrays)
        if collect:
            for name, arr in arrays.items():
                collected[name].append(arr)
    if not collect:
        return None
    return {n: np.stack(v) for n, v in collected.items()}
