"""First-frame latency versus total time for time-lapse prediction, as the napari widget runs it.

The Predict widget drives :func:`napari_labelfree.core.predict.run.iter_predict_scheduled` in a
worker thread, starting with the frame under the time slider. What the user waits for before
seeing a first prediction is the time to the first ``FrameDone``; the rest fills in while they
scrub. This script measures both, without Qt, on the simulated time-lapse sample (8 frames of
24x160x160 at 0.29, 0.065, 0.065 um) with three models.

Usage::

    python benchmarks/timelapse_latency.py                 # paper-size networks (depth 4, width 32)
    python benchmarks/timelapse_latency.py --depth 2 --width 8 --frames 4 --threads 2

Models are untrained (random weights, ``init_bundle``): speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from napari_labelfree.core.bundle import init_bundle
from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.events import FrameDone, TileDone
from napari_labelfree.core.io import from_array
from napari_labelfree.core.predict.run import iter_predict_scheduled
from napari_labelfree.core.predict.schedule import FrameScheduler
from napari_labelfree.core.synth import simulate

STRUCTURES = ("dna", "lamin-b1", "cellmask")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--shape", default="24,160,160", help="Z,Y,X of each frame")
    p.add_argument("--voxel", default="0.29,0.065,0.065", help="um Z,Y,X of the frames")
    p.add_argument("--current", type=int, default=None, help="frame under the slider [middle]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [torch default]")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.shape.split(","))
    voxel = tuple(float(v) for v in args.voxel.split(","))

    t0 = time.perf_counter()
    sim = simulate(
        shape=shape, voxel_size=voxel, structures=STRUCTURES, timepoints=args.frames, seed=3
    )
    t_sim = time.perf_counter() - t0
    source = from_array(sim.data[:, :1], "TCZYX", ["bright-field"], physical_sizes=voxel)

    with tempfile.TemporaryDirectory() as tmp:
        bundles = [
            init_bundle(
                Path(tmp) / s,
                ModelSpec(
                    structure=s, architecture=Architecture(depth=args.depth, width=args.width)
                ),
                seed=i,
            )
            for i, s in enumerate(STRUCTURES)
        ]
        current = args.frames // 2 if args.current is None else args.current
        sched = FrameScheduler(args.frames, current=current)
        gen = iter_predict_scheduled(source, bundles, sched, device=args.device)
        start = time.perf_counter()
        first = None
        order = []
        tiles = 0
        per_frame = []
        last = start
        for event in gen:
            if isinstance(event, TileDone):
                tiles += 1
            elif isinstance(event, FrameDone):
                now = time.perf_counter()
                per_frame.append(now - last)
                last = now
                order.append(event.frame)
                if first is None:
                    first = now - start
        total = time.perf_counter() - start

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}")
    print(
        f"time-lapse: {args.frames} frames of {shape} at {voxel} um (simulated in {t_sim:.1f} s); "
        f"3 models ({', '.join(STRUCTURES)}), U-Net depth {args.depth} width {args.width}"
    )
    print(f"frame order: {order} (current frame {current} first)")
    print(f"tiles: {tiles} in all ({tiles // max(len(order), 1)} per frame)")
    print(f"first frame (under the slider) ready after: {first:.2f} s")
    print(f"all {len(order)} frames ready after:        {total:.2f} s")
    print(
        f"per frame: first {per_frame[0]:.2f} s (includes loading the networks), "
        f"then median {sorted(per_frame[1:])[len(per_frame[1:]) // 2]:.2f} s"
        if len(per_frame) > 1
        else ""
    )
    print(f"first-frame latency = {100 * first / total:.0f}% of the total time")


if __name__ == "__main__":
    main()
