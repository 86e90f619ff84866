"""Every GPU figure of issue 14 in one process, in one table (<= 5 minutes on an H100).

Installs nothing, downloads nothing; builds a paper-size network (depth 4, width 32, untrained
with non-trivial BatchNorm statistics) and times, on the same GPU in the same run:

1. one 64x272x272 tile through the optimized twin in bf16 (Mvox/s, fraction of the measured
   bf16 matmul ceiling);
2. ``iter_predict_volume`` end to end on a 64x1024x1024 volume in bf16 (host array in, host array
   out; median of 3 after a warm-up) and its Pearson r against the same path in fp32;
3. pytorch_fnet's prediction path (the in-tree piecewise reference of ``cpu_predict.py``: fp32,
   32x512x512 pieces, each copied to the GPU and back) on the same volume;
4. the whole ``labelfree predict`` process on that volume as a float32 OME-TIFF, twice, with the
   command's own ``--timings`` phase breakdown (start-up, reading, prediction, writing);
5. training iterations/s at the paper's settings (``train_speed.py``: batch 24 of 32x64x64, Adam),
   ours against the plain reference loop.

Usage::

    python benchmarks/gpu_report.py            # everything, ~2-3 minutes on an H100
    python benchmarks/gpu_report.py --skip-train --skip-process

Without a CUDA GPU it says so in one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

SHAPE = (64, 1024, 1024)
TILE = (64, 272, 272)
VOXEL = (0.29, 0.29, 0.29)
DEVICE = "cuda"


def _row(rows: list, what: str, value: str, reference: str = "", goal: str = "") -> None:
    rows.append((what, value, reference, goal))
    print(f"  {what}: {value}", flush=True)


def predict_figures(rows: list, bundle_dir: Path, dev: torch.device, repeat: int) -> np.ndarray:
    """Rows 1-3; returns the test volume (float32) for the process figure."""
    from cpu_predict import reference_predict
    from gpu_predict import flops_per_voxel, matmul_ceiling, sync, time_net

    from napari_labelfree.core.bundle import open_bundle
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.optimize import optimize_for_inference
    from napari_labelfree.core.predict.run import iter_predict_volume
    from napari_labelfree.core.weights import load_network

    bundle = open_bundle(bundle_dir)
    net = load_network(bundle)
    fpv = flops_per_voxel(net)
    ceiling = matmul_ceiling(dev, torch.bfloat16)
    twin = optimize_for_inference(net, dev).to_precision(torch.bfloat16)
    x = torch.randn(1, 1, *TILE, device=dev, dtype=torch.bfloat16)
    s = time_net(twin, x, dev, max(3, repeat))
    nvox = int(np.prod(TILE))
    _row(rows, "one 64x272x272 tile, optimized twin, bf16",
         f"{nvox / s / 1e6:.3g} Mvox/s ({nvox * fpv / s / 1e12 / ceiling:.0%} of the measured "
         f"{ceiling:.3g} TFLOP/s bf16 ceiling)")  # fmt: skip
    del twin, x

    rng = np.random.default_rng(0)
    volume = (1000 + 200 * rng.normal(size=SHAPE)).astype(np.float32)
    nvox = int(np.prod(SHAPE))
    outs = {}
    for prec in ("bf16", "fp32"):
        tiling = TilingConfig(precision=prec)
        times = []
        for i in range(repeat + 1 if prec == "bf16" else 2):
            sync(dev)
            t0 = time.perf_counter()
            outs[prec] = drain(iter_predict_volume(volume, [bundle], VOXEL, tiling, dev))["dna"]
            sync(dev)
            if i:  # the first run builds the twin and autotunes cuDNN
                times.append(time.perf_counter() - t0)
        if prec == "bf16":
            e2e = statistics.median(times)
            runs = ", ".join(f"{t:.2f}" for t in times)
    r = float(np.corrcoef(outs["bf16"].ravel(), outs["fp32"].ravel())[0, 1])

    plain = load_network(bundle)
    plain = type(plain)(plain.arch).to(dev).eval()
    plain.load_state_dict(net.state_dict())
    reference_predict(plain, volume[:16, :64, :64], str(dev))  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    ref = reference_predict(plain, volume, str(dev))
    sync(dev)
    ref_s = time.perf_counter() - t0
    r_ref = float(np.corrcoef(outs["fp32"].ravel(), ref.ravel())[0, 1])
    _row(rows, "iter_predict_volume end to end, 64x1024x1024, bf16",
         f"{nvox / e2e / 1e6:.3g} Mvox/s ({e2e:.2f} s; runs {runs}); r vs fp32 {r:.6f}",
         f"{nvox / ref_s / 1e6:.3g} Mvox/s ({ref_s:.2f} s, predict_piecewise fp32; r vs ours "
         f"fp32 {r_ref:.5f}, seams)", ">= 500 Mvox/s, r >= 0.9999")  # fmt: skip
    if dev.type == "cuda":
        _row(rows, "peak GPU memory (prediction)",
             f"{torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB")  # fmt: skip
    del plain, ref, outs
    return volume


def process_figures(rows: list, bundle_dir: Path, volume: np.ndarray, work: Path) -> None:
    """Row 4: the whole command, twice, with its own phase breakdown."""
    from napari_labelfree.core.io import write_ome_tiff

    image = write_ome_tiff(work / "in.ome.tif", volume[None, None], physical_sizes=VOXEL)
    # the package's own entry point through this interpreter: works without an installed script
    # (a GPU machine that runs the source tree with PYTHONPATH=src)
    for i in (1, 2):
        cmd = [sys.executable, "-m", "napari_labelfree", "predict", str(image), "-m", str(bundle_dir), "-o", str(work / "out.ome.tif"),
               "--device", DEVICE, "--overwrite", "--timings"]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode:
            _row(rows, f"labelfree predict process, run {i}", f"failed: {done.stderr[-300:]}")
            return
        phases = re.search(r"timings: (.*)", done.stderr)
        _row(rows, f"whole `labelfree predict` process, 64x1024x1024 float32 OME-TIFF, run {i}",
             f"{wall:.2f} s ({phases.group(1) if phases else 'no timings line'})", "",
             "<= 2.0 s")  # fmt: skip


def train_figures(rows: list, dev: torch.device, work: Path) -> None:
    """Row 5: training it/s at the paper's settings, ours and the plain reference loop."""
    from train_speed import make_pairs, ours_its, reference_its

    pairs = make_pairs()
    n, warm = (80, 10) if dev.type == "cuda" else (4, 1)
    ref = reference_its(pairs, dev, n // 2, warm)
    ours = ours_its(pairs, dev, n, warm, work / "model")
    _row(rows, "training, batch 24 of 32x64x64, Adam (paper settings)",
         f"{ours:.1f} it/s (50k iterations in {50_000 / ours / 60:.0f} min)",
         f"{ref:.1f} it/s (plain fp32 loop, host patches)", ">= 40 it/s")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-process", action="store_true")
    p.add_argument("--smoke-cpu", action="store_true", help=argparse.SUPPRESS)  # checks the script
    args = p.parse_args()
    global SHAPE, TILE, DEVICE
    if args.smoke_cpu:  # the same code on tiny shapes on the CPU: a check, not a figure
        SHAPE, TILE, DEVICE = (16, 96, 64), (16, 64, 64), "cpu"
    elif not torch.cuda.is_available():
        print("gpu_report.py: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
              "run it where an NVIDIA GPU is, the CPU figures are benchmarks/cpu_predict.py's")  # fmt: skip
        return 2
    from cpu_predict import make_bundle

    dev = torch.device(DEVICE)
    torch.backends.cudnn.benchmark = True
    t_start = time.perf_counter()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (smoke run)"
    print(f"# {name}, torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}, {time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    rows: list = []
    with tempfile.TemporaryDirectory(prefix="labelfree-gpu-report-") as tmp:
        work = Path(tmp)
        bundle_dir = make_bundle(work / "paper-dna")
        volume = predict_figures(rows, bundle_dir, dev, args.repeat)
        if not args.skip_process:
            if dev.type == "cuda":
                torch.cuda.empty_cache()  # the command's own process needs the GPU memory
            process_figures(rows, bundle_dir, volume, work)
        del volume
        if not args.skip_train:
            train_figures(rows, dev, work)
    print("\n| what | measured | reference (same GPU, same run) | goal |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n({time.perf_counter() - t_start:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
