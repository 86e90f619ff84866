"""Prediction on a Dask cluster: one task per (input file, time point) or per block, written in place.

The client checks every input once, as a local run does (:func:`.plan.plan_prediction`: the
z-stack, the channel, the models, the voxel size and ``force``), creates each output OME-Zarr
(:func:`..io.open_prediction_output`) and submits one task per frame still missing, or one per
Z-Y-X block of it (:mod:`.blocks`). A task runs on a worker: it rebuilds the same plan from the
settings the client resolved (:class:`Job`: the channel index, the voxel size, the tiling; only
the device is resolved on the worker, which may have GPUs the client lacks), reads its own frame,
predicts it and writes it straight into its region of the output store. It returns only
``(input, t)``, so no array ever travels to the client. Each worker opens each model once
(:class:`ModelPlugin`, then the one network cache of :mod:`..weights`) and keeps its plans, with
their input files open, for its next frames. The client follows the futures for progress and,
when every frame is in, commits each store.

A worker that dies mid-run loses its tasks; the scheduler runs them again elsewhere. That is
safe because a task is idempotent: it overwrites exactly its own chunks, and the frame's "done"
marker goes in after them (for blocks, the client sets it once every block of the frame is in).
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import WorkerPlugin

from ..config import TilingConfig
from ..errors import LabelFreeError
from ..io import OmeZarrOutput, VoxelSize, open_image, open_prediction_output

if TYPE_CHECKING:
    from .blocks import Region
    from .plan import PredictionPlan

Progress = Callable[[int, int], None]
#: input files (with their plans) a worker keeps open at once (frames of a file come in a row)
OPEN_FILES_PER_WORKER = 4


@dataclass(frozen=True)
class Job:
    """What a worker needs to rebuild an input's plan: the settings the client checked."""

    input_path: str
    channel: int  # index, resolved from a name on the client
    voxel_size: VoxelSize  # um, Z, Y, X: the file's, the one given, or the model's
    tiling: TilingConfig
    device: str  # as asked ("auto", "cuda", ...): each worker resolves its own


class ModelPlugin(WorkerPlugin):
    """Worker plugin: opens the models once per worker and keeps its input files' plans.

    Parameters
    ----------
    model_paths
        Model folders (as the client resolved them).
    torch_threads
        Threads each worker's torch may use (None: torch's default); several workers on one
        machine should share its cores rather than each take them all.
    """

    def __init__(self, model_paths: Sequence[str], torch_threads: int | None = None) -> None:
        self.model_paths = [str(p) for p in model_paths]
        self.torch_threads = torch_threads
        self.name = plugin_name(self.model_paths)
        self.bundles: list[Any] = []
        self._plans: OrderedDict[str, PredictionPlan] = OrderedDict()  # by repr(job)

    def setup(self, worker: Any = None) -> None:
        import torch

        from ..bundle import open_bundle
        from ..weights import load_network

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self.bundles = [open_bundle(p) for p in self.model_paths]
        for bundle in self.bundles:
            load_network(bundle)  # cached per folder: each task of this worker reuses it

    def teardown(self, worker: Any = None) -> None:
        while self._plans:
            self._plans.popitem()[1].source.close()

    def plan(self, job: Job) -> PredictionPlan:
        """The plan of ``job``, made once by this worker (its input file kept open)."""
        from .plan import plan_prediction

        key = repr(job)  # TilingConfig is mutable, so a Job does not hash
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        # the client made the checks (force included): the same settings are not checked again
        plan = plan_prediction(
            open_image(job.input_path),
            self.bundles,
            job.channel,
            job.voxel_size,
            job.tiling,
            job.device,
            force=True,
        )
        self._plans[key] = plan
        while len(self._plans) > OPEN_FILES_PER_WORKER:
            self._plans.popitem(last=False)[1].source.close()
        return plan


def plugin_name(model_paths: Sequence[str]) -> str:
    """One plugin per set of models: registering the same models twice is a no-op."""
    digest = hashlib.sha1("\n".join(model_paths).encode()).hexdigest()[:12]
    return f"labelfree-models-{digest}"


def predict_task(
    plugin: str, job: Job, t: int, output: OmeZarrOutput, region: Region | None = None
) -> tuple[str, int]:
    """On a worker: read frame ``t``, predict it (or its ``region``), write it into ``output``."""
    from distributed import get_worker

    from ..events import drain

    plan = get_worker().plugins[plugin].plan(job)
    volume = plan.source.frame(t, plan.channel)
    if region is None:
        output.write_frame(t, drain(plan.predict_volume(volume, t)))
    else:
        from .blocks import predict_block

        output.write_block(t, [a for a, _ in region], predict_block(plan, volume, region))
    return job.input_path, t


def plan_inputs(
    inputs: Sequence[str | Path],
    model_refs: Sequence[Any],
    channel: str | int | None = None,
    voxel_size: VoxelSize | None = None,
    tiling: TilingConfig | None = None,
    force: bool = False,
) -> list[PredictionPlan]:
    """Check every input on the client, as a local run would (the device is the workers')."""
    from .plan import plan_prediction

    plans = []
    models: Any = model_refs
    for path in inputs:
        plan = plan_prediction(open_image(path), models, channel, voxel_size, tiling, "cpu", force)
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
    plans = plan_inputs(inputs, model_refs, channel, voxel_size, tiling, force)
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


def check_scheduler(address: str, seconds: float) -> None:
    """Refuse, within ``seconds``, an address where no Dask scheduler answers.

    A closed port is refused at once; a server of another kind (a web server) accepts the
    connection and then never answers Dask's handshake, where ``Client`` would wait forever.
    """
    import asyncio
    import socket

    from distributed.comm import connect, parse_address, parse_host_port

    def unreachable(why: str) -> LabelFreeError:
        return LabelFreeError(
            f"cannot reach the Dask scheduler at {address} ({why}); start it (dask scheduler) "
            "or check its address"
        )

    scheme, location = parse_address(address)
    if scheme != "tcp":
        return  # TLS and other transports need their own settings: Client checks them
    host, port = parse_host_port(location)
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as e:
        raise unreachable(e.strerror or type(e).__name__) from None

    async def identity() -> Any:
        comm = await asyncio.wait_for(connect(address, timeout=seconds), seconds)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await asyncio.wait_for(comm.read(), seconds)
        finally:
            comm.abort()

    try:
        answer = asyncio.run(identity())
    except (OSError, TimeoutError, ValueError, TypeError):
        answer = None
    if not (isinstance(answer, dict) and answer.get("type") == "Scheduler"):
        raise LabelFreeError(
            f"no Dask scheduler answers at {address} within {seconds:g} s (is it another kind "
            "of server?); give the address the scheduler prints (tcp://HOST:PORT)"
        )


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


def start_local_cluster(
    n_workers: int | str = "auto", torch_threads: int | None = None
) -> tuple[Any, int]:
    """A local cluster of worker processes; ``auto``: one per CUDA GPU, each pinned to its GPU.

    Returns the cluster and the torch threads per worker to use (the CPU cores shared out when
    the workers run on the CPU). Without GPUs, ``auto`` starts one worker.
    """
    import torch
    from distributed import Nanny, Scheduler, SpecCluster

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_workers == "auto":
        n_workers = max(gpus, 1)
    n = int(n_workers)
    if n < 1:
        raise LabelFreeError(f"the number of workers must be at least 1, got {n_workers}")
    if torch_threads is None and not gpus:
        torch_threads = max(1, (os.cpu_count() or 1) // n)
    workers = {}
    for i in range(n):
        env = {"CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else {}
        workers[f"labelfree-{i}"] = {
            "cls": Nanny,
            "options": {"nthreads": 1, "env": env, "silence_logs": logging.ERROR},
        }
    cluster = SpecCluster(
        workers=workers,
        scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
        silence_logs=logging.ERROR,
    )
    return cluster, torch_threads or 0
