"""Seconds per training iteration: the Train widget versus ``labelfree train``, same settings, one run.

Both train the same pair (a smooth random z-stack and a shifted, blurred copy as its target, at
0.29 um voxels so nothing is resampled) with the same network, batch, patch and iterations on the
CPU; each writes a model whose ``config.json`` records ``train_time_s`` (measured by the training
loop itself, after data preparation), so both sides are timed by the same clock. The widget runs
in a real napari window (live loss plot, progress bar, status line), as a user sees it, and its
estimate shown before training is compared with what it then took.

The load on a shared machine moves seconds per iteration a lot; CPU time does not: the CPU the GUI
side spends per training iteration (the GUI thread, Mesa's software-OpenGL threads compositing the
window, the X server) is counted too, and what napari's own progress bar costs, for comparison
(its animated status-bar GIF composites the whole window at every frame). Run under an X server
(Xvfb):

    python benchmarks/train_widget_speed.py                       # the widget's CPU defaults
    python benchmarks/train_widget_speed.py --iterations 40 --order widget-first

The machine is shared: the load average is printed next to the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VOXEL = (0.29, 0.29, 0.29)


def make_pair(folder: Path, shape=(32, 256, 256)) -> Path:
    """Signal and target TIFFs and the CSV table ``labelfree train`` reads."""
    import tifffile
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    signal = gaussian_filter(rng.normal(size=shape).astype(np.float32), 1.5) * 100 + 1000
    target = np.roll(gaussian_filter(signal, 2.0), 2, axis=2) + rng.normal(0, 1, size=shape)
    for name, arr in (("signal", signal), ("target", target.astype(np.float32))):
        tifffile.imwrite(
            folder / f"{name}.tif",
            arr,
            imagej=True,
            resolution=(1 / VOXEL[2], 1 / VOXEL[1]),
            metadata={"spacing": VOXEL[0], "unit": "um", "axes": "ZYX"},
        )
    table = folder / "pairs.csv"
    table.write_text(f"signal,target\n{folder / 'signal.tif'},{folder / 'target.tif'}\n")
    return table


def seconds_per_iteration(model: Path) -> float:
    """train_time_s / iterations from a model's config.json (written by the training loop)."""
    found: dict[str, float] = {}

    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("train_time_s", "iterations") and isinstance(v, int | float):
                    found.setdefault(k, float(v))
                walk(v)

    walk(json.loads((model / "config.json").read_text()))
    return found["train_time_s"] / found["iterations"]


def run_cli(table: Path, out: Path, s: dict) -> float:
    cmd = [
        sys.executable,
        "-m",
        "napari_labelfree",
        "train",
        str(table),
        "-o",
        str(out),
        "--structure",
        "bench",
        "--init",
        "none",
        "--iterations",
        str(s["iterations"]),
        "--batch-size",
        str(s["batch"]),
        "--patch-shape",
        ",".join(map(str, s["patch"])),
        "--depth",
        str(s["depth"]),
        "--width",
        str(s["width"]),
        "--voxel-size",
        ",".join(map(str, VOXEL)),
        "--device",
        "cpu",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return seconds_per_iteration(out)


def gui_cpu_seconds() -> float:
    """CPU seconds so far of the GUI side: this process' main and llvmpipe threads, and Xvfb."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for t in me.threads():
        try:
            name = Path(f"/proc/self/task/{t.id}/comm").read_text().strip()
        except OSError:
            continue
        if t.id == me.pid or name.startswith("llvmpipe"):
            total += t.user_time + t.system_time
    parent = me.parent()
    siblings = parent.children() if parent is not None else []
    for p in siblings:
        try:
            if p.name() == "Xvfb":
                cpu = p.cpu_times()
                total += cpu.user + cpu.system
        except psutil.Error:
            continue
    return total


def napari_progress_cost(seconds: float = 6.0) -> tuple[float, float]:
    """GUI-side CPU (share of one core) with napari's progress bar open, and with none."""
    import napari
    from napari.utils import progress
    from qtpy.QtCore import QCoreApplication

    viewer = napari.Viewer(show=True)
    app = QCoreApplication.instance()

    def rate() -> float:
        start_cpu, start = gui_cpu_seconds(), time.monotonic()
        while time.monotonic() - start < seconds:
            app.processEvents()
            time.sleep(0.005)
        return (gui_cpu_seconds() - start_cpu) / (time.monotonic() - start)

    idle = rate()
    bar = progress(total=10, desc="napari's bar")
    with_bar = rate()
    bar.close()
    viewer.close()
    return with_bar, idle


def run_widget(folder: Path, s: dict) -> tuple[float, float | None, dict]:
    """(s/it, the widget's estimate in s/it, GUI counters) training in a real napari window."""
    import napari
    import tifffile
    from qtpy.QtCore import QCoreApplication, QTimer

    viewer = napari.Viewer(show=True)
    viewer.add_image(tifffile.imread(folder / "target.tif"), name="target", scale=VOXEL)
    viewer.add_image(tifffile.imread(folder / "signal.tif"), name="bright-field", scale=VOXEL)
    _, train = viewer.window.add_plugin_dock_widget("napari-labelfree", "Train a label-free model")
    app = QCoreApplication.instance()

    def pump(until, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not until():
            app.processEvents()
            time.sleep(0.005)

    pump(lambda: "cpu" in train.device.choices and len(train.device.choices) > 1, 60)
    train.signal.value, train.target.value = "bright-field", "target"
    train.structure.value = "bench"
    train.start_from.value = None  # a new network, as --init none
    train.device.value = "cpu"
    train.depth.value, train.width.value, train.batch.value = s["depth"], s["width"], s["batch"]
    train.patch.value = ", ".join(map(str, s["patch"]))
    train.iterations.value = s["iterations"]
    train.estimate()  # as the widget does once the settings stop changing
    pump(lambda: not train.estimator.running, 300)
    text = train.estimate_label.value
    estimate = float(text.split()[1]) if text.startswith("about") else None
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    cpu_before = gui_cpu_seconds()
    train.train_btn.native.click()
    pump(lambda: not train.is_running, 3600)
    timer.stop()
    gaps = np.diff(ticks) * 1000 if len(ticks) > 1 else np.zeros(1)
    gui = {
        "longest_gap_ms": float(gaps.max()),
        "p99_gap_ms": float(np.percentile(gaps, 99)),
        "cpu_per_it": (gui_cpu_seconds() - cpu_before) / s["iterations"],
    }
    model = train.last_model
    viewer.close()
    return seconds_per_iteration(model), estimate, gui


def plot_cost(points: int = 500, repeats: int = 10) -> tuple[float, float]:
    """GUI-thread ms per live-plot redraw: as before (tight layout, scale reset, each 0.5 s) and now.

    A redraw holds the GIL the training thread needs between torch calls (and a CPU core).
    """
    from napari_labelfree._widgets._loss_plot import LossPlot
    from napari_labelfree.core.train.log import log_scale_plain

    its = list(range(1, points + 1))
    history = {"it": its, "loss": [1.0 / i**0.3 for i in its], "val_it": [], "val": []}
    now = LossPlot()
    old = LossPlot()
    old.figure.set_layout_engine("tight")  # the plot before: a layout pass per draw

    def old_update() -> None:  # ... and the log scale set again at every redraw
        old.train_line.set_data(history["it"], history["loss"])
        log_scale_plain(old.ax)
        old.ax.relim()
        old.ax.autoscale_view()
        old.canvas.draw()

    costs = []
    for update in (old_update, lambda: now.update_lines(history)):
        update()  # the first draw builds caches
        start = time.perf_counter()
        for _ in range(repeats):
            update()
        costs.append((time.perf_counter() - start) / repeats * 1000)
    return costs[0], costs[1]


def main() -> None:
    from napari_labelfree.core.train_estimate import CPU_DEFAULTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--depth", type=int, default=CPU_DEFAULTS.depth)
    parser.add_argument("--width", type=int, default=CPU_DEFAULTS.width)
    parser.add_argument("--batch", type=int, default=CPU_DEFAULTS.batch_size)
    parser.add_argument("--patch", type=int, nargs=3, default=list(CPU_DEFAULTS.patch_shape))
    parser.add_argument("--order", choices=["cli-first", "widget-first"], default="cli-first")
    args = parser.parse_args()
    s = vars(args)
    with tempfile.TemporaryDirectory(prefix="labelfree-train-speed-") as tmp:
        folder = Path(tmp)
        os.environ["XDG_DATA_HOME"] = str(folder / "data")  # the widget's models go here
        table = make_pair(folder)
        print(
            f"settings: depth {args.depth}, width {args.width}, batch {args.batch}, "
            f"patch {tuple(args.patch)}, {args.iterations} iterations, cpu, "
            f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}"
        )
        results = {}
        for side in ("cli", "widget") if args.order == "cli-first" else ("widget", "cli"):
            load = os.getloadavg()[0]
            if side == "cli":
                results["cli"] = run_cli(table, folder / "cli-model", s)
                print(f"labelfree train: {results['cli']:.3f} s/it (load {load:.2f})", flush=True)
            else:
                results["widget"], estimate, gui = run_widget(folder, s)
                print(
                    f"Train widget:    {results['widget']:.3f} s/it (load {load:.2f}); its "
                    f"estimate {estimate} s/it; GUI thread during training: longest gap "
                    f"{gui['longest_gap_ms']:.0f} ms, p99 {gui['p99_gap_ms']:.0f} ms; GUI-side "
                    f"CPU {gui['cpu_per_it']:.3f} s per iteration",
                    flush=True,
                )
                results["estimate"] = estimate
        with_bar, idle = napari_progress_cost()
        print(
            f"GUI-side CPU with napari's progress bar open: {with_bar:.0%} of a core "
            f"(none open: {idle:.0%}); the widgets show progress in their own dock instead"
        )
        before, after = plot_cost()
        print(
            f"live plot redraw on the GUI thread: {before:.0f} ms as before, every 0.5 s "
            f"({before / 5:.0f} % of the time); {after:.0f} ms now, every 2 s ({after / 20:.1f} %)"
        )
        ratio = results["widget"] / results["cli"]
        print(f"widget / CLI: {ratio:.2f} (goal <= 1.10)", end="")
        if results.get("estimate"):
            print(
                f"; estimate / widget: {results['estimate'] / results['widget']:.2f} (goal 0.8-1.2)"
            )
        else:
            print()
        print(f"load at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
