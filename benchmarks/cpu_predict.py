"""Prediction speed and peak memory: `labelfree predict` against the paper software's approach.

Per volume size, in the same run and with the same weights (a paper-size network, depth 4 width
32, untrained but with non-trivial BatchNorm statistics so that folding is really exercised):

* **reference**: pytorch_fnet's approach written plainly: fp32, the whole volume when it fits
  (no larger than the 32x512x512 pieces the paper's software ran in one go), else 32x512x512
  pieces overlapping by 16 voxels blended with triangular weights; BatchNorm unfused, NCDHW,
  ``torch.no_grad``. Timed in-process, from the loaded volume to the predicted array.
* **labelfree predict** (``--precision fp32`` and ``bf16``): the whole command as a user runs it,
  start-up, reading the OME-TIFF and writing the OME-TIFF included.

Every configuration runs in a fresh subprocess, so each peak resident memory (``ru_maxrss`` of
that process, from ``os.wait4``) is its own. Outputs are compared with the reference (at sizes
that run whole, the reference *is* the fp32 whole-volume prediction): Pearson r and max abs error.

Usage::

    nice -n -5 python benchmarks/cpu_predict.py                      # 32x256x256, 64x256x256, 64x512x512
    python benchmarks/cpu_predict.py --sizes 16x64x64 --precisions fp32 --repeat 1   # a smoke run

The machine is shared: compare the ratios measured within one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PIECE = (32, 512, 512)  # pytorch_fnet's largest piece
PIECE_OVERLAP = 16
VOXEL = (0.29, 0.29, 0.29)


# --------------------------------------------------------------------------------------------
# the reference, in its own process
# --------------------------------------------------------------------------------------------
def _triangle(n: int) -> np.ndarray:
    """Triangular 1D window, strictly positive so every voxel keeps some weight."""
    if n == 1:
        return np.ones(1, np.float32)
    i = np.arange(n, dtype=np.float32)
    return np.maximum(1.0 - np.abs(2.0 * i / (n - 1) - 1.0), 1e-3).astype(np.float32)


def _piece_starts(size: int, piece: int, overlap: int) -> list[int]:
    if size <= piece:
        return [0]
    starts = list(range(0, size - piece + 1, piece - overlap))
    if starts[-1] != size - piece:
        starts.append(size - piece)
    return starts


def reference_predict(net, volume: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The paper software's prediction, plainly: fp32, whole or 32x512x512 pieces, no_grad.

    ``net`` lives on ``device``; each piece goes there and its prediction comes back to the host,
    as pytorch_fnet's ``predict_piecewise`` does.
    """
    import torch

    x = volume.astype(np.float64)
    x = ((x - x.mean()) / x.std()).astype(np.float32)
    with torch.no_grad():
        if x.size <= int(np.prod(PIECE)):
            return net(torch.from_numpy(x)[None, None].to(device))[0, 0].cpu().numpy()
        out = np.zeros(x.shape, np.float32)
        weight = np.zeros(x.shape, np.float32)
        piece = [min(p, n) for p, n in zip(PIECE, x.shape, strict=True)]
        grids = [_piece_starts(n, p, PIECE_OVERLAP) for n, p in zip(x.shape, piece, strict=True)]
        w = (
            _triangle(piece[0])[:, None, None]
            * _triangle(piece[1])[None, :, None]
            * _triangle(piece[2])[None, None, :]
        )
        for z in grids[0]:
            for y in grids[1]:
                for xx in grids[2]:
                    sl = np.s_[z : z + piece[0], y : y + piece[1], xx : xx + piece[2]]
                    tile = torch.from_numpy(np.ascontiguousarray(x[sl]))[None, None].to(device)
                    out[sl] += net(tile)[0, 0].cpu().numpy() * w
                    weight[sl] += w
        return out / weight


def _worker_reference(bundle: str, image: str, result: str) -> None:
    import tifffile
    import torch
    from safetensors.torch import load_file

    from napari_labelfree.core.bundle import read_spec
    from napari_labelfree.core.unet import build_network

    net = build_network(read_spec(bundle).architecture)
    net.load_state_dict(load_file(str(Path(bundle) / "weights.safetensors")))
    net.eval()
    volume = tifffile.imread(image).reshape(tifffile.TiffFile(image).series[0].shape[-3:])
    t0 = time.perf_counter()
    out = reference_predict(net, volume)
    seconds = time.perf_counter() - t0
    np.save(result, out)
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads()}))


# --------------------------------------------------------------------------------------------
# the parent: set-up, subprocesses, comparison
# --------------------------------------------------------------------------------------------
def _run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; (wall seconds, peak RSS in MB of that process alone, its stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # read the pipes in threads so wait4 (not Popen.wait) reaps the child and returns its rusage
    import threading

    chunks: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda k=k, f=f: chunks.__setitem__(k, f.read()))
        for k, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{chunks.get('err', '')[-3000:]}")
    return wall, usage.ru_maxrss / 1024, chunks.get("out", "")


def make_bundle(folder: Path, seed: int = 0, depth: int = 4, width: int = 32):
    """Untrained bundle (paper size by default) whose BatchNorm layers have non-trivial statistics."""

    from napari_labelfree.core.bundle import init_bundle, save_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.unet import randomize_batchnorm
    from napari_labelfree.core.weights import load_network

    spec = ModelSpec(
        "dna", voxel_size_um=VOXEL, architecture=Architecture(depth=depth, width=width)
    )
    bundle = init_bundle(folder, spec, seed=seed)
    net = randomize_batchnorm(load_network(bundle), seed)
    save_bundle(folder, spec, net.state_dict(), overwrite=True)
    return folder


def make_image(path: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """A uint16 OME-TIFF z-stack with structure at several scales (smoothed noise) plus noise."""
    from scipy.ndimage import gaussian_filter

    from napari_labelfree.core.io import write_ome_tiff

    rng = np.random.default_rng(seed)
    v = gaussian_filter(rng.normal(size=shape).astype(np.float32), 2.0)
    v = v / v.std() + 0.3 * rng.normal(size=shape).astype(np.float32)
    v = np.clip(1000 + 200 * v, 0, 65535).astype(np.uint16)
    write_ome_tiff(path, v[None, None], physical_sizes=VOXEL, dtype=np.uint16)
    return path


def _compare(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    p = pred.astype(np.float64).ravel()
    r = ref.astype(np.float64).ravel()
    return float(np.corrcoef(p, r)[0, 1]), float(np.abs(p - r).max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="32x256x256,64x256x256,64x512x512")
    p.add_argument("--precisions", default="fp32,bf16", help="labelfree predict --precision values")
    p.add_argument("--repeat", type=int, default=2, help="rounds over every configuration")
    p.add_argument("--keep", default=None, help="folder to keep inputs/outputs in (else temporary)")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    p.add_argument(
        "--before",
        default=None,
        metavar="SRC",
        help="also run the command from another source tree's src folder (e.g. an older commit "
        "unpacked with git archive) in the same run: before/after ratios on one machine state",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--bundle", default=None, help=argparse.SUPPRESS)
    p.add_argument("--image", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker == "reference":
        _worker_reference(args.bundle, args.image, args.result)
        return

    import torch

    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    precisions = [s for s in args.precisions.split(",") if s]
    work = Path(args.keep or tempfile.mkdtemp(prefix="labelfree-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    labelfree = shutil.which("labelfree", path=str(Path(sys.executable).parent)) or "labelfree"
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, nice {os.nice(0)}; "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    bundle = make_bundle(work / "paper-dna")
    images = {s: make_image(work / f"in_{'x'.join(map(str, s))}.ome.tif", s) for s in sizes}
    rows: list[dict] = []
    # (label, source folder or None for the installed command), alternating in each round
    codes: list[tuple[str, str | None]] = [("", None)]
    if args.before:
        here = str(Path(__file__).resolve().parent.parent / "src")
        codes = [(" (before)", str(Path(args.before).resolve())), (" (after)", here)]
    for rnd in range(1, args.repeat + 1):
        for shape in sizes:
            tag = "x".join(map(str, shape))
            nvox = int(np.prod(shape))
            ref_npy = work / f"ref_{tag}.npy"
            cmd = [sys.executable, __file__, "--worker", "reference", "--bundle", str(bundle),
                   "--image", str(images[shape]), "--result", str(ref_npy)]  # fmt: skip
            wall, peak, out = _run_measured(cmd)
            ref_s = json.loads(out.strip().splitlines()[-1])["seconds"]
            ref = np.load(ref_npy)
            row = {"round": rnd, "shape": tag, "config": "reference", "seconds": ref_s,
                   "process_seconds": wall, "mvox_s": nvox / ref_s / 1e6, "peak_mb": peak}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
            before_pred: dict[str, np.ndarray] = {}
            for prec, (label, src) in [(p, c) for p in precisions for c in codes]:
                target = work / f"out_{tag}_{prec}.ome.tif"
                args_ = [str(images[shape]), "-m", str(bundle), "-o",
                         str(target), "--device", "cpu", "--precision", prec, "--overwrite"]  # fmt: skip
                if src is None:
                    cmd, env = [labelfree, "predict", *args_], None
                else:  # the package from that source tree, by this interpreter
                    cmd = [sys.executable, "-m", "napari_labelfree", "predict", *args_]
                    env = {**os.environ, "PYTHONPATH": src}
                wall, peak, _ = _run_measured(cmd, env)
                import tifffile

                pred = tifffile.imread(target).reshape(shape)
                r, err = _compare(pred, ref)
                row = {"round": rnd, "shape": tag, "config": f"labelfree predict{label} --precision {prec}",
                       "seconds": wall, "mvox_s": nvox / wall / 1e6, "peak_mb": peak,
                       "speed_vs_ref": ref_s / wall,
                       "pearson_r_vs_ref": r, "max_abs_err_vs_ref": err}  # fmt: skip
                ref_row = next(
                    x for x in rows if x["round"] == rnd and x["shape"] == tag
                    and x["config"] == "reference"
                )  # fmt: skip
                row["mem_vs_ref"] = peak / ref_row["peak_mb"]
                if label == " (before)":
                    before_pred[prec] = pred
                elif label == " (after)":
                    same = _compare(pred, before_pred.pop(prec))
                    row["r_vs_before"], row["max_abs_diff_vs_before"] = same
                rows.append(row)
                print(json.dumps(row), flush=True)
    _summary(rows, sizes, precisions, args.repeat)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def _summary(rows: list[dict], sizes, precisions, repeat: int) -> None:
    print("\n| round | volume | configuration | s | Mvox/s | peak MB | speed vs ref | peak vs ref "
          "| r vs ref | max abs err |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        extra = (
            f"{r['speed_vs_ref']:.2f}x | {r['mem_vs_ref']:.2f}x | {r['pearson_r_vs_ref']:.6f} "
            f"| {r['max_abs_err_vs_ref']:.2e}"
            if "speed_vs_ref" in r
            else "1 | 1 | | "
        )
        print(f"| {r['round']} | {r['shape']} | {r['config']} | {r['seconds']:.1f} | "
              f"{r['mvox_s']:.3f} | {r['peak_mb']:.0f} | {extra} |")  # fmt: skip
    tags = ["x".join(map(str, s)) for s in sizes]
    if "64x256x256" in tags and "64x512x512" in tags:
        print("\nflat memory (peak 64x512x512 / peak 64x256x256), goal <= 1.3:")
        for rnd in range(1, repeat + 1):
            for prec in dict.fromkeys(r["config"] for r in rows):
                peak = {
                    r["shape"]: r["peak_mb"] for r in rows
                    if r["round"] == rnd and r["config"] == prec
                }  # fmt: skip
                print(f"  round {rnd} {prec}: {peak['64x512x512'] / peak['64x256x256']:.2f}")
    before = [r for r in rows if "(before)" in r["config"]]
    if before:
        print("\nafter / before, same round (speed > 1: the new code is faster; peak < 1: leaner):")
        for b in before:
            a = next(
                r for r in rows if r["round"] == b["round"] and r["shape"] == b["shape"]
                and r["config"] == b["config"].replace("(before)", "(after)")
            )  # fmt: skip
            print(f"  round {b['round']} {b['shape']} {a['config']}: speed "
                  f"{b['seconds'] / a['seconds']:.2f}x, peak {a['peak_mb'] / b['peak_mb']:.2f}x, "
                  f"output max abs diff {a['max_abs_diff_vs_before']:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
