"""Prediction in one call: plan, then drain the plan over one volume, an image, or a scheduler.

Shorthands for scripts, benchmarks and evaluation; the CLI and the widget build a
:class:`~.plan.PredictionPlan` themselves (to report its notices and outputs before any work).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..bundle import ModelBundle
from ..config import TilingConfig
from ..errors import LabelFreeError
from ..events import FrameDone, Notice, TileDone
from ..io import ImageSource, VoxelSize, from_array
from .plan import Event, ModelRef, plan_prediction
from .schedule import FrameScheduler

if TYPE_CHECKING:
    import torch


def iter_predict_volume(
    volume: np.ndarray,
    bundles: Sequence[ModelBundle],
    voxel_size: VoxelSize,
    tiling: TilingConfig | None = None,
    device: str | torch.device = "auto",
    frame: int = 0,
    force: bool = False,
) -> Generator[TileDone | Notice, None, dict[str, np.ndarray]]:
    """Predict one ZYX volume with several models; returns {name: ZYX float32 array of its shape}.

    A plan for this one volume (:func:`plan_prediction`); to predict many volumes of one image,
    make the plan once and call :meth:`.plan.PredictionPlan.predict_volume` or ``iter_frames``.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise LabelFreeError(f"expected a 3D (Z, Y, X) volume, got shape {volume.shape}")
    plan = plan_prediction(
        from_array(volume, "ZYX", physical_sizes=voxel_size),
        bundles,
        voxel_size=voxel_size,
        tiling=tiling,
        device=device,
        force=force,
    )
    return (yield from plan.predict_volume(volume, frame))


def iter_predict(
    source: ImageSource,
    bundles: ModelRef | Sequence[ModelRef],
    channel: str | int | None = None,
    voxel_size: VoxelSize | None = None,
    tiling: TilingConfig | None = None,
    device: str | torch.device = "auto",
    frames: Iterable[int] | None = None,
    collect: bool = True,
    force: bool = False,
) -> Generator[Event, None, dict[str, np.ndarray] | None]:
    """Plan and predict every (or the given) time point of one channel of an image.

    Yields FrameStarted / TileDone / FrameDone / Notice. Returns {name: TZYX array} for the
    predicted frames in the order given when ``collect`` is true, else None (for callers that
    stream each FrameDone to disk).
    """
    plan = plan_prediction(source, bundles, channel, voxel_size, tiling, device, force)
    collected: dict[str, list[np.ndarray]] = {n: [] for n in plan.output_names}
    gen = plan.iter_frames(frames)
    for event in gen:
        yield event
        if collect and isinstance(event, FrameDone):
            for name, arr in event.arrays.items():
                collected[name].append(arr)
    if not collect:
        return None
    return {n: np.stack(v) for n, v in collected.items()}


def iter_predict_scheduled(
    source: ImageSource,
    bundles: ModelRef | Sequence[ModelRef],
    scheduler: FrameScheduler,
    channel: str | int | None = None,
    voxel_size: VoxelSize | None = None,
    tiling: TilingConfig | None = None,
    device: str | torch.device = "auto",
) -> Generator[Event, None, list[int]]:
    """Plan a prediction and predict the frames ``scheduler`` hands out, nearest the current first.

    Shorthand for ``plan_prediction(...).iter_frames(scheduler)``; returns the frames in the
    order they finished.
    """
    plan = plan_prediction(source, bundles, channel, voxel_size, tiling, device)
    return (yield from plan.iter_frames(scheduler))
