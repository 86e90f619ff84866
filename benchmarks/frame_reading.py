"""Reading a time-lapse frame by frame: time per frame and peak memory, long file versus short.

Each format is written twice with the same frame size, a short file (``--short`` frames) and a long
one (``--long`` frames); a fresh process per file opens it with
:func:`napari_labelfree.core.io.open_image` and reads every frame, one at a time, as prediction
does. Printed per file: open time, median time per frame, the frame of the long file that was
slowest, and the peak resident memory of the reading process (VmHWM). With one open file
and one frame in memory at a time, the long file's time per frame and peak memory match the short
file's. ``reopen`` is the earlier OME-TIFF reading for comparison: ``tifffile.imread`` of the
frame's pages, which opens and indexes the whole file for every frame.

``--predict`` also runs ``labelfree predict`` (a small untrained model, fp32, CPU) on the short
and the long OME-TIFF, each in a fresh process, and prints its peak memory.

Usage::

    python benchmarks/frame_reading.py                       # 4 vs 40 frames of 32x256x256
    python benchmarks/frame_reading.py --short 40 --long 400 --shape 4,64,64
    python benchmarks/frame_reading.py --formats ome-tiff --predict
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

FORMATS = ("ome-tiff", "reopen", "imagej-tiff", "ome-zarr")


def write(fmt: str, path: Path, n_t: int, zyx: tuple[int, int, int]) -> Path:
    """The test file, written frame by frame (the parent's memory is inherited by the child)."""
    rng = np.random.default_rng(0)

    def frames():
        for _ in range(n_t):
            yield (rng.random((1, *zyx), dtype=np.float32) * 4000).astype(np.uint16)

    if fmt in ("ome-tiff", "reopen"):
        from napari_labelfree.core.io import write_ome_tiff

        return write_ome_tiff(path / f"t{n_t}.ome.tif", frames(), (n_t, 1, *zyx), dtype=np.uint16)
    if fmt == "imagej-tiff":
        out = path / f"t{n_t}.tif"
        with tifffile.TiffWriter(out, imagej=True) as tw:
            tw.write(
                (page for frame in frames() for page in frame[0]),
                shape=(n_t, zyx[0], 1, *zyx[1:]),
                dtype=np.uint16,
                metadata={"axes": "TZCYX"},
            )
        return out
    from napari_labelfree.core.io import open_prediction_output

    out = open_prediction_output(path / f"t{n_t}.ome.zarr", ["c0"], ["gray"], zyx, (1, 1, 1), n_t)
    for t, frame in enumerate(frames()):
        out.write_frame(t, {"c0": frame[0]})
    return out.commit()


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_all(fmt: str, path: str) -> dict:
    """In a fresh process: open, read every frame, report timings and peak RSS."""
    t0 = time.perf_counter()
    if fmt == "reopen":
        with tifffile.TiffFile(path) as tf:
            n_t, n_z = tf.series[0].shape[0], tf.series[0].shape[-3]

        def frame(t: int) -> np.ndarray:
            keys = list(range(t * n_z, (t + 1) * n_z))
            return np.asarray(tifffile.imread(path, series=0, key=keys), np.float32)
    else:
        from napari_labelfree.core.io import open_image

        src = open_image(path)
        n_t = src.n_timepoints

        def frame(t: int) -> np.ndarray:
            return src.frame(t, 0)

    opened = time.perf_counter() - t0
    times = []
    for t in range(n_t):
        t1 = time.perf_counter()
        frame(t)
        times.append(time.perf_counter() - t1)
    return {
        "open_s": opened,
        "median_frame_s": statistics.median(times),
        "max_frame_s": max(times),
        "total_s": time.perf_counter() - t0,
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", type=int, default=4)
    p.add_argument("--long", type=int, default=40)
    p.add_argument("--shape", default="32,256,256", help="Z,Y,X of a frame")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--predict", action="store_true", help="also time `labelfree predict`")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--predict-child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(read_all(*args.child)))
        return
    if args.predict_child:
        from napari_labelfree.cli import main as cli

        model, path, out = args.predict_child
        t0 = time.perf_counter()
        cli(["predict", path, "-m", model, "-o", out, "--precision", "fp32", "--device", "cpu"])
        print(json.dumps({"total_s": time.perf_counter() - t0, "peak_rss_mib": peak_rss_mib()}))
        return
    zyx = tuple(int(v) for v in args.shape.split(","))
    mib = np.prod(zyx) * 4 / 2**20
    print(f"frames of {zyx} ({mib:.0f} MiB as float32), {args.short} vs {args.long} frames")
    print(
        f"{'format':12} {'frames':>6} {'open s':>7} {'ms/frame':>9} {'max ms':>7} {'peak MiB':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            for n_t in (args.short, args.long):
                folder = Path(tmp) / f"{fmt}-{n_t}"
                folder.mkdir()
                path = write(fmt, folder, n_t, zyx)
                run = subprocess.run(
                    [sys.executable, __file__, "--child", fmt, str(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(run.stdout.strip().splitlines()[-1])
                print(
                    f"{fmt:12} {n_t:6d} {r['open_s']:7.2f} {1e3 * r['median_frame_s']:9.1f} "
                    f"{1e3 * r['max_frame_s']:7.1f} {r['peak_rss_mib']:9.0f}"
                )
                if args.predict and fmt == "ome-tiff":
                    predict(folder, path)


def predict(folder: Path, path: Path) -> None:
    """`labelfree predict` of the file in a fresh process: total time and peak memory."""
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec

    spec = ModelSpec(
        structure="dna", voxel_size_um=(1, 1, 1), architecture=Architecture(depth=2, width=8)
    )
    model = init_bundle(folder / "model", spec)
    out = folder / "pred.ome.tif"
    cmd = [sys.executable, __file__, "--predict-child", str(model.path), str(path), str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    r = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{'  predict':12} {'':6} {r['total_s']:7.1f} s in all {'':9} {r['peak_rss_mib']:9.0f}")


if __name__ == "__main__":
    main()
