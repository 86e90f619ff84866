"""How long the napari GUI thread stalls during a time-lapse prediction in the Predict widget.

A 20 ms QTimer on the GUI thread records the gaps between its ticks through a whole run as a user
makes it: click Predict on the simulated time-lapse sample with three built-in models, let frames
finish, click Cancel, wait for the widget to settle. A gap much longer than 20 ms is a frozen
viewer. Prints the longest gap, the 99th percentile and the median.

Goal (issue 11): longest <= 250 ms, p99 <= 60 ms on a 2-core machine.

Usage (an X display is needed; never QT_QPA_PLATFORM=offscreen)::

    xvfb-run -a python benchmarks/gui_latency.py [--frames-before-cancel 4] [--models dna,lamin-b1,cellmask]

To measure another version of the widget, put its ``src`` first on PYTHONPATH. The script drives
both the old Qt-only widget and the magicgui one (it looks for either's controls).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _click(button) -> None:
    getattr(button, "native", button).click()


def _set_cpu(widget) -> None:
    if hasattr(widget, "device_combo"):
        widget.device_combo.setCurrentText("cpu")
    else:
        widget.device.value = "cpu"


def _tick_models(widget, names: list[str]) -> None:
    from napari_labelfree.core.bundle import discover_models

    paths = [str(b.path) for b in discover_models() if b.name in names]
    if hasattr(widget, "set_checked_models"):
        widget.set_checked_models(paths)
    else:
        widget.models.set_checked(paths)
    if len(paths) != len(names):
        raise SystemExit(f"built-in models {names} not all found: {paths}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="dna,lamin-b1,cellmask")
    p.add_argument("--frames-before-cancel", type=int, default=4)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--verbose", action="store_true", help="list the longest gaps and when")
    args = p.parse_args()

    import napari
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.open_sample("napari-labelfree", "timelapse")
    _, widget = viewer.window.add_plugin_dock_widget("napari-labelfree", "Label-free prediction")
    _set_cpu(widget)
    _tick_models(widget, args.models.split(","))

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def pump_until(cond, what: str) -> None:
        end = time.perf_counter() + args.timeout
        while not cond():
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.002)
            if time.perf_counter() > end:
                raise SystemExit(f"timed out waiting for {what}")

    # settle: the widget's startup work (device list, first paint) is not the run
    t_settle = time.perf_counter() + 5.0
    pump_until(lambda: time.perf_counter() > t_settle, "settling")

    timer.start()
    t0 = time.perf_counter()
    _click(widget.predict_btn)
    run = widget.run
    t_click = time.perf_counter() - t0
    pump_until(lambda: len(run.frames_done) >= args.frames_before_cancel, "frames")
    t_frames = time.perf_counter() - t0
    t_cancel0 = time.perf_counter()
    _click(widget.cancel_btn)
    pump_until(lambda: not widget.is_running, "the cancel")
    t_cancel = time.perf_counter() - t_cancel0
    t_end = time.perf_counter() + 0.5
    pump_until(lambda: time.perf_counter() > t_end, "the tail")
    timer.stop()

    gaps = np.diff(np.asarray([t0, *ticks])) * 1000
    print(f"models: {args.models}; frames done: {len(run.frames_done)} (order {run.frames_done})")
    print(
        f"click returned after {t_click * 1000:.0f} ms; {args.frames_before_cancel} frames in "
        f"{t_frames:.1f} s; Cancel took {t_cancel:.2f} s"
    )
    print(
        f"GUI timer: {len(gaps)} ticks, longest gap {gaps.max():.0f} ms, "
        f"p99 {np.percentile(gaps, 99):.0f} ms, median {np.median(gaps):.0f} ms"
    )
    if args.verbose:
        at = np.asarray(ticks) - t0
        for i in np.argsort(gaps)[::-1][:8]:
            print(f"  gap {gaps[i]:.0f} ms ending at t={at[i]:.2f} s")
    viewer.close()


if __name__ == "__main__":
    main()
