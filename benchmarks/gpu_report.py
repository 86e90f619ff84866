"""Every GPU figure of issue 23 in one process, in one table, within one 10-minute device call.

Installs nothing, downloads nothing; builds a paper-size network (depth 4, width 32, untrained
with non-trivial BatchNorm statistics) and measures, on the same card in the same run, printing
each row as soon as it is measured (a time-out keeps what was printed):

1. one 64x272x272 tile through the inference twin in bf16: eager, and replayed as a CUDA graph
   (Mvox/s, the fraction of the measured bf16 matmul ceiling, r graph vs eager);
2. ``iter_predict_volume`` end to end on 64x1024x1024 in bf16 (host array in and out, median of
   ``--repeat`` after a warm-up), its Pearson r against fp32, and pytorch_fnet's piecewise fp32
   path (the reference of ``cpu_predict.py``) on the same volume;
3. the same end to end with each opt-in acceleration of
   :class:`~napari_labelfree.core.predict.compile_cache.Acceleration`: CUDA graphs, cuDNN
   autotuning off; torch.compile in a fresh process twice with one new cache folder (the first
   process compiles, the second should load the per-machine cache: "only the first run pays");
4. the warm first overlay: with the model used once, a new 64x1024x1024 frame through the same
   calls as the Predict widget's job (plan, first FrameDone), without Qt;
5. the whole ``labelfree predict`` process on that volume as a float32 OME-TIFF (twice, then
   with cuDNN autotuning off), with its ``--timings`` phases, and the floor every process pays
   (a fresh Python importing torch and creating the CUDA context);
6. training at the paper's settings (batch 24 of 32x64x64, Adam): the plain reference loop,
   ``iter_train`` as it runs by default, and ``iter_train`` compiled (``LABELFREE_TRAIN_COMPILE``,
   in a fresh process).

Usage::

    python benchmarks/gpu_report.py --json $OUT/report.json      # ~6-8 minutes on an H100
    python benchmarks/gpu_report.py --small                      # tiny sizes, any device: a check

Steps run most important first under one deadline (``--budget`` seconds, 540 by default): a step
that would start after it is skipped and says so. Without a CUDA GPU (and without ``--small``) it
says so in one line and exits with status 2. ``--small`` figures are never GPU figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

VOXEL = (0.29, 0.29, 0.29)
ROOT = Path(__file__).resolve().parent.parent
ENV_KEYS = ("LABELFREE_COMPILE", "LABELFREE_CUDA_GRAPHS", "LABELFREE_CUDNN_BENCHMARK",
            "LABELFREE_TRAIN_COMPILE", "LABELFREE_COMPILE_CACHE", "LABELFREE_GPU_PIPELINE")  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    shape: tuple[int, int, int]  # the test volume (Z, Y, X)
    tile: tuple[int, int, int]  # the one-tile figure
    depth: int  # network, prediction and training
    width: int
    batch: int  # training
    patch: tuple[int, int, int]
    train_shape: tuple[int, int, int]  # each of the 3 training images
    train_iterations: int
    train_warmup: int


FULL = Sizes((64, 1024, 1024), (64, 272, 272), 4, 32, 24, (32, 64, 64), (64, 256, 256), 80, 10)
SMALL = Sizes((16, 96, 64), (16, 64, 64), 2, 8, 2, (8, 16, 16), (16, 48, 48), 6, 2)


class Report:
    """Rows, printed as they come, and the deadline every step checks before it starts."""

    def __init__(self, budget_s: float, json_path: str | None) -> None:
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.rows: list[dict] = []
        self.json_path = json_path

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def row(self, what: str, value: str, reference: str = "", goal: str = "", **numbers) -> None:
        self.rows.append({"what": what, "measured": value, "reference": reference, "goal": goal,
                          **numbers})  # fmt: skip
        print(f"  {what}: {value}" + (f"  [reference: {reference}]" if reference else ""),
              flush=True)  # fmt: skip
        if self.json_path:  # rewritten after every row: a time-out keeps what was measured
            Path(self.json_path).write_text(json.dumps(self.rows, indent=1))

    def step(self, name: str, needs_s: float) -> bool:
        """Whether a step expected to take ``needs_s`` seconds still fits the budget."""
        if self.left() >= needs_s:
            print(f"# {name} ({self.left():.0f} s of the budget left)", flush=True)
            return True
        self.row(name, f"skipped: {self.left():.0f} s of the budget left, it needs ~{needs_s:.0f}")
        return False


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1]
    )


def set_env(**values: str | None) -> None:
    """Set (or with None remove) LABELFREE_* settings for what follows in this process."""
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def make_volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1000 + 200 * rng.normal(size=shape)).astype(np.float32)


def time_predict(volume, bundle, dev, precision: str, runs: int) -> tuple[list[float], np.ndarray]:
    """Seconds of ``runs`` end-to-end predictions after one warm-up, and the last output."""
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.predict.run import iter_predict_volume

    tiling = TilingConfig(precision=precision)
    times = []
    for i in range(runs + 1):
        sync(dev)
        t0 = time.perf_counter()
        out = drain(iter_predict_volume(volume, [bundle], VOXEL, tiling, dev))["dna"]
        sync(dev)
        if i:  # the first run builds the twin, autotunes, compiles or captures
            times.append(time.perf_counter() - t0)
    return times, out


# --------------------------------------------------------------------------------------------
# 0. the device path against the CPU's (catches a GPU-only mistake before any figure)
# --------------------------------------------------------------------------------------------
def correctness(rep: Report, bundle, dev, sz: Sizes) -> None:
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.predict.run import iter_predict_volume

    shape = (min(32, sz.shape[0]), min(256, sz.shape[1]), min(256, sz.shape[2]))
    volume = make_volume(shape, seed=3).astype(np.uint16)  # uint16: converted slab by slab
    tiling = TilingConfig(tile_shape=(shape[0], 128, 128), precision="fp32")
    b = drain(iter_predict_volume(volume, [bundle], VOXEL, tiling, torch.device("cpu")))["dna"]
    # the opt-in GPU pipeline (slab transfers, double-buffered tiles) is checked here first
    for label, pipe in (("", "0"), (", LABELFREE_GPU_PIPELINE=1", "1")):
        set_env(LABELFREE_GPU_PIPELINE=pipe)
        a = drain(iter_predict_volume(volume, [bundle], VOXEL, tiling, dev))["dna"]
        err = float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))
        rep.row(f"device path vs CPU path{label}, {'x'.join(map(str, shape))} uint16, fp32, "
                "several tiles", f"r {pearson(a, b):.7f}, max abs error {err:.1e} of the "
                "output's range", "", "r > 0.99999", r=pearson(a, b))  # fmt: skip
    set_env(LABELFREE_GPU_PIPELINE=None)


# --------------------------------------------------------------------------------------------
# 1. one tile
# --------------------------------------------------------------------------------------------
def tile_figures(rep: Report, bundle, dev: torch.device, sz: Sizes, repeat: int) -> None:
    from gpu_predict import flops_per_voxel, matmul_ceiling, time_net

    from napari_labelfree.core.predict.compile_cache import Acceleration
    from napari_labelfree.core.predict.fast_tiles import FixedShapeRunner
    from napari_labelfree.core.weights import inference_network, load_network

    fpv = flops_per_voxel(load_network(bundle))
    low = torch.bfloat16 if dev.type == "cuda" else torch.float32
    ceiling = matmul_ceiling(dev, low)
    twin = inference_network(bundle, dev, low)
    x = torch.randn(1, 1, *sz.tile, device=dev, dtype=low)
    nvox = int(np.prod(sz.tile))
    s = time_net(twin, x, dev, max(3, repeat))
    tag = "x".join(map(str, sz.tile))
    rep.row(f"one {tag} tile, inference twin, {str(low)[6:]}",
            f"{nvox / s / 1e6:.3g} Mvox/s ({nvox * fpv / s / 1e12 / ceiling:.0%} of the measured "
            f"{ceiling:.3g} TFLOP/s matmul ceiling)", mvox_s=nvox / s / 1e6)  # fmt: skip
    if dev.type == "cuda":
        runner = FixedShapeRunner(twin, dev, low, Acceleration(cuda_graphs=True))
        with torch.inference_mode():
            eager = twin(x).float()
            graphed = runner(x).float()
        notes = runner.take_notices()
        if notes:
            rep.row(f"one {tag} tile, CUDA graph", f"not captured: {notes[0]}")
        else:
            r = float(torch.corrcoef(torch.stack([eager.flatten(), graphed.flatten()]))[0, 1])
            s_g = time_net(runner, x, dev, max(3, repeat))
            rep.row(f"one {tag} tile, CUDA graph",
                    f"{nvox / s_g / 1e6:.3g} Mvox/s ({s / s_g:.2f}x eager); r vs eager {r:.6f}",
                    mvox_s=nvox / s_g / 1e6)  # fmt: skip


# --------------------------------------------------------------------------------------------
# 2-3. end to end, the reference, the accelerations
# --------------------------------------------------------------------------------------------
def end_to_end(rep: Report, bundle, dev, volume: np.ndarray, repeat: int) -> np.ndarray:
    from cpu_predict import reference_predict

    from napari_labelfree.core.weights import load_network

    nvox = volume.size
    tag = "x".join(map(str, volume.shape))
    low = "bf16" if dev.type == "cuda" else "fp32"
    set_env(**dict.fromkeys(ENV_KEYS))
    times, out_low = time_predict(volume, bundle, dev, low, repeat)
    e2e = statistics.median(times)
    _, out32 = time_predict(volume, bundle, dev, "fp32", 1)
    r = pearson(out_low, out32)
    net = load_network(bundle)
    plain = type(net)(net.arch).to(dev).eval()
    plain.load_state_dict(net.state_dict())
    reference_predict(plain, volume[:16, :64, :64], str(dev))  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    ref = reference_predict(plain, volume, str(dev))
    sync(dev)
    ref_s = time.perf_counter() - t0
    rep.row(f"iter_predict_volume end to end, {tag}, {low}",
            f"{nvox / e2e / 1e6:.3g} Mvox/s ({e2e:.2f} s; runs "
            f"{', '.join(f'{t:.2f}' for t in times)}); r vs fp32 {r:.6f}",
            f"{nvox / ref_s / 1e6:.3g} Mvox/s ({ref_s:.2f} s, pytorch_fnet's piecewise fp32; "
            f"{ref_s / e2e:.1f}x slower; r vs ours fp32 {pearson(out32, ref):.5f})",
            ">= 500 Mvox/s, r >= 0.999", mvox_s=nvox / e2e / 1e6, r_vs_fp32=r,
            reference_mvox_s=nvox / ref_s / 1e6)  # fmt: skip
    if dev.type == "cuda":
        rep.row("peak GPU memory (prediction)",
                f"{torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB")  # fmt: skip
    del plain, ref, out32
    return out_low


def accelerations(rep: Report, bundle, dev, volume, base: np.ndarray, repeat: int) -> None:
    """End to end with one opt-in setting at a time (in this process), against the default."""
    low = "bf16" if dev.type == "cuda" else "fp32"
    base_s = None
    variants = [("default settings (again, same process)", {})]
    if dev.type == "cuda":
        variants += [("CUDA graphs", {"LABELFREE_CUDA_GRAPHS": "1"}),
                     ("GPU pipeline (slab transfers, double-buffered tiles)",
                      {"LABELFREE_GPU_PIPELINE": "1"}),
                     ("cuDNN autotuning off", {"LABELFREE_CUDNN_BENCHMARK": "0"})]  # fmt: skip
    for label, env in variants:
        if not rep.step(f"end to end, {label}", 20):
            return
        set_env(**dict.fromkeys(ENV_KEYS), **env)
        times, out = time_predict(volume, bundle, dev, low, repeat)
        s = statistics.median(times)
        base_s = base_s or s
        rep.row(f"end to end, {label}",
                f"{volume.size / s / 1e6:.3g} Mvox/s ({base_s / s:.2f}x default); first run "
                f"excluded; r vs default {pearson(out, base):.6f}", mvox_s=volume.size / s / 1e6)  # fmt: skip
    set_env(**dict.fromkeys(ENV_KEYS))


def compile_figures(rep: Report, args, work: Path, dev, small: bool) -> None:
    """torch.compile end to end in two fresh processes sharing one new cache folder."""
    cache = work / "compile-cache"
    env = {**os.environ, "LABELFREE_CACHE_DIR": str(cache), "LABELFREE_COMPILE": "1",
           "PYTHONPATH": _pythonpath()}  # fmt: skip
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    if small and dev.type != "cuda":
        env["LABELFREE_COMPILE_BACKEND"] = "eager"  # a check of the path, not a compile
    for run, label in ((1, "first process (compiles, fills the cache)"),
                       (2, "second process (loads the cache)")):  # fmt: skip
        need = 60 if small else (240 if run == 1 else 120)
        if not rep.step(f"torch.compile end to end, {label}", min(need, 60)):
            return
        cmd = [sys.executable, __file__, "--child-compile", str(work / "volume.npy"),
               "--bundle", str(work / "model"), "--device", str(dev)]  # fmt: skip
        t0 = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                  timeout=max(10.0, min(need, rep.left() - 5)))  # fmt: skip
        except subprocess.TimeoutExpired:
            rep.row(f"torch.compile end to end, {label}",
                    f"did not finish in {time.perf_counter() - t0:.0f} s")  # fmt: skip
            return
        if done.returncode:
            rep.row(f"torch.compile end to end, {label}", f"failed: {done.stderr.strip()[-300:]}")
            return
        got = json.loads(done.stdout.strip().splitlines()[-1])
        files = len(list((cache / "compile").glob("*.bin")))
        rep.row(f"torch.compile end to end, {label}",
                f"first prediction {got['first_s']:.1f} s, then {got['mvox_s']:.3g} Mvox/s; "
                f"r vs eager {got['r_vs_eager']:.6f}; {files} cache file(s); "
                f"notices: {got['notices'] or 'none'}", **got)  # fmt: skip


def child_compile(args) -> None:
    """In a fresh process: eager once, then compiled (first run timed apart); one JSON line."""
    from napari_labelfree.core.bundle import open_bundle
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import Notice
    from napari_labelfree.core.predict.run import iter_predict_volume

    dev = torch.device(args.device)
    volume = np.load(args.child_compile)
    bundle = open_bundle(args.bundle)
    low = "bf16" if dev.type == "cuda" else "fp32"
    os.environ["LABELFREE_COMPILE"] = "0"
    _, eager = time_predict(volume, bundle, dev, low, 1)
    os.environ["LABELFREE_COMPILE"] = "1"
    tiling = TilingConfig(precision=low)
    notices: list[str] = []
    sync(dev)
    t0 = time.perf_counter()
    gen = iter_predict_volume(volume, [bundle], VOXEL, tiling, dev)
    try:
        while True:
            ev = next(gen)
            if isinstance(ev, Notice):
                notices.append(ev.text)
    except StopIteration as stop:
        out = stop.value["dna"]
    sync(dev)
    first = time.perf_counter() - t0
    times, out = time_predict(volume, bundle, dev, low, 2)
    s = statistics.median(times)
    print(json.dumps({"first_s": first, "mvox_s": volume.size / s / 1e6,
                      "r_vs_eager": pearson(out, eager), "notices": "; ".join(notices)}))  # fmt: skip


# --------------------------------------------------------------------------------------------
# 4. warm first overlay
# --------------------------------------------------------------------------------------------
def first_overlay(rep: Report, bundle, dev, shape) -> None:
    """As the Predict widget's job runs it (plan, frames, first FrameDone), the model used once."""
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import FrameDone
    from napari_labelfree.core.io import from_array
    from napari_labelfree.core.predict.plan import plan_prediction
    from napari_labelfree.core.predict.schedule import FrameScheduler

    set_env(**dict.fromkeys(ENV_KEYS))
    frame = make_volume(shape, seed=7)  # a frame this process has not seen
    source = from_array(frame, "ZYX", physical_sizes=VOXEL)
    sync(dev)
    t0 = time.perf_counter()
    plan = plan_prediction(source, [bundle], None, None, TilingConfig(), dev)
    for event in plan.iter_frames(FrameScheduler(plan.n_frames, 0)):
        if isinstance(event, FrameDone):
            break
    sync(dev)
    s = time.perf_counter() - t0
    rep.row(f"warm first overlay, {'x'.join(map(str, shape))} frame (widget's job without Qt)",
            f"{s:.2f} s from a new frame to its prediction on the host", "", "< 1 s",
            seconds=s)  # fmt: skip


# --------------------------------------------------------------------------------------------
# 5. the whole command
# --------------------------------------------------------------------------------------------
def _pythonpath() -> str:
    return os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])


def process_figures(rep: Report, work: Path, volume: np.ndarray, dev, small: bool) -> None:
    from napari_labelfree.core.io import write_ome_tiff

    image = write_ome_tiff(work / "in.ome.tif", volume[None, None], physical_sizes=VOXEL)
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    for k in ENV_KEYS:
        env.pop(k, None)
    floor = [sys.executable, "-c", "import torch, time; t = torch.zeros(1, device="
             f"{str(dev)!r}); {'torch.cuda.synchronize()' if dev.type == 'cuda' else 'pass'}"]  # fmt: skip
    runs = [("floor: a fresh python importing torch and creating the device context", floor, {})]
    cmd = [sys.executable, "-m", "napari_labelfree", "predict", str(image), "-m", str(work / "model"),
           "-o", str(work / "out.ome.tif"), "--device", str(dev), "--overwrite", "--timings"]  # fmt: skip
    for i in (1, 2):
        runs.append((f"whole `labelfree predict` process, run {i}", cmd, {}))
    if dev.type == "cuda":
        runs.append(("whole `labelfree predict`, cuDNN autotuning off", cmd,
                     {"LABELFREE_CUDNN_BENCHMARK": "0"}))  # fmt: skip
    for label, c, extra in runs:
        if not rep.step(label, 15 if small else 20):
            return
        t0 = time.perf_counter()
        done = subprocess.run(c, capture_output=True, text=True, env={**env, **extra}, timeout=max(10.0, rep.left()))  # fmt: skip
        wall = time.perf_counter() - t0
        if done.returncode:
            rep.row(label, f"failed: {done.stderr.strip()[-300:]}")
            return
        phases = re.search(r"timings: (.*)", done.stderr)
        rep.row(label, f"{wall:.2f} s" + (f" ({phases.group(1)})" if phases else ""), "",
                "" if "floor" in label else "<= 2.5 s", seconds=wall)  # fmt: skip


# --------------------------------------------------------------------------------------------
# 6. training
# --------------------------------------------------------------------------------------------
def _train_setup(sz: Sizes) -> None:
    import train_speed

    from napari_labelfree.core.config import Architecture

    train_speed.BATCH, train_speed.PATCH = sz.batch, sz.patch
    train_speed.ARCH = Architecture(depth=sz.depth, width=sz.width)


def train_figures(rep: Report, dev, work: Path, sz: Sizes, small: bool) -> None:
    from train_speed import make_pairs, ours_its, reference_its

    _train_setup(sz)
    pairs = make_pairs(shape=sz.train_shape)
    n, warm = sz.train_iterations, sz.train_warmup
    settings = f"batch {sz.batch} of {'x'.join(map(str, sz.patch))}, Adam"
    if not rep.step("training", 30 if not small else 10):
        return
    set_env(**dict.fromkeys(ENV_KEYS))
    ref = reference_its(pairs, dev, max(warm + 2, n // 2), warm)
    ours = ours_its(pairs, dev, n, warm, work / "train-default")
    rep.row(f"training, {settings} (paper settings), iter_train default",
            f"{ours:.1f} it/s ({ours / ref:.2f}x the reference; 50k iterations in "
            f"{50_000 / ours / 60:.0f} min)", f"{ref:.1f} it/s (plain fp32 loop, host patches)",
            ">= 40 it/s", its=ours, reference_its=ref)  # fmt: skip
    label = "training, iter_train compiled (LABELFREE_TRAIN_COMPILE=1, fresh process)"
    need = 60 if small else 150
    if not rep.step(label, min(need, 60)):
        return
    env = {**os.environ, "LABELFREE_TRAIN_COMPILE": "1", "PYTHONPATH": _pythonpath()}
    if small and dev.type != "cuda":
        env["LABELFREE_COMPILE_BACKEND"] = "eager"
    cmd = [sys.executable, __file__, "--child-train", str(work / "train-compiled"), "--device",
           str(dev)] + (["--small"] if small else [])  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=max(10.0, min(need, rep.left() - 5)))  # fmt: skip
    except subprocess.TimeoutExpired:
        rep.row(label, f"did not finish in {need} s")
        return
    if done.returncode:
        rep.row(label, f"failed: {done.stderr.strip()[-300:]}")
        return
    its = json.loads(done.stdout.strip().splitlines()[-1])["its"]
    rep.row(label, f"{its:.1f} it/s ({its / ours:.2f}x default; compile time excluded by the "
            f"{warm}-step warm-up)", "", ">= 40 it/s", its=its)  # fmt: skip


def child_train(args) -> None:
    from train_speed import make_pairs, ours_its

    sz = SMALL if args.small else FULL
    _train_setup(sz)
    its = ours_its(make_pairs(shape=sz.train_shape), torch.device(args.device),
                   sz.train_iterations, sz.train_warmup, Path(args.child_train))  # fmt: skip
    print(json.dumps({"its": its}))


# --------------------------------------------------------------------------------------------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--budget", type=float, default=540.0, help="seconds for all steps")
    p.add_argument("--json", default=None, help="also write every row to this JSON file")
    p.add_argument("--small", action="store_true", help="tiny sizes on any device: a check")
    p.add_argument("--smoke-cpu", action="store_true", help=argparse.SUPPRESS)  # old name
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-process", action="store_true")
    p.add_argument("--skip-compile", action="store_true")
    p.add_argument("--child-compile", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-train", default=None, help=argparse.SUPPRESS)
    p.add_argument("--bundle", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_compile:
        child_compile(args)
        return 0
    if args.child_train:
        child_train(args)
        return 0
    small = args.small or args.smoke_cpu
    if small:
        dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    elif not torch.cuda.is_available():
        print("gpu_report.py: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
              "run it where an NVIDIA GPU is, or with --small for a check on tiny sizes")  # fmt: skip
        return 2
    else:
        dev = torch.device(args.device or "cuda")
    sz = SMALL if small else FULL
    repeat = 1 if small else args.repeat
    if dev.type == "cuda":
        name = f"{torch.cuda.get_device_name(dev)}, CUDA {torch.version.cuda}, cuDNN " \
               f"{torch.backends.cudnn.version()}"  # fmt: skip
    else:
        name = f"CPU, {torch.get_num_threads()} threads (a check of the script: no GPU figure)"
    print(f"# {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{'small sizes' if small else 'full sizes'}", flush=True)  # fmt: skip
    rep = Report(args.budget, args.json)
    from cpu_predict import make_bundle

    from napari_labelfree.core.bundle import open_bundle

    with tempfile.TemporaryDirectory(prefix="labelfree-gpu-report-") as tmp:
        work = Path(tmp)
        bundle = open_bundle(make_bundle(work / "model", depth=sz.depth, width=sz.width))
        volume = make_volume(sz.shape)
        np.save(work / "volume.npy", volume)
        if rep.step("device path vs CPU path", 20):
            correctness(rep, bundle, dev, sz)
        if rep.step("one tile", 20):
            tile_figures(rep, bundle, dev, sz, repeat)
        if rep.step("end to end", 60):
            base = end_to_end(rep, bundle, dev, volume, repeat)
            first_overlay(rep, bundle, dev, sz.shape)
            accelerations(rep, bundle, dev, volume, base, repeat)
            del base
        if not args.skip_process:
            if dev.type == "cuda":
                torch.cuda.empty_cache()  # the command's own process needs the GPU memory
            process_figures(rep, work, volume, dev, small)
        if not args.skip_train:
            train_figures(rep, dev, work, sz, small)
        if not args.skip_compile:
            compile_figures(rep, args, work, dev, small)
    print("\n| what | measured | reference (same card, same run) | goal |\n|---|---|---|---|")
    for r in rep.rows:
        print(f"| {r['what']} | {r['measured']} | {r['reference']} | {r['goal']} |")
    print(f"\n({time.perf_counter() - rep.t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
