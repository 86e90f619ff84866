"""Loss curves of the fast training path against the fp32 loop, on the same data and seed.

Runs ``core.train.iter_train`` twice: once in fp32 reading the loss every step (the plain loop),
once as asked (default: bf16 autocast, fused Adam, channels-last, the loss read every 25 steps),
and saves both curves in one PNG. The runs cannot match step for step (rounding differs and
training is chaotic); what must match is the trajectory in distribution: the smoothed curves
overlap, and the losses of the last half have the same mean within a few percent (a two-sample
Kolmogorov-Smirnov test is printed with them).

Usage (small, on the CPU; the paper's settings on a GPU)::

    python benchmarks/train_curves.py --device cpu --iterations 300 --out train_curves.png
    python benchmarks/train_curves.py --device cuda --paper --iterations 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import make_pairs  # noqa: E402

from napari_labelfree.core.config import Architecture, ModelSpec  # noqa: E402
from napari_labelfree.core.train import TrainConfig, TrainStep, iter_train  # noqa: E402


def run(pairs, args, precision: str, log_every: int, out: Path) -> tuple[np.ndarray, float]:
    """Per-step losses and wall time of one training run."""
    depth, width = (4, 32) if args.paper else (2, 8)
    spec = ModelSpec("dna", architecture=Architecture(depth=depth, width=width))
    cfg = TrainConfig(iterations=args.iterations, batch_size=args.batch, patch_shape=args.patch,
                      checkpoint_every=10**9, validate_every=10**9, seed=0, precision=precision,
                      log_every=log_every)  # fmt: skip
    losses = []
    t0 = time.perf_counter()
    for event in iter_train(pairs, spec, out, cfg, device=args.device):
        if isinstance(event, TrainStep):
            losses.append(event.loss)
    return np.asarray(losses), time.perf_counter() - t0


def smooth(v: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(v, np.ones(k) / k, mode="valid")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--precision", default="bf16", help="of the fast run [bf16]")
    p.add_argument("--log-every", type=int, default=25, help="of the fast run [25]")
    p.add_argument("--paper", action="store_true", help="depth 4, width 32, batch 24 of 32x64x64")
    p.add_argument("--out", default="train_curves.png")
    args = p.parse_args()
    args.batch, args.patch = (24, (32, 64, 64)) if args.paper else (4, (16, 32, 32))
    pairs = make_pairs(n=3, shape=(64, 128, 128) if not args.paper else (64, 256, 256))
    with tempfile.TemporaryDirectory() as tmp:
        ref, t_ref = run(pairs, args, "fp32", 1, Path(tmp) / "fp32")
        fast, t_fast = run(pairs, args, args.precision, args.log_every, Path(tmp) / "fast")
    half = len(ref) // 2
    from scipy.stats import ks_2samp

    ks = ks_2samp(ref[half:], fast[half:])
    rel = fast[half:].mean() / ref[half:].mean() - 1
    label = f"{args.precision}, loss read every {args.log_every}"
    print(f"| run | s | mean loss, last half | |\n|---|---|---|---|\n"
          f"| fp32, loss read every step | {t_ref:.1f} | {ref[half:].mean():.4f} | |\n"
          f"| {label} | {t_fast:.1f} | {fast[half:].mean():.4f} | {rel:+.1%}; KS p = "
          f"{ks.pvalue:.3f} |")  # fmt: skip

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    k = max(1, min(50, len(ref) // 10))
    it = np.arange(1, len(ref) + 1)
    for v, name, c in ((ref, "fp32", "C0"), (fast, label, "C1")):
        ax.plot(it, v, color=c, alpha=0.25, lw=0.6)
        ax.plot(it[k - 1 :], smooth(v, k), color=c, lw=1.6, label=f"{name} (mean of {k})")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training MSE (z-scored target)")
    ax.set_title(f"{args.device}: {len(ref)} iterations, batch {args.batch} x {args.patch}",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
