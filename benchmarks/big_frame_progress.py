"""How long a user waits for each progress message when predicting one big frame (64x2048x2048).

Issue 20: such a frame "planned" for 22.6 s with nothing shown. This times, on the CPU with the
built-in dna model, what the Predict widget runs in its worker (plan, then the frame's events up to
its first finished tile): the plan itself, then each message the status line gets (frame started,
"reading the frame", "normalizing", "resampling ...", each said again with its seconds about once a
second while it runs, the first tile), and the longest stretch without a new one. Nothing is
predicted past the first tile. Needs ~4 GB of memory for the default size.

    python benchmarks/big_frame_progress.py [--shape 64 2048 2048] [--voxel 0.29 0.108 0.108]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=[64, 2048, 2048])
    p.add_argument("--voxel", type=float, nargs=3, default=[0.29, 0.108, 0.108])
    p.add_argument("--model", default="dna")
    args = p.parse_args()

    from napari_labelfree.core.events import FrameStarted, Stage, TileDone
    from napari_labelfree.core.io import from_array
    from napari_labelfree.core.predict.plan import plan_prediction

    rng = np.random.default_rng(0)
    data = rng.normal(1000, 50, size=args.shape).astype(np.float32)
    source = from_array(data, "ZYX", physical_sizes=args.voxel)
    print(
        f"frame {tuple(args.shape)} float32 ({data.nbytes / 2**30:.1f} GiB), voxel {args.voxel} um, "
        f"model {args.model}, cpu; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    t0 = time.perf_counter()
    plan = plan_prediction(source, args.model, voxel_size=args.voxel, device="cpu")
    marks = [("plan made", time.perf_counter() - t0)]
    print(f"{marks[-1][1]:7.1f} s  {marks[-1][0]}", flush=True)
    for event in plan.iter_frames():
        now = time.perf_counter() - t0
        if isinstance(event, FrameStarted):
            what = f"frame {event.frame} started"
        elif isinstance(event, Stage):
            what = f"stage: {event.text}"
        elif isinstance(event, TileDone):
            what = f"tile {event.index + 1}/{event.total} done"
        else:
            what = type(event).__name__
        marks.append((what, now))
        print(f"{now:7.1f} s  {what}", flush=True)
        if isinstance(event, TileDone):
            break
    times = [0.0] + [t for _, t in marks]
    waits = np.diff(times)
    k = int(np.argmax(waits))
    print(
        f"longest wait for a new message: {waits[k]:.1f} s (before: {marks[k][0]}); "
        f"first tile after {marks[-1][1]:.1f} s; load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
