"""The live loss plot of the Train widget (matplotlib in Qt): cheap enough to leave training alone.

Every redraw runs on the GUI thread holding Python's GIL, which the training thread needs
between its torch calls; on a two-core machine a redraw is also CPU taken from torch. So the plot
redraws only when asked (the widget asks every couple of seconds), with fixed margins (no
``tight_layout`` pass per draw) and the axis scale set only when it changes.
"""

from __future__ import annotations

import time
from typing import Any

from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..core.train.log import log_scale_plain


class LossPlot(QWidget):
    """A small matplotlib plot of training (and validation) loss against iteration."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.2))
        # fixed margins that hold the tick labels: a layout pass per redraw costs more than the plot
        self.figure.subplots_adjust(left=0.2, right=0.97, bottom=0.2, top=0.95)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(160)
        self.ax = self.figure.add_subplot(111)
        layout = QVBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setLayout(layout)
        self.draw_seconds = 0.0  # the last redraw's GUI-thread time
        self.clear()

    def clear(self) -> None:
        self.ax.clear()
        self.ax.set_xlabel("iteration")
        self.ax.set_ylabel("MSE loss")
        from matplotlib.ticker import MaxNLocator

        self.ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no iteration 1.5
        (self.train_line,) = self.ax.plot([], [], lw=1, label="train")
        (self.val_line,) = self.ax.plot([], [], "o-", ms=3, lw=1, label="validation")
        self._scale = "linear"
        self.canvas.draw_idle()

    def update_lines(self, history: dict[str, list[Any]]) -> None:
        """Redraw now from {"it", "loss", "val_it", "val"} (iterations and losses)."""
        start = time.perf_counter()
        self.train_line.set_data(history["it"], history["loss"])
        self.val_line.set_data(history["val_it"], history["val"])
        if history["loss"]:
            scale = "log" if min(history["loss"]) > 0 else "linear"
            if scale != self._scale:  # setting a scale rebuilds the axis' tickers: only on change
                if scale == "log":
                    log_scale_plain(self.ax)  # no mathtext: the training thread draws its curve too
                else:
                    self.ax.set_yscale("linear")
                self._scale = scale
        self.ax.relim()
        self.ax.autoscale_view()
        self.canvas.draw()
        self.draw_seconds = time.perf_counter() - start
