"""Prediction on a Dask cluster: one task per (input file, time point) or per block, written in place.

The client checks every input once, as a local run does (:func:`.plan.plan_prediction`: the
z-stack, the channel, the models, the voxel size and ``force``), creates each output OME-Zarr
(:func:`..io.open_prediction_output`) and submits one task per frame still missing, or one per
Z-Y-X block of it (:mod:`.blocks`). A task runs on a worker (:mod:`.dask_worker`): it rebuilds
the same plan from the settings the client resolved (:class:`.dask_worker.Job`: the channel
index, the voxel size, the tiling; only the device is resolved on the worker, which may have GPUs
the client lacks), reads its own frame, predicts it and writes it straight into its region of the
output store. It returns only ``(input, t)``, so no array ever travels to the client. Each worker
opens each model once and keeps its plans, with their input files open, for its next frames. The
client follows the futures for progress and, when every frame is in, commits each store.
Reaching a scheduler and starting a local cluster: :mod:`.dask_cluster`.

A worker that dies mid-run loses its tasks; the scheduler runs them again elsewhere. That is
safe because a task is idempotent: it overwrites exactly its own chunks, and the frame's "done"
marker goes in after them (for blocks, the client sets it once every block of the frame is in).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TilingConfig
from ..errors import LabelFreeError
from ..io import OmeZarrOutput, VoxelSize, open_image, open_prediction_output
from .dask_cluster import check_scheduler, start_local_cluster
from .dask_worker import Job, ModelPlugin, predict_task

if TYPE_CHECKING:
    from .plan import PredictionPlan

# where the pieces live: the worker side (.dask_worker) and the clusters (.dask_cluster); the
# names a caller of this module has always found here
__all__ = [
    "Job",
    "ModelPlugin",
    "check_scheduler",
    "plan_inputs",
    "predict_distributed",
    "predict_plans",
    "predict_task",
    "start_local_cluster",
]

Progress = Callable[[int, int], None]


def plan_inputs(
    inputs: Sequence[str | Path],
    model_refs: Sequence[Any],
    channel: str | int | None = None,
    voxel_size: VoxelSize | None = None,
    tiling: TilingConfig | None = None,
    force: bool = False,
    scene: str | int | None = None,
) -> list[PredictionPlan]:
    """Check every input on the client, as a local run would (the device is the workers');
    ``scene``: of files of several scenes, the one to predict (the first when None)."""
    from .plan import plan_prediction

    plans = []
    models: Any = model_refs
    for path in inputs:
        source = open_image(path, scene)
        plan = plan_prediction(source, models, channel, voxel_size, tiling, "cpu", force)
        models = plan.bundles  # resolved once
        plans.append(plan)
    return plans


def predict_distributed(
    inputs: Sequence[str | Path],
    model_refs: Sequence[str | Path],
    output_paths: Sequence[str | Path],
    client_or_address: Any,
    channel: str | int | None = None,
    voxel_size: VoxelSize | None = None,
    tiling: TilingConfig | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    resume: bool = False,
    overwrite: bool = False,
    torch_threads: int | None = None,
    force: bool = False,
    block: Sequence[int] | None = None,
    scene: str | int | None = None,
) -> list[Path]:
    """Predict every frame of every input on a Dask cluster into one OME-Zarr per input.

    Every input is checked on the calling machine first, as a local prediction would be; then
    each worker predicts whole frames (or blocks of them) and writes them into the stores.

    Parameters
    ----------
    inputs, output_paths
        Input images and, one per input, the OME-Zarr stores to write.
    model_refs
        Model folders or names of discovered models (resolved here, opened by each worker).
    client_or_address
        A ``distributed.Client``, or a scheduler address (``tcp://host:port``).
    channel
        The transmitted-light channel (name or index; None when the inputs have one channel).
    voxel_size
        Voxel size (um, Z, Y, X) of the inputs when their files lack it.
    tiling
        As for single-process prediction (:class:`.config.TilingConfig`).
    device
        "auto", "cpu", "cuda", ...: resolved on each worker.
    progress
        Called with (tasks done, tasks to do) as tasks finish.
    resume, overwrite
        As :func:`.io.open_prediction_output`: resuming keeps the frames an interrupted run wrote.
    torch_threads
        torch threads per worker (None: torch's default).
    force
        Go ahead with a resampling that looks like a wrong voxel size (see ``plan_prediction``).
    block
        Cut each frame into blocks of this many voxels (Z, Y, X), one task each, for frames too
        large for one worker; the result equals the whole-frame one (see :mod:`.blocks`).
    scene
        Of inputs holding several scenes (positions), the one to predict, by name or index
        (the first when None); each worker opens the same scene.

    Returns
    -------
    list of Path
        The committed stores.

    Examples
    --------
    From a notebook, on two local worker processes::

        from distributed import Client
        from napari_labelfree.core.predict.distributed import predict_distributed, start_local_cluster

        cluster, threads = start_local_cluster(2)
        with cluster, Client(cluster) as client:
            predict_distributed(["movie.ome.tif"], ["dna"], ["movie.ome.zarr"], client,
                                channel="bright-field", torch_threads=threads)
    """
    if len(inputs) != len(output_paths):
        raise ValueError(f"{len(inputs)} inputs for {len(output_paths)} outputs")
    plans = plan_inputs(inputs, model_refs, channel, voxel_size, tiling, force, scene)
    try:
        return predict_plans(
            plans,
            output_paths,
            client_or_address,
            device,
            progress,
            resume,
            overwrite,
            torch_threads,
            block,
        )
    finally:
        for plan in plans:
            plan.source.close()


def predict_plans(
    plans: Sequence[PredictionPlan],
    output_paths: Sequence[str | Path],
    client_or_address: Any,
    device: str = "auto",
    progress: Progress | None = None,
    resume: bool = False,
    overwrite: bool = False,
    torch_threads: int | None = None,
    block: Sequence[int] | None = None,
) -> list[Path]:
    """:func:`predict_distributed` of inputs already checked (see :func:`plan_inputs`)."""
    from distributed import as_completed

    from .blocks import block_regions, check_blocks

    if block is not None:
        for plan in plans:
            check_blocks(plan)
    # the scheduler is reached before any store is made: a wrong address leaves nothing behind
    client = _client(client_or_address)
    futures: dict[Any, tuple[int, int]] = {}
    outputs: list[OmeZarrOutput] = []
    try:
        for plan, path in zip(plans, output_paths, strict=True):
            outputs.append(_open_output(plan, Path(path), resume, overwrite, block))
        plugin = ModelPlugin([str(b.path.resolve()) for b in plans[0].bundles], torch_threads)
        client.register_plugin(plugin, name=plugin.name)
        left: dict[tuple[int, int], int] = {}  # blocks still out, per (output, frame)
        run = uuid.uuid4().hex[:6]  # a rerun never finds an earlier run's results by key
        for i, (plan, out) in enumerate(zip(plans, outputs, strict=True)):
            job = Job(
                str(Path(plan.source.path).resolve()),
                plan.channel,
                plan.voxel_size,
                plan.tiling,
                str(device),
                plan.source.scene,
            )
            regions = [None] if block is None else block_regions(plan.shape_zyx, block)
            prefix = f"labelfree-{_token(out.work_path)}{run}"
            for t in out.missing_frames:
                left[i, t] = len(regions)
                for b, region in enumerate(regions):
                    key = f"{prefix}-{t}" if region is None else f"{prefix}-{t}-block{b}"
                    future = client.submit(
                        predict_task, plugin.name, job, t, out, region, key=key, pure=False
                    )
                    futures[future] = (i, t)
        total = len(futures)
        if progress:
            progress(0, total)
        for done, future in enumerate(as_completed(list(futures)), 1):
            future.result()  # a task's own error (a corrupt frame, ...) ends the run here
            i, t = futures[future]
            left[i, t] -= 1
            if block is not None and not left[i, t]:
                outputs[i].mark_done(t)  # every block of the frame is in
            if progress:
                progress(done, total)
    except BaseException:
        client.cancel(list(futures))  # nothing keeps running for a run that stopped
        for out in outputs:
            out.close()  # the partial stores stay for --resume, no longer held by this run
        raise
    finally:
        if client is not client_or_address:
            client.close()
    return [out.commit() for out in outputs]


#: seconds a scheduler has to accept the connection and answer who it is
CONNECT_SECONDS = 10.0


def _client(client_or_address: Any) -> Any:
    from distributed import Client

    if isinstance(client_or_address, Client):
        return client_or_address
    check_scheduler(str(client_or_address), CONNECT_SECONDS)
    try:
        return Client(client_or_address, timeout=CONNECT_SECONDS)
    except OSError as e:
        raise LabelFreeError(
            f"cannot reach the Dask scheduler at {client_or_address} ({e}); start it "
            "(dask scheduler) or check its address"
        ) from e


def _open_output(
    plan: PredictionPlan,
    path: Path,
    resume: bool,
    overwrite: bool,
    block: Sequence[int] | None,
) -> OmeZarrOutput:
    """The output store of one input (new or, resuming, reopened)."""
    if plan.source.path is None:
        raise LabelFreeError(
            "prediction on a cluster reads its inputs from files; save the image to a file first"
        )
    return open_prediction_output(
        path,
        plan.output_names,
        plan.output_colours,
        plan.output_shape_zyx,
        plan.output_physical_sizes,
        plan.n_frames,
        resume,
        overwrite,
        chunks_zyx=block,
    )


def _token(path: Path) -> str:
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:10]
