"""The Predict widget's job, run in a worker thread: plan, fit tiles, predict, store frames.

Planning runs here too (it imports torch and checks the voxel size, the channel, the device), so
the click returns at once and a refused plan (a voxel size typed in nm, say) fails before
anything is allocated or any layer changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ..core.bundle import ModelBundle
from ..core.config import TilingConfig
from ..core.errors import LabelFreeError
from ..core.events import FrameDone, Notice, TileDone
from ..core.io import ImageSource
from ..core.predict.schedule import FrameScheduler
from ..core.predict.tile_advice import cpu_tile_shape, raise_tiny_tile
from ._overlays import display_limits, frame_store, store_frame

LAYERS_WAIT_S = 3.0  # at most: a GUI that never answers (a closing window) must not stall the job
#: One volume fills in on screen: its outputs so far are sent at most this often (s), and at most
#: ~10 % of the prediction's time goes to them (each is a copy, maybe a resampling, of the volume).
PARTIAL_EVERY_S = 1.0


@dataclass
class PredictRequest:
    """Everything one Predict click needs, read from the controls once (GUI thread)."""

    source: ImageSource
    source_name: str
    bundles: list[ModelBundle]
    channel: int | None
    voxel_size: tuple[float, float, float] | None
    tiling: TilingConfig
    device: str
    force: bool
    auto_tile: bool  # the user left the tile at "auto": fit it to the device
    scheduler: FrameScheduler
    has_time: bool
    model_paths: list[str] = field(default_factory=list)
    has_z: bool = True  # the layer has a Z axis (a 2D image or 2D time-lapse has none)
    # set by the GUI once the overlays of the first frame are added: until then the worker waits,
    # so adding layers (a few hundred ms of GUI work each) does not compete with the network
    layers_ready: threading.Event = field(default_factory=threading.Event)


def parse_zyx_shape(text: str) -> tuple[int, int, int] | None:
    """'16, 64, 64' (commas, semicolons or spaces) -> (16, 64, 64): three positive whole numbers
    of voxels (a tile, a patch); None when the text is not that. Not a voxel size: no um range."""
    parts = [v for v in text.replace(";", ",").replace(" ", ",").split(",") if v]
    try:
        values = [float(v) for v in parts]
    except ValueError:
        return None
    if len(values) != 3 or any(not (0 < v < 1e6) or v != round(v) for v in values):
        return None
    return (round(values[0]), round(values[1]), round(values[2]))


def tiling_from_text(
    text: str, overlap: float, bundles: list[ModelBundle], precision: str = "auto"
) -> tuple[TilingConfig, bool, Notice | None]:
    """(tiling, auto, notice) from the tile box: "auto" or "Z, Y, X"; tiny tiles are raised."""
    if text.strip().lower() in ("", "auto"):
        return TilingConfig(overlap=float(overlap), precision=precision), True, None
    given = parse_zyx_shape(text)
    if given is None:
        raise LabelFreeError(
            f"tile {text!r} is not three whole numbers Z, Y, X (voxels) or 'auto'",
            field="tile_shape",
        )
    multiple = max(b.spec.architecture.multiple for b in bundles)
    flat = all(b.spec.architecture.flat for b in bundles)  # 2D / 2.5D: one plane is a tile
    tile, notice = raise_tiny_tile(list(given), multiple, flat)
    return TilingConfig(tile_shape=tile, overlap=float(overlap), precision=precision), False, notice


@dataclass(frozen=True)
class VolumePartial:
    """The outputs so far of one volume being predicted (zero where no tile has been yet)."""

    frame: int
    arrays: dict[str, Any]
    limits: dict[str, tuple[float, float]]


def partial_outputs(tiles_done: TileDone, drop_z: bool) -> tuple[VolumePartial | None, float]:
    """(partial event or None, seconds it cost) from a TileDone that offers its outputs so far."""
    if tiles_done.partial is None or tiles_done.index + 1 >= tiles_done.total:
        return None, 0.0  # nothing offered, or the frame is done: FrameDone follows at once
    start = time.perf_counter()
    arrays = tiles_done.partial()
    if drop_z:
        arrays = {name: a[0] for name, a in arrays.items()}
    limits = {name: display_limits(a) for name, a in arrays.items()}
    return VolumePartial(tiles_done.frame, arrays, limits), time.perf_counter() - start


@dataclass(frozen=True)
class Planned:
    """The plan was accepted: output names and, for a time-lapse, the stores frames go into."""

    names: tuple[str, ...]
    bundles: tuple[ModelBundle, ...]
    stores: dict[str, Any] | None
    # one output plane shown without a Z axis: a 2D layer's, or a projection over the stack's
    drop_z: bool = False
    # a projection per frame of a z-stack time-lapse: one plane kept as a Z axis that spans the
    # stack (napari lines axes up from the right, so T, Y, X would move with the z slider)
    span_z: bool = False


def fit_tiles_to_cpu(plan: Any) -> None:
    """On a CPU cut large frames into a few tiles, so Cancel and the slider act within a frame."""
    from ..core.predict.tiling import fit_tile_shape

    if plan.device.type != "cpu":
        return
    for g, group in enumerate(plan.groups):
        # within the plan's own tile, which already holds the CPU fp32 memory cap
        # (core.predict.tiling.max_tile_shape): cutting for Cancel must never undo it
        tile = cpu_tile_shape(
            group.feed_shape, plan.tile_shapes[g], group.multiple, plan.tiling.overlap
        )
        plan.tile_shapes[g] = fit_tile_shape(
            group.feed_shape, tile, plan.tiling.overlap, group.multiple
        )


def predict_job(req: PredictRequest) -> Generator[Any, None, list[int]]:
    """Plan, then predict the frames the scheduler hands out; each frame is stored here."""
    from ..core.predict.plan import plan_prediction

    plan = plan_prediction(
        req.source,
        req.bundles,
        req.channel,
        req.voxel_size,
        req.tiling,
        req.device,
        force=req.force,
    )
    if req.auto_tile:
        fit_tiles_to_cpu(plan)
    stores = None
    out_zyx = plan.output_shape_zyx
    projection = out_zyx[0] == 1 and req.has_z and bool(plan.groups[0].projection)
    span_z = projection and req.has_time
    drop_z = out_zyx[0] == 1 and (not req.has_z or projection) and not span_z
    if req.has_time:  # chunked on disk: a long time-lapse must not sit in RAM
        shape = (plan.n_frames, *out_zyx[int(drop_z) :])
        stores = {name: frame_store(shape) for name in plan.output_names}
    yield Planned(plan.output_names, plan.bundles, stores, drop_z, span_z)
    done: list[int] = []
    last, cost = time.monotonic(), 0.0
    for event in plan.iter_frames(req.scheduler):
        if isinstance(event, FrameDone):
            done.append(event.frame)
            event = store_frame(event, stores, drop_z)
        yield event
        # one volume (no time axis): show it filling in, as a time-lapse fills in frame by frame
        due = time.monotonic() - last >= max(PARTIAL_EVERY_S, 10 * cost)
        if stores is None and isinstance(event, TileDone) and due:
            partial, cost = partial_outputs(event, drop_z)
            last = time.monotonic()
            if partial is not None:
                yield partial
        if len(done) == 1 and isinstance(event, FrameDone):
            req.layers_ready.wait(LAYERS_WAIT_S)
    return done
