"""How long File > Open Sample keeps napari's GUI thread from handling events.

A 20 ms QTimer ticks on the GUI thread while a sample opens, as the menu item does; the longest gap
between ticks is how long the window could not repaint or react. Run under an X server (Xvfb):

    python benchmarks/sample_open_gui.py            # both samples, as shipped
    python benchmarks/sample_open_gui.py --inline   # simulated on the GUI thread (the old way)
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inline", action="store_true", help="simulate on the GUI thread")
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer

    from napari_labelfree import _sample_data
    from napari_labelfree.core.synth import STRUCTURES

    if args.inline:  # the old behaviour: the simulation runs in the calling (GUI) thread

        def inline(kind: str):
            if kind not in _sample_data._CACHE:
                _sample_data._CACHE[kind] = _sample_data._prepare(kind)
            return _sample_data._CACHE[kind]

        _sample_data._simulated = inline

    viewer = napari.Viewer(show=True)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    for key in ("zstack", "timelapse"):
        viewer.layers.clear()
        napari.qt.get_qapp().processEvents()
        ticks.clear()
        start = time.perf_counter()
        viewer.open_sample("napari-labelfree", key)
        # the hidden fluorescence layers follow one per event-loop turn
        while len(viewer.layers) < 1 + len(STRUCTURES):
            napari.qt.get_qapp().processEvents()
            time.sleep(0.002)
        total = time.perf_counter() - start
        napari.qt.get_qapp().processEvents()
        gaps = np.diff([start, *ticks, time.perf_counter()]) * 1000
        print(
            f"{key}: opened in {total:.1f} s; GUI-thread gaps: longest {gaps.max():.0f} ms, "
            f"p99 {np.percentile(gaps, 99):.0f} ms, median {np.median(gaps):.0f} ms "
            f"({len(ticks)} ticks)"
        )
    timer.stop()
    viewer.close()


if __name__ == "__main__":
    main()
