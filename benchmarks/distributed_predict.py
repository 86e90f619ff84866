"""Time-lapse prediction on a Dask cluster: 1 versus N local workers, or an existing scheduler.

Writes a simulated bright-field time-lapse (``--frames`` of ``--shape``) and untrained models
(speed does not depend on the weights), predicts it in one process (the reference), then with
:func:`napari_labelfree.core.predict.distributed.predict_distributed` on local clusters of each worker
count in ``--workers`` (the machine's cores shared out between the workers' torch threads), and
checks each output equals the reference (fp32). Prints cluster start-up time, prediction time
and frames per second.

Usage::

    python benchmarks/distributed_predict.py                          # 1 and 2 workers, 8 frames
    python benchmarks/distributed_predict.py --workers 1,2,4 --depth 4 --width 32
    python benchmarks/distributed_predict.py --scheduler tcp://127.0.0.1:8786   # workers started by hand
    python benchmarks/distributed_predict.py --frames 1 --shape 64,256,256 --block 32,128,128
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_labelfree.core.bundle import init_bundle
from napari_labelfree.core.config import Architecture, ModelSpec, TilingConfig
from napari_labelfree.core.events import FrameDone
from napari_labelfree.core.io import open_image, write_ome_tiff
from napari_labelfree.core.predict.distributed import predict_distributed, start_local_cluster
from napari_labelfree.core.predict.plan import plan_prediction
from napari_labelfree.core.synth import simulate

VOX = (0.29, 0.29, 0.29)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--shape", default="32,128,128", help="Z,Y,X of a frame")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--models", type=int, default=2)
    p.add_argument("--workers", default="1,2", help="local worker counts to compare")
    p.add_argument("--scheduler", default=None, help="address of a running scheduler instead")
    p.add_argument("--block", default=None, type=lambda s: tuple(int(v) for v in s.split(",")),
                   help="Z,Y,X: cut each frame into blocks of this size, one task each")  # fmt: skip
    args = p.parse_args()
    import distributed

    zyx = tuple(int(v) for v in args.shape.split(","))
    tiling = TilingConfig(precision="fp32")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        im = simulate(shape=zyx, voxel_size=VOX, structures=("dna",), timepoints=args.frames)
        src_path = write_ome_tiff(
            tmp / "movie.ome.tif", im.data, channel_names=im.channel_names, physical_sizes=VOX
        )
        bundles = [
            init_bundle(
                tmp / f"m{i}",
                ModelSpec(
                    structure=f"s{i}",
                    voxel_size_um=VOX,
                    architecture=Architecture(depth=args.depth, width=args.width),
                ),
                seed=i,
            )
            for i in range(args.models)
        ]
        refs = [str(b.path) for b in bundles]
        print(
            f"{args.frames} frames of {zyx}, {args.models} models depth {args.depth} width "
            f"{args.width}, fp32, {cores} cores"
        )
        t0 = time.perf_counter()
        plan = plan_prediction(open_image(src_path), bundles, 0, None, tiling, "cpu")
        reference = [e.arrays for e in plan.iter_frames() if isinstance(e, FrameDone)]
        single = time.perf_counter() - t0
        print(f"{'one process':24} {'':>9} {single:8.1f} s {args.frames / single:6.2f} frames/s")

        def run(label: str, client: object, started: float) -> None:
            out = tmp / f"{label.replace(' ', '-')}.ome.zarr"
            t1 = time.perf_counter()
            with distributed.get_task_stream(client) as stream:
                predict_distributed([src_path], refs, [out], client, channel=0, tiling=tiling,
                                    device="cpu", torch_threads=threads, block=args.block)  # fmt: skip
            took = time.perf_counter() - t1
            per_worker: dict[str, int] = {}
            for task in stream.data:
                if str(task["key"]).startswith("labelfree-"):
                    per_worker[task["worker"]] = per_worker.get(task["worker"], 0) + 1
            got = open_image(out)
            same = all(
                np.array_equal(got.frame(t, c), reference[t][name])
                for t in range(args.frames)
                for c, name in enumerate(got.channel_names)
            )
            print(
                f"{label:24} {started:7.1f} s {took:8.1f} s {args.frames / took:6.2f} frames/s"
                f"  {'identical' if same else 'DIFFERENT'} to one process, frames per worker "
                f"{sorted(per_worker.values())}"
            )

        if args.scheduler:
            threads = None
            with distributed.Client(args.scheduler) as client:
                n = len(client.scheduler_info()["workers"])
                run(f"{n} workers at scheduler", client, 0.0)
            return
        for n in (int(v) for v in args.workers.split(",")):
            threads = max(1, cores // n)
            t0 = time.perf_counter()
            cluster, _ = start_local_cluster(n, torch_threads=threads)
            with cluster, distributed.Client(cluster) as client:
                client.wait_for_workers(n)
                run(f"{n} local worker(s) x{threads}t", client, time.perf_counter() - t0)
        torch.set_num_threads(cores)


if __name__ == "__main__":
    main()
