"""Training iterations/s at the paper's settings (batch 24 of 32x64x64 patches, Adam, MSE).

Two loops on the same paper-size network (depth 4, width 32), same data, same run:

* **reference**: the paper software's loop written plainly: fp32, NCDHW, patches cut on the host
  with numpy and copied to the device every step, Adam lr 0.001, MSE.
* **core.train.iter_train**: this package's trainer (device-resident data and patch sampling,
  bf16/fp16 autocast, channels-last, fused Adam and cuDNN autotuning on CUDA), timed from its
  ``TrainStep`` events; once reading the loss every step (``log_every=1``: the host waits for the
  device after each step) and once as it runs by default (every 25 steps on a GPU).

The first ``--warmup`` iterations of each are not timed (allocation, autotuning).

Usage::

    python benchmarks/train_speed.py --device cuda --iterations 110    # H100 goal: >= 40 it/s
    nice -n -5 python benchmarks/train_speed.py --device cpu --iterations 3 --warmup 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.device import resolve_device
from napari_labelfree.core.train import ImagePair, TrainConfig, TrainStep, iter_train
from napari_labelfree.core.train.throughput import log_interval
from napari_labelfree.core.unet import UNet3D

BATCH, PATCH = 24, (32, 64, 64)
ARCH = Architecture(depth=4, width=32)  # the paper's network (gpu_report.py --small shrinks it)


def make_pairs(n: int = 3, shape=(64, 256, 256), seed: int = 0) -> list[ImagePair]:
    """Signal/target pairs (the target a smoothed, shifted copy of the signal: learnable)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        s = gaussian_filter(rng.normal(size=shape).astype(np.float32), 1.5)
        t = np.roll(gaussian_filter(s, 2.0), 2, axis=2) + 0.05 * rng.normal(size=shape)
        pairs.append(ImagePair(s, t.astype(np.float32), None, f"p{i}"))
    return pairs


def reference_its(pairs, dev: torch.device, iterations: int, warmup: int) -> float:
    """The plain loop: host-side patches, fp32, Adam + MSE; iterations/s after the warm-up."""
    torch.manual_seed(0)
    net = UNet3D(ARCH).to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    zs = [((p.signal - p.signal.mean()) / p.signal.std(), (p.target - p.target.mean()) / p.target.std())
          for p in pairs]  # fmt: skip
    t0 = None
    for it in range(iterations):
        if it == warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
        xs, ys = [], []
        for _ in range(BATCH):
            s, t = zs[rng.integers(len(zs))]
            z, y, x = (rng.integers(0, n - p + 1) for n, p in zip(s.shape, PATCH, strict=True))
            sl = np.s_[z : z + PATCH[0], y : y + PATCH[1], x : x + PATCH[2]]
            xs.append(s[sl])
            ys.append(t[sl])
        xb = torch.from_numpy(np.stack(xs)[:, None]).to(dev)
        yb = torch.from_numpy(np.stack(ys)[:, None]).to(dev)
        opt.zero_grad()
        loss = F.mse_loss(net(xb), yb)
        loss.backward()
        opt.step()
        loss.item()  # the paper's loop logged the loss every step
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return (iterations - warmup) / (time.perf_counter() - t0)


def ours_its(
    pairs, dev: torch.device, iterations: int, warmup: int, out: Path, log_every: int = 0
) -> float:
    """core.train.iter_train at the paper's settings; iterations/s after the warm-up.

    Steps are reported when their loss is read (every ``log_every``), so the clock is read at
    those points only: the first one after the warm-up and the last.
    """
    spec = ModelSpec("dna", architecture=ARCH)
    cfg = TrainConfig(iterations=iterations, batch_size=BATCH, patch_shape=PATCH,
                      checkpoint_every=10**9, validate_every=10**9, seed=0,
                      log_every=log_every)  # fmt: skip
    every = log_interval(log_every, dev)
    marks: list[tuple[int, float]] = []
    for event in iter_train(pairs, spec, out, cfg, device=dev):
        if isinstance(event, TrainStep) and event.iteration % every == 0:
            marks.append((event.iteration, time.perf_counter()))
    start = next((m for m in marks if m[0] >= warmup), marks[0])
    return (marks[-1][0] - start[0]) / (marks[-1][1] - start[1])


def main(default_device: str = "auto") -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=default_device)
    p.add_argument("--iterations", type=int, default=110)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()
    if not 0 < args.warmup < args.iterations:
        p.error("need 0 < --warmup < --iterations")
    dev = resolve_device(args.device)
    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"# {name}, torch {torch.__version__}; batch {BATCH} x {'x'.join(map(str, PATCH))}, "
          f"{args.iterations} iterations ({args.warmup} warm-up)")  # fmt: skip
    pairs = make_pairs()
    rows = []
    if not args.skip_reference:
        rows.append(("reference loop (fp32, host patches, loss read every step)",
                     reference_its(pairs, dev, args.iterations, args.warmup)))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for label, every in (
            ("loss read every step", 1),
            ("default: loss read every 25 on a GPU", 0),
        ):
            its = ours_its(pairs, dev, args.iterations, args.warmup, Path(tmp) / str(every), every)
            rows.append((f"core.train.iter_train, {label}", its))
    ref = rows[0][1] if not args.skip_reference else None
    print("| loop | it/s | x reference | 50k iterations |\n|---|---|---|---|")
    for label, its in rows:
        x = f"{its / ref:.2f}x" if ref else "-"
        print(f"| {label} | {its:.2f} | {x} | {50_000 / its / 60:.0f} min |")
    if dev.type == "cuda":
        print(f"goal on an H100: >= 40 it/s; {'met' if rows[-1][1] >= 40 else 'NOT met'}")


if __name__ == "__main__":
    main()
