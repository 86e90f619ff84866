"""The prediction job: validate once, plan, predict any iterable of frames, yield events.

:func:`plan_prediction` checks everything a prediction needs (a z-stack, the channel, the models,
a sane voxel size, the device and precision) and resolves it into a :class:`PredictionPlan`: the
names of the outputs, each model group's grid and tile shape, the device and dtype. The plan then
predicts any iterable of time points (a list, a range, or a
:class:`~napari_labelfree.core.predict.schedule.FrameScheduler` that the time slider re-orders),
yielding FrameStarted / TileDone / FrameDone / Notice. The CLI and the widget both build a plan and
drain it; the per-volume work runs in :mod:`.volume`, the one-call shorthands live in :mod:`.run`.

This module imports torch only when a plan is made, so importing it stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..bundle import ModelBundle, resolve_model
from ..config import TilingConfig
from ..errors import LabelFreeError
from ..events import FrameDone, FrameStarted, Notice, Stage, TileDone
from ..io import ImageSource, VoxelSize, check_3d, resolve_voxel_size
from ..io.acquisition import FLUORESCENCE, TRANSMITTED
from ..machine import physical_memory
from ..trust.names import UNCERTAINTY_COLORMAP, with_uncertainty_names
from ..trust.ood import input_warnings, modality_warnings
from .schedule import FrameScheduler
from .stages import timed_stage

if TYPE_CHECKING:
    import torch

    from .volume import ModelGroup

Event = TileDone | FrameStarted | Stage | FrameDone | Notice
ModelRef = ModelBundle | str | Path

# Resampling to a model's voxel size beyond these is almost always a wrong voxel size (a unit
# mix-up, a missing calibration), and would allocate far more memory than the image holds.
MAX_VOXEL_GROWTH = 64.0  # model-grid voxels per image voxel
MAX_AXIS_FACTOR = 20.0  # per-axis image/model voxel size ratio (and 1/20 the other way)


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


@dataclass
class PredictionPlan:
    """Everything one prediction needs, validated once (made by :func:`plan_prediction`)."""

    source: ImageSource
    bundles: tuple[ModelBundle, ...]
    names: tuple[str, ...]  # one output per model, in model order
    channel: int
    voxel_size: VoxelSize  # um, Z, Y, X: what the image is resampled from
    voxel_size_assumed: tuple[bool, bool, bool]  # per axis: the model's, taken for lack of one
    tiling: TilingConfig
    device: torch.device
    dtype: torch.dtype
    groups: tuple[ModelGroup, ...]
    tile_shapes: list[tuple[int, int, int]]  # per group; shrunk for good after an out-of-memory
    notices: tuple[Notice, ...] = ()  # told once, when frames start
    _networks: list | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        return self.source.n_timepoints

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.source.shape_zyx

    @property
    def output_shape_zyx(self) -> tuple[int, int, int]:
        """One output frame: the input's, or one plane for models trained on a projection."""
        z, y, x = self.shape_zyx
        return (1, y, x) if self.groups and self.groups[0].projection else (z, y, x)

    @property
    def colours(self) -> tuple[str, ...]:
        """One napari colormap per output (each model's colour), in model order."""
        return tuple(b.spec.colormap for b in self.bundles)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Every array a frame yields: one per model, then with uncertainty one "... (uncertainty)" each."""
        return tuple(with_uncertainty_names(self.names, self.tiling.uncertainty))

    @property
    def output_colours(self) -> tuple[str, ...]:
        """A napari colormap per output (:attr:`output_names`)."""
        n_extra = len(self.output_names) - len(self.names)
        return self.colours + (UNCERTAINTY_COLORMAP,) * n_extra

    @property
    def output_physical_sizes(self) -> tuple[float | None, float | None, float | None]:
        """Voxel size to record with the output: None on axes where it was only assumed."""
        return tuple(  # type: ignore[return-value]
            None if assumed else v
            for v, assumed in zip(self.voxel_size, self.voxel_size_assumed, strict=True)
        )

    def networks(self) -> list:
        """The inference networks per model group, loaded on first use (in the worker thread)."""
        if self._networks is None:
            from .volume import plan_networks

            self._networks = plan_networks(self)
        return self._networks

    def predict_volume(
        self, volume: np.ndarray, frame: int = 0
    ) -> Generator[TileDone | Notice, None, dict[str, np.ndarray]]:
        """Predict one ZYX volume of the plan's shape; returns {name: ZYX float32 array}."""
        from .volume import run_volume

        if tuple(volume.shape) != tuple(self.shape_zyx):
            raise ValueError(f"volume of shape {volume.shape}, the plan is for {self.shape_zyx}")
        return (yield from run_volume(self, volume, self.networks(), frame))

    def iter_frames(self, frames: Iterable[int] | None = None) -> Generator[Event, None, list[int]]:
        """Predict the given time points (default all) in the order the iterable gives them.

        Yields the plan's notices, then per frame FrameStarted, TileDone..., FrameDone (its ZYX
        arrays are not kept: the caller stores or writes them). Returns the frames in the order
        they finished. A list is checked whole before any work; a :class:`.schedule.FrameScheduler`
        is consumed lazily, so moving the slider re-orders what is still pending. Closing the generator stops after the current
        tile; every FrameDone already yielded stays valid.
        """
        n_all = self.n_frames
        if frames is None:
            frames = range(n_all)
        if isinstance(frames, FrameScheduler):
            if frames.n_frames != n_all:
                raise LabelFreeError(
                    f"the scheduler has {frames.n_frames} frames, the image {n_all}"
                )
        else:
            frames = [int(t) for t in frames]
            for t in frames:
                if not 0 <= t < n_all:
                    raise LabelFreeError(f"time point {t} does not exist (the image has {n_all})")
        n = len(frames)
        yield from self.notices
        done: list[int] = []
        for t in frames:
            yield FrameStarted(t, n)
            # seconds each on a big frame: said while they run (.stages)
            volume = yield from timed_stage(
                t, "reading the frame", lambda t=t: self.source.frame(t, self.channel)
            )
            # once per image: is it like each model's training images? (core.trust) Said once the
            # first frame is predicted: a model that cannot run gets its one error line alone
            warnings = []
            if not done:
                warnings = yield from timed_stage(
                    t,
                    "comparing the image with the models' training images",
                    lambda v=volume: input_warnings(self.bundles, v, self.voxel_size),
                )
            if self._networks is None:
                yield Stage(t, "loading the models")
            arrays = yield from self.predict_volume(volume, frame=t)
            yield from warnings
            done.append(t)
            yield FrameDone(t, n, arrays)
        return done


def _resolve_bundles(models: ModelRef | Sequence[ModelRef]) -> tuple[ModelBundle, ...]:
    if isinstance(models, ModelBundle | str | Path):
        models = [models]
    bundles = tuple(m if isinstance(m, ModelBundle) else resolve_model(m) for m in models)
    if not bundles:
        raise LabelFreeError("choose at least one model", field="models")
    return bundles


def _input_channel(
    source: ImageSource, channel: str | int | None, force: bool
) -> tuple[int, tuple[Notice, ...]]:
    """The channel to predict from, and what to tell about it.

    Without a channel given, the one the file's acquisition metadata names as its only
    transmitted-light channel (said in a Notice); else :meth:`ImageSource.channel_index`'s choice
    or refusal. A channel the metadata says is fluorescence is refused unless ``force``: the models
    predict fluorescence from transmitted light, and a prediction from a stain looks plausible.
    """
    notices: tuple[Notice, ...] = ()
    if channel is None and source.n_channels > 1:
        channel = source.declared(TRANSMITTED)
        if channel is not None:
            notices = (
                Notice(
                    f"predicting from channel {channel} ({source.channel_names[channel]}), the "
                    "one the file's acquisition metadata says is transmitted light",
                    field="channel",
                ),
            )
    c = source.channel_index(channel)
    if source.light_of(c) == FLUORESCENCE and not force:
        other = source.declared(TRANSMITTED)
        instead = f" ({other}: {source.channel_names[other]})" if other is not None else ""
        raise LabelFreeError(
            f"{source._label()}: channel {c} ({source.channel_names[c]}) is fluorescence, its "
            "acquisition metadata says, and the models predict fluorescence from transmitted "
            f"light: choose the transmitted-light channel{instead}, or if the metadata is wrong, "
            "confirm to go ahead anyway",
            field=("channel", "force"),
        )
    return c, notices


def _checked_voxel_size(
    source: ImageSource, given: Sequence[float] | None, fallback: VoxelSize, planewise: bool = False
) -> tuple[VoxelSize, tuple[bool, bool, bool], tuple[Notice, ...]]:
    """(voxel size, assumed per axis, notices): the one given, else the file's, else the model's.

    ``planewise``: only 2D models, which never resample along z: a voxel size may be given as
    Y, X, and a z-step missing from the file is taken without a word.
    """
    if planewise and given is not None and len(given) == 2:
        z = source.physical_sizes[0]
        ok = z is not None and math.isfinite(z) and z > 0
        vox, assumed, _ = _checked_voxel_size(source, (z if ok else given[0], *given), fallback)
        return vox, (not ok, False, False), ()
    if given is not None:
        try:
            vox = tuple(float(v) for v in given)
        except (TypeError, ValueError):
            vox = ()
        if len(vox) != 3 or not all(math.isfinite(v) and v > 0 for v in vox):
            raise LabelFreeError(
                f"the voxel size must be three positive numbers Z, Y, X in um, got {given}",
                field="voxel_size",
            )
        return vox, (False, False, False), ()  # type: ignore[return-value]
    vox, warning = resolve_voxel_size(source, None, fallback)
    sizes = source.physical_sizes
    assumed = tuple(v is None or not math.isfinite(v) or v <= 0 for v in sizes)
    if planewise and not any(assumed[1:]):
        warning = None  # only the z-step was missing, and 2D models do not use it
    notices = (Notice(warning, field="voxel_size"),) if warning else ()
    return vox, assumed, notices  # type: ignore[return-value]


def _check_resampling(
    vox: VoxelSize, group_vox: VoxelSize, bundle: ModelBundle, grid: Sequence[int], n_out: int
) -> None:
    """Refuse a resampling that is almost surely a wrong voxel size, or cannot fit in memory."""
    factors = [v / m for v, m in zip(vox, group_vox, strict=True)]
    growth = math.prod(factors)
    wild = any(f > MAX_AXIS_FACTOR or f < 1 / MAX_AXIS_FACTOR for f in factors)
    why = ""
    if wild or growth > MAX_VOXEL_GROWTH:
        by = ", ".join(f"{a} {f:.3g}x" for a, f in zip("ZYX", factors, strict=True))
        why = (
            f"the image's voxel size {tuple(vox)} um against the model {bundle.name}'s "
            f"{tuple(group_vox)} um means resampling by {by} ({growth:.3g}x the voxels)"
        )
    else:
        need = int(np.prod(grid, dtype=np.int64)) * 4 * (2 + n_out)  # grid input, outputs, blend
        total = physical_memory()
        if total and need > total:
            why = (
                f"resampled to the model {bundle.name}'s voxel size {tuple(group_vox)} um, one "
                f"frame becomes {'x'.join(map(str, grid))} voxels, {need / 2**30:.1f} GiB, more "
                f"than this machine's {total / 2**30:.1f} GiB of memory"
            )
    if why:
        raise LabelFreeError(
            f"{why}; check the voxel size (the image's, or the one given); "
            "if it is right, confirm to go ahead anyway",
            field=("voxel_size", "force"),
        )


def plan_prediction(
    source: ImageSource,
    models: ModelRef | Sequence[ModelRef],
    channel: str | int | None = None,
    voxel_size: Sequence[float] | None = None,
    tiling: TilingConfig | None = None,
    device: str | torch.device = "auto",
    force: bool = False,
) -> PredictionPlan:
    """Check a prediction once and resolve it into a plan (raises LabelFreeError otherwise).

    Parameters
    ----------
    source
        The image (TCZYX, lazily read).
    models
        Model bundles, model folders or names of discovered models (one or several).
    channel
        The transmitted-light channel by name or index; None when the image has one channel, or
        when its acquisition metadata names the only transmitted-light one.
    voxel_size
        Z, Y, X in um; None takes the file's, and the first model's for the axes the file lacks
        (recorded in ``voxel_size_assumed`` and told in a Notice).
    tiling
        Tile shape, overlap, blending, precision; defaults to :class:`TilingConfig`.
    device
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    force
        Go ahead with a resampling that looks like a wrong voxel size (more than 64x the voxels,
        or more than 20x on one axis) or needs more memory than the machine has, or from a channel
        the file's acquisition metadata says is fluorescence.
    """
    from ..device import resolve_device, resolve_precision
    from ..preprocess import needs_resampling, resampled_shape
    from .tiling import fit_tile_shape, max_tile_shape
    from .volume import ModelGroup

    if source.dtype is not None and np.dtype(source.dtype).kind == "c":
        raise LabelFreeError(
            f"{source._label()} holds complex numbers ({source.dtype}); give its magnitude or "
            "real part as a real-valued image"
        )
    bundles = _resolve_bundles(models)
    notices_2d = _check_kinds(source, bundles)
    c, chosen = _input_channel(source, channel, force)
    chosen += tuple(modality_warnings(bundles, source.modality_of(c)))
    tiling = tiling or TilingConfig()
    planewise = all(b.spec.kind == "unet2d" for b in bundles)
    vox, assumed, notices = _checked_voxel_size(
        source, voxel_size, bundles[0].spec.voxel_size_um, planewise
    )
    dev = resolve_device(device)
    dtype, changed = resolve_precision(dev, tiling.precision)
    if changed:
        notices += (Notice(changed, field="precision"),)
    notices += chosen + notices_2d

    # models that see the same input (voxel size and normalization) share each tile
    # (and the same kind of network: a 2D one reads planes, a 2.5D one windows of planes)
    shared: dict[tuple, list[int]] = {}
    for i, b in enumerate(bundles):
        arch = b.spec.architecture
        # a 2D network predicts each plane on its own: the image's z-step is kept as it is
        model_vox = tuple(b.spec.voxel_size_um)
        if b.spec.kind == "unet2d":
            model_vox = (vox[0], *model_vox[1:])
        kind = (b.spec.kind, arch.in_planes, b.spec.target_projection)
        key = (model_vox, repr(b.spec.normalization), kind)
        shared.setdefault(key, []).append(i)
    groups = []
    for (group_vox, _, (kind, window, projection)), indices in shared.items():
        first = bundles[indices[0]]
        if not all(math.isfinite(v) and v > 0 for v in group_vox):
            raise LabelFreeError(
                f"the model {first.path} has voxel size {group_vox} in its config.json; "
                "fix it to three positive numbers Z, Y, X in um"
            )
        resample = needs_resampling(vox, group_vox)
        grid = resampled_shape(source.shape_zyx, vox, group_vox) if resample else source.shape_zyx
        if not force:
            _check_resampling(vox, group_vox, first, grid, len(indices))
        groups.append(
            ModelGroup(
                indices=tuple(indices),
                voxel_size=group_vox,
                multiple=tuple(  # type: ignore[arg-type]
                    max(m)
                    for m in zip(
                        *(bundles[i].spec.architecture.multiples for i in indices), strict=True
                    )
                ),
                grid_shape=tuple(grid),  # type: ignore[arg-type]
                resample=resample,
                normalization=first.spec.normalization,
                window=window if kind == "unet2.5d" else 1,
                projection=projection,
                kind=kind,
            )
        )
    max_tile = max_tile_shape(tiling.tile_shape, dev, dtype)
    return PredictionPlan(
        source=source,
        bundles=bundles,
        names=tuple(output_names(bundles)),
        channel=c,
        voxel_size=vox,
        voxel_size_assumed=assumed,
        tiling=tiling,
        device=dev,
        dtype=dtype,
        groups=tuple(groups),
        tile_shapes=[_group_tile(g, max_tile, tiling.overlap, fit_tile_shape) for g in groups],
        notices=notices,
    )


def _group_tile(group: ModelGroup, max_tile, overlap: float, fit) -> tuple[int, int, int]:
    """The tile of one group; a 2.5D projection model's tiles span its whole window of planes
    (a 3D one's are a 3D model's: a stack shallower than its tile is padded up to it, as in
    training, not cut into thinner tiles).

    A 2.5D network's tile takes the whole stack when the largest tile's Z allows (the CPU default
    holds 64 planes); a deeper stack is cut along z, and the planes within half a window of a
    tile's cut end see repeated end planes there (they weigh little in the blend).
    """
    shape = group.feed_shape
    if group.reads_window:
        max_tile = (shape[0], *max_tile[1:])
    return fit(shape, max_tile, overlap, group.multiple)


def _check_kinds(source: ImageSource, bundles: Sequence[ModelBundle]) -> tuple[Notice, ...]:
    """Refuse an image the models cannot read; say how a 2D model reads a z-stack."""
    kinds = {b.spec.kind for b in bundles}
    projections = {b.spec.target_projection for b in bundles}
    if len(projections) > 1:
        raise LabelFreeError(
            "models trained on a projection (one plane per stack) and models predicting every "
            "plane give outputs of different shapes; predict them in two runs",
            field="models",
        )
    if kinds != {"unet2d"}:
        check_3d(source)  # 3D and 2.5D networks read a z-stack
        return ()
    z = source.shape_zyx[0]
    if z < 2:
        return ()
    names = ", ".join(b.name for b in bundles)
    return (Notice(f"2D model(s) {names}: each of the {z} z-planes is predicted on its own"),)
