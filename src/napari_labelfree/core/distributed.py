"""Prediction on a Dask cluster: one task per (input file, time point), results written in place.

The client opens each input's header only (shape, channel, voxel size), creates each output
OME-Zarr (:func:`.io.open_prediction_output`) and submits one task per frame still missing. A
task runs on a worker: it reads its own frame from the input file (the worker keeps the file
open across the frames it gets), predicts it with the models a :class:`ModelPlugin` loaded once
on that worker, and writes the result straight into its region of the output store; it returns
only ``(input index, t)``, so no array ever travels to the client. The client follows the futures
for progress and, when every frame is in, commits each store.

A worker that dies mid-run loses its tasks; the scheduler runs them again elsewhere. That is
safe because a task is idempotent: it overwrites exactly its own frame's chunks, and the frame's
"done" marker goes in after them.

Not done here: cutting one volume too large for a worker into Z-Y-X blocks with a halo; a task is
always a whole frame.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from distributed import WorkerPlugin

from .config import TilingConfig
from .errors import LabelFreeError
from .io import ImageSource, OmeZarrOutput, VoxelSize, open_image, open_prediction_output

Progress = Callable[[int, int], None]
#: input files a worker keeps open at once (the frames of one file usually come in a row)
OPEN_FILES_PER_WORKER = 4


def predict_frame(
    volume: np.ndarray,
    bundles: Sequence[Any],
    voxel_size: VoxelSize,
    tiling: TilingConfig | None,
    device: str,
    t: int,
) -> dict[str, np.ndarray]:
    """{name: ZYX} predictions of one frame: the one call that does the work in a task."""
    from .events import drain
    from .predict import iter_predict_volume

    return drain(iter_predict_volume(volume, bundles, voxel_size, tiling, device, frame=t))


class ModelPlugin(WorkerPlugin):
    """Worker plugin: opens the models once per worker and keeps its input files open.

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
        self._sources: OrderedDict[str, ImageSource] = OrderedDict()

    def setup(self, worker: Any = None) -> None:
        import torch

        from .bundle import load_network, open_bundle

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self.bundles = [open_bundle(p) for p in self.model_paths]
        for bundle in self.bundles:
            load_network(bundle)  # cached per folder: each task of this worker reuses it

    def teardown(self, worker: Any = None) -> None:
        while self._sources:
            self._sources.popitem()[1].close()

    def source(self, path: str) -> ImageSource:
        """The input file, opened once by this worker and kept open for its next frames."""
        if path in self._sources:
            self._sources.move_to_end(path)
            return self._sources[path]
        src = open_image(path)
        self._sources[path] = src
        while len(self._sources) > OPEN_FILES_PER_WORKER:
            self._sources.popitem(last=False)[1].close()
        return src


def plugin_name(model_paths: Sequence[str]) -> str:
    """One plugin per set of models: registering the same models twice is a no-op."""
    digest = hashlib.sha1("\n".join(model_paths).encode()).hexdigest()[:12]
    return f"labelfree-models-{digest}"


def predict_task(
    plugin: str,
    input_path: str,
    channel: int,
    t: int,
    voxel_size: VoxelSize,
    tiling: TilingConfig | None,
    device: str,
    output: OmeZarrOutput,
) -> tuple[str, int]:
    """On a worker: read frame ``t``, predict it, write it into ``output``; return its key."""
    from distributed import get_worker

    models: ModelPlugin = get_worker().plugins[plugin]
    volume = models.source(input_path).frame(t, channel)
    result = predict_frame(volume, models.bundles, voxel_size, tiling, device, t)
    output.write_frame(t, result)
    return input_path, t


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
) -> list[Path]:
    """Predict every frame of every input on a Dask cluster into one OME-Zarr per input.

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
    tiling, device
        As for single-process prediction; ``device`` is resolved on each worker.
    progress
        Called with (frames done, frames to do) as frames finish.
    resume, overwrite
        As :func:`.io.open_prediction_output`: resuming keeps the frames an interrupted run wrote.
    torch_threads
        torch threads per worker (None: torch's default).

    Returns
    -------
    list of Path
        The committed stores.
    """
    from distributed import Client, as_completed

    from .bundle import resolve_model
    from .predict import output_names

    if len(inputs) != len(output_paths):
        raise ValueError(f"{len(inputs)} inputs for {len(output_paths)} outputs")
    bundles = [resolve_model(ref) for ref in model_refs]
    if not bundles:
        raise LabelFreeError("choose at least one model")
    names = output_names(bundles)
    colours = [b.spec.colormap for b in bundles]
    plans = [
        _plan_input(
            Path(p), Path(o), names, colours, bundles, channel, voxel_size, resume, overwrite
        )
        for p, o in zip(inputs, output_paths, strict=True)
    ]
    client = (
        client_or_address if isinstance(client_or_address, Client) else Client(client_or_address)
    )
    try:
        plugin = ModelPlugin([str(b.path.resolve()) for b in bundles], torch_threads)
        client.register_plugin(plugin, name=plugin.name)
        futures = [
            client.submit(
                predict_task,
                plugin.name,
                str(src_path),
                c,
                t,
                vox,
                tiling,
                device,
                out,
                key=f"labelfree-{_token(out.work_path)}-{t}",
                pure=False,
            )
            for src_path, c, vox, out in plans
            for t in out.missing_frames
        ]
        total = len(futures)
        if progress:
            progress(0, total)
        for done, future in enumerate(as_completed(futures), 1):
            future.result()  # a task's own error (a corrupt frame, ...) ends the run here
            if progress:
                progress(done, total)
    finally:
        if client is not client_or_address:
            client.close()
    return [out.commit() for *_, out in plans]


def _plan_input(
    path: Path,
    out_path: Path,
    names: list[str],
    colours: list[str],
    bundles: Sequence[Any],
    channel: str | int | None,
    voxel_size: VoxelSize | None,
    resume: bool,
    overwrite: bool,
) -> tuple[Path, int, VoxelSize, OmeZarrOutput]:
    """Header checks on the client, and the output store (new or, resuming, reopened)."""
    from .io import check_3d, resolve_voxel_size

    with open_image(path) as src:
        check_3d(src)
        c = src.channel_index(channel)
        vox, _ = resolve_voxel_size(src, voxel_size, bundles[0].spec.voxel_size_um)
        out = open_prediction_output(
            out_path, names, colours, src.shape_zyx, vox, src.n_timepoints, resume, overwrite
        )
    return path.resolve(), c, vox, out


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
