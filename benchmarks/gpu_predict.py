"""GPU prediction throughput (Mvox/s) of the paper network, against the measured bf16 ceiling.

Ready for an H100 (goal: >= 300 Mvox/s at 64x1024x1024 through ``iter_predict_volume``, i.e. the
whole path a user runs: z-score, tiling, bf16 network, blending on the GPU, copy back). Prints:

* the bf16 dense-matmul ceiling measured on this GPU (TFLOP/s, 8192^3 matmuls);
* the network's cost per voxel (FLOPs, counted from its layers) and the network alone on one
  tile (Mvox/s and the fraction of the ceiling it reaches), fp32 and the chosen precision;
* the end-to-end Mvox/s per volume, median of ``--repeat`` runs after a warm-up;
* numerics: Pearson r and max abs error of the reduced-precision path against fp32.

Usage::

    python benchmarks/gpu_predict.py                          # 64x1024x1024, bf16, cuda
    python benchmarks/gpu_predict.py --compile                # also try torch.compile on a tile
    python benchmarks/gpu_predict.py --device cpu --shape 32x128x128 --tile 32,128,128 --repeat 1

The network is untrained with non-trivial BatchNorm statistics: speed does not depend on weights.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_predict import make_bundle  # noqa: E402

from napari_labelfree.core.config import TilingConfig  # noqa: E402
from napari_labelfree.core.device import compute_dtype, resolve_device  # noqa: E402
from napari_labelfree.core.events import drain  # noqa: E402
from napari_labelfree.core.optimize import optimize_for_inference  # noqa: E402
from napari_labelfree.core.predict.run import iter_predict_volume  # noqa: E402
from napari_labelfree.core.unet import Level, UNet3D  # noqa: E402
from napari_labelfree.core.weights import load_network  # noqa: E402

VOXEL = (0.29, 0.29, 0.29)


def flops_per_voxel(net: UNet3D) -> float:
    """Multiply-adds x 2 per input voxel of the U-Net (convolutions only; BN/ReLU are free-ish)."""

    def level(lv: Level, scale: float) -> float:
        e = lv.encode
        total = (
            scale
            * 2
            * 27
            * (
                e.conv1.in_channels * e.conv1.out_channels
                + e.conv2.in_channels * e.conv2.out_channels
            )
        )
        if lv.depth > 0:
            c = lv.down.in_channels
            total += (scale / 8) * 2 * 8 * c * lv.down.out_channels  # 2x2x2 stride-2 conv
            total += (scale / 8) * 2 * 8 * lv.up.in_channels * lv.up.out_channels  # transposed
            d = lv.decode
            total += (
                scale
                * 2
                * 27
                * (
                    d.conv1.in_channels * d.conv1.out_channels
                    + d.conv2.in_channels * d.conv2.out_channels
                )
            )
            total += level(lv.below, scale / 8)
        return total

    return level(net.body, 1.0) + 2 * 27 * net.head.in_channels * net.head.out_channels


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def matmul_ceiling(dev: torch.device, dtype: torch.dtype, n: int = 8192, reps: int = 20) -> float:
    """Measured dense matmul TFLOP/s in ``dtype`` (the practical ceiling for the convolutions)."""
    if dev.type != "cuda":
        n, reps = 2048, 3
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(dev)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def time_net(net, x: torch.Tensor, dev: torch.device, reps: int) -> float:
    """Median seconds of one forward pass on ``x`` (after two warm-ups for autotuning)."""
    times = []
    with torch.inference_mode():
        for i in range(reps + 2):
            sync(dev)
            t0 = time.perf_counter()
            net(x)
            sync(dev)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="64x1024x1024", help="volume Z x Y x X")
    p.add_argument("--tile", default=None, help="largest tile Z,Y,X [TilingConfig default]")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time torch.compile on one tile")
    args = p.parse_args()

    dev = resolve_device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"# {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, "
              f"cuDNN {torch.backends.cudnn.version()}")  # fmt: skip
    shape = tuple(int(v) for v in args.shape.split("x"))
    tiling = TilingConfig(precision=args.precision)
    if args.tile:
        tiling = TilingConfig(tile_shape=tuple(int(v) for v in args.tile.split(",")),
                              precision=args.precision)  # fmt: skip
    dtype = compute_dtype(dev, args.precision)

    work = Path(tempfile.mkdtemp(prefix="labelfree-gpu-"))
    bundle_dir = make_bundle(work / "paper-dna")
    from napari_labelfree.core.bundle import open_bundle

    bundle = open_bundle(bundle_dir)
    net = load_network(bundle)
    fpv = flops_per_voxel(net)
    ceiling = matmul_ceiling(dev, dtype if dtype != torch.float32 else torch.float32)
    print(f"network: {fpv / 1e3:.0f} kFLOP per voxel; measured {dtype} matmul ceiling "
          f"{ceiling:.3g} TFLOP/s -> at most {ceiling * 1e12 / fpv / 1e6:.3g} Mvox/s")  # fmt: skip

    # the network alone on one tile, fp32 then reduced precision, plain versus optimized
    tile = tuple(min(t, s) for t, s in zip(tiling.tile_shape, shape, strict=True))
    tile = tuple(max(16, t // 16 * 16) for t in tile)
    x = torch.randn(1, 1, *tile, device=dev)
    plain = UNet3D(net.arch).to(dev).eval()
    plain.load_state_dict(net.state_dict())
    twin32 = optimize_for_inference(net, dev)
    twin = optimize_for_inference(net, dev).to(dtype)
    nvox = int(np.prod(tile))
    for name, model, inp in [
        ("plain fp32", plain, x),
        ("optimized fp32", twin32, x),
        (f"optimized {args.precision}", twin, x.to(dtype)),
    ]:
        s = time_net(model, inp, dev, args.repeat)
        tflops = nvox * fpv / s / 1e12
        print(f"tile {'x'.join(map(str, tile))} {name:18s}: {nvox / s / 1e6:8.1f} Mvox/s "
              f"{tflops:6.1f} TFLOP/s ({tflops / ceiling:.0%} of the {dtype} ceiling)")  # fmt: skip
    if args.compile:
        compiled = torch.compile(twin, mode="max-autotune")
        s = time_net(compiled, x.to(dtype), dev, args.repeat)
        print(f"tile torch.compile {args.precision}: {nvox / s / 1e6:8.1f} Mvox/s")
    with torch.inference_mode():
        ref = plain(x).float()
        low = twin(x.to(dtype)).float()
    r = float(torch.corrcoef(torch.stack([ref.flatten(), low.flatten()]))[0, 1])
    err = float((ref - low).abs().max())
    print(
        f"numerics {args.precision} vs fp32 on a tile: Pearson r {r:.6f}, max abs error {err:.3e}"
    )
    del plain, twin32, twin, x, ref, low

    # end to end, as a user predicts (input on the host, result back on the host)
    rng = np.random.default_rng(0)
    volume = rng.normal(size=shape).astype(np.float32)
    times = []
    for i in range(args.repeat + 1):
        sync(dev)
        t0 = time.perf_counter()
        out = drain(iter_predict_volume(volume, [bundle], VOXEL, tiling, dev))
        sync(dev)
        if i >= 1:  # the first run builds the optimized network and autotunes cuDNN
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    nvox = int(np.prod(shape))
    print(f"end to end {args.shape} {args.precision}: {nvox / s / 1e6:.1f} Mvox/s "
          f"({s:.2f} s, runs {', '.join(f'{t:.2f}' for t in times)}); goal >= 300 Mvox/s; "
          f"{nvox * fpv / s / 1e12 / ceiling:.0%} of the measured ceiling")  # fmt: skip
    if dev.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB")
    assert np.isfinite(out["dna"]).all()


if __name__ == "__main__":
    main()
