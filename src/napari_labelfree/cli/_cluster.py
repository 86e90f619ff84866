"""`labelfree predict --scheduler / --workers`: the checked plans run on a Dask cluster."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from ..core.errors import LabelFreeError
from ._args import with_hint
from ._outputs import source_label
from ._progress import say, warning_line

if TYPE_CHECKING:
    from ..core.predict.plan import PredictionPlan


def predict_on_cluster(
    args: argparse.Namespace, plans: list[PredictionPlan], targets: list[Path]
) -> None:
    """Send every missing frame (or block) of ``plans`` to the cluster; a bar follows the tasks."""
    try:
        import distributed
    except ImportError as e:  # pragma: no cover - a dependency, absent only in odd installs
        raise LabelFreeError("prediction on a cluster needs the 'distributed' package") from e
    # importing distributed sets its loggers to INFO: a local cluster's start and normal close
    # ("Lost all workers", a worker killed after closing) would read like failures
    logging.getLogger("distributed").setLevel(logging.ERROR)
    from ..core.predict.distributed import predict_plans, start_local_cluster
    from ..core.trust.ood import input_warnings

    said: set[str] | None = set() if len(plans) > 1 else None  # as drive_prediction's
    for plan in plans:
        for notice in plan.notices:
            # the precision is each worker's own to resolve, not this machine's
            if notice.field != "precision":
                say(f"labelfree: {with_hint(notice.text, notice.field, args.flag_hints)}", said)
        # the first frame read here once: is the image like each model's training images?
        frame = plan.source.frame(0, plan.channel)
        image = source_label(plan.source) if said is not None else None
        for warning in input_warnings(plan.bundles, frame, plan.voxel_size):
            say(warning_line(warning, image), said)
    bar = tqdm(
        desc="cluster",
        unit="block" if args.block else "frame",
        file=sys.stderr,
        disable=None,  # off when stderr is not a terminal, as the local bars
    )

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    run = dict(
        device=args.device,
        progress=progress,
        resume=args.resume,
        overwrite=args.overwrite,
        block=args.block,
    )
    try:
        if args.workers:
            cluster, threads = start_local_cluster(args.workers)
            with cluster, distributed.Client(cluster) as client:
                predict_plans(plans, targets, client, torch_threads=threads, **run)
        else:
            predict_plans(plans, targets, args.scheduler, **run)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            "the frames written so far are kept in the partial store(s) beside the output "
            f"(.{targets[0].name}.partial); run the same command with --resume to finish"
        ) from None
    finally:
        bar.close()
        for plan in plans:
            plan.source.close()
