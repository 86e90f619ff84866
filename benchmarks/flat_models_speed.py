"""Prediction speed per megavoxel of 2D and 2.5D models against the 3D one, on the CPU (or a GPU).

The same U-Net depth and width as 3D (``unet3d``), 2D (``unet2d``, every plane on its own) and
2.5D (``unet2.5d``, a window of ``--in-planes`` planes per output plane), each predicting the same
z-stack through the package's prediction path (plan, tiles, inference twin). Runs alternate
between the kinds and the median of ``--repeats`` is kept, so a machine whose load changes during
the run biases no kind; the printed ratios are the numbers to quote (with the load beside them).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/flat_models_speed.py --shape 13 256 256 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(13, 256, 256), metavar=("Z", "Y", "X"))
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--in-planes", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    import torch

    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec, TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.io import from_array
    from napari_labelfree.core.predict.plan import plan_prediction

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    stack = rng.random(tuple(args.shape)).astype(np.float32)
    folder = Path(tempfile.mkdtemp(prefix="labelfree-flat-speed-"))
    vox = (1.0, 1.0, 1.0)
    kinds = {
        "3D": Architecture(depth=args.depth, width=args.width),
        "2D": Architecture(name="unet2d", depth=args.depth, width=args.width),
        f"2.5D ({args.in_planes} planes)": Architecture(
            name="unet2.5d", depth=args.depth, width=args.width, in_planes=args.in_planes
        ),
    }
    plans = {}
    for label, arch in kinds.items():
        spec = ModelSpec("dna", voxel_size_um=vox, architecture=arch)
        bundle = init_bundle(folder / arch.name, spec)
        source = from_array(stack, "ZYX", physical_sizes=vox)
        plans[label] = plan_prediction(
            source, bundle, device=args.device, tiling=TilingConfig(precision="fp32")
        )
        drain(plans[label].predict_volume(stack))  # warm-up: network loaded, twin built
    times: dict[str, list[float]] = {label: [] for label in plans}
    for _ in range(args.repeats):
        for label, plan in plans.items():
            t0 = time.perf_counter()
            drain(plan.predict_volume(stack))
            times[label].append(time.perf_counter() - t0)
    mvox = stack.size / 1e6
    base = statistics.median(times["3D"])
    print(
        f"stack {tuple(args.shape)} ({mvox:.2f} Mvoxel), depth {args.depth}, width {args.width}, "
        f"{args.threads} thread(s), device {args.device}, load {os.getloadavg()[0]:.1f}"
    )
    print("| kind | tile | s per Mvoxel (median) | vs 3D |")
    print("|---|---|---|---|")
    for label, plan in plans.items():
        med = statistics.median(times[label])
        tile = "x".join(map(str, plan.tile_shapes[0]))
        print(f"| {label} | {tile} | {med / mvox:.2f} | {base / med:.2f}x faster |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
