"""The live loss plot of the Train widget (matplotlib in Qt), redrawn at most a few times a second."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..core.train.log import log_scale_plain


class LossPlot(QWidget):
    """A small matplotlib plot of training (and validation) loss against iteration."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(160)
        self.ax = self.figure.add_subplot(111)
        layout = QVBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setLayout(layout)
        self.clear()

    def clear(self) -> None:
        self.ax.clear()
        self.ax.set_xlabel("iteration")
        self.ax.set_ylabel("MSE loss")
        (self.train_line,) = self.ax.plot([], [], lw=1, label="train")
        (self.val_line,) = self.ax.plot([], [], "o-", ms=3, lw=1, label="validation")
        self.canvas.draw_idle()

    def update_lines(self, history: dict[str, list[Any]]) -> None:
        """Redraw from {"it", "loss", "val_it", "val"} (iterations and losses)."""
        self.train_line.set_data(history["it"], history["loss"])
        self.val_line.set_data(history["val_it"], history["val"])
        if history["loss"]:
            if min(history["loss"]) > 0:
                log_scale_plain(self.ax)  # no mathtext: the training thread draws its curve too
            else:
                self.ax.set_yscale("linear")
        self.ax.relim()
        self.ax.autoscale_view()
        self.canvas.draw_idle()
