"""The worker side of prediction on a Dask cluster: what a task carries, what a worker keeps.

A task (:func:`predict_task`) rebuilds its input's plan from the settings the client resolved
(:class:`Job`), reads its own frame, predicts it (or one block of it, :mod:`.blocks`) and writes
it straight into its region of the output store, returning only ``(input, t)``. Each worker opens
each model once (:class:`ModelPlugin`, then the one network cache of :mod:`..weights`) and keeps
its plans, with their input files open, for its next frames. The client side is
:mod:`.distributed`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distributed import WorkerPlugin

from ..config import TilingConfig
from ..io import OmeZarrOutput, VoxelSize, open_image

if TYPE_CHECKING:
    from .blocks import Region
    from .plan import PredictionPlan

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
    scene: int = 0  # of a file of several scenes (positions), the one the client opened


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
            open_image(job.input_path, job.scene or None),
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
