"""The training log (CSV, one row per iteration) and its loss curve (PNG)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..files import atomic_file

LOG_NAME = "train_log.csv"
CURVE_NAME = "loss_curve.png"
LOG_COLUMNS = ("iteration", "train_loss", "val_loss", "val_pearson_r")


def log_scale_plain(ax) -> None:
    """A log y axis whose tick labels are plain text ("1e-01"), not mathtext ("10^-1").

    matplotlib's mathtext parser is one object shared by all threads and not thread-safe: the
    worker thread writing the loss curve and the Train widget's live plot on the GUI thread would
    otherwise parse tick labels at the same time and fail now and then (a ParseException).
    """
    ax.set_yscale("log")
    # as the log scale's own formatters (which use mathtext), minor ticks labelled where the
    # range is too short for labelled decades
    ax.yaxis.set_major_formatter(_plain_log_formatter()(10))
    ax.yaxis.set_minor_formatter(_plain_log_formatter()(10, labelOnlyBase=False))


def _plain_log_formatter():
    """matplotlib's LogFormatter with as many digits as tell neighbouring ticks apart.

    Its own text for a value below 1 has one digit ("%1.0e"): over a range shorter than a decade
    the ticks 0.14, 0.16, 0.18 read "1e-01, 2e-01, 2e-01".
    """
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        step = 0.0  # the smallest distance between two ticks in view

        def set_locs(self, locs=None):
            super().set_locs(locs)
            lo, hi = sorted(self.axis.get_view_interval()) if self.axis else (0.0, np.inf)
            shown = np.unique([v for v in (locs if locs is not None else []) if lo <= v <= hi])
            self.step = float(np.diff(shown).min()) if len(shown) > 1 else 0.0

        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            if self.step <= 0 or x == 0:
                return f"{x:.1g}"
            digits = math.floor(math.log10(abs(x))) - math.floor(math.log10(self.step)) + 1
            return f"{x:.{min(max(digits, 1), 6)}g}"

    return PlainLogFormatter


def fmt(v: float | None) -> str:
    """A log cell: six significant digits, empty for no value."""
    return "" if v is None else f"{v:.6g}"


class TrainLog:
    """``train_log.csv`` of a run, kept as rows in memory for the loss curve.

    Opening it keeps the rows up to ``up_to`` (the iteration a resumed run starts from) and drops
    later ones, which belonged to iterations that are trained again.
    """

    def __init__(self, path: Path, up_to: int) -> None:
        self.path = path
        self.rows = _read_log(path, up_to)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            w.writeheader()
            w.writerows(self.rows)
        self._file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (see close)
        self._writer = csv.DictWriter(self._file, fieldnames=LOG_COLUMNS)

    def append(self, row: dict[str, object]) -> None:
        """Write one row and flush it, so the file is current while training runs."""
        self._writer.writerow(row)
        self._file.flush()
        self.rows.append({k: str(v) for k, v in row.items()})

    def close(self) -> None:
        self._file.close()


def _read_log(path: Path, up_to: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("iteration") and int(r["iteration"]) <= up_to]


def write_loss_curve(path: Path, rows: Sequence[dict[str, str]], title: str = "") -> None:
    """Training loss (raw and smoothed), validation loss and validation r against iteration."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    it = np.array([int(r["iteration"]) for r in rows])
    loss = np.array([float(r["train_loss"]) for r in rows])
    val = [
        (int(r["iteration"]), float(r["val_loss"]), float(r["val_pearson_r"] or "nan"))
        for r in rows
        if r.get("val_loss")
    ]
    fig = Figure(figsize=(8, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax, ax_r = fig.subplots(1, 2)
    if len(it):
        ax.plot(it, loss, color="0.75", lw=0.6, label="train (batch)")
        k = max(1, min(50, len(loss) // 10))
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(it[k - 1 :], smooth, color="C0", lw=1.5, label=f"train (mean of {k})")
    if val:
        ax.plot(
            [v[0] for v in val], [v[1] for v in val], "o-", color="C1", ms=3, label="validation"
        )
        ax_r.plot([v[0] for v in val], [v[2] for v in val], "o-", color="C2", ms=3)
    log_scale_plain(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("MSE (z-scored target)")
    ax.legend(fontsize=8)
    ax_r.set_xlabel("iteration")
    ax_r.set_ylabel("validation Pearson r")
    ax_r.set_ylim(min(0.0, *(v[2] for v in val if math.isfinite(v[2]))) if val else 0.0, 1.0)
    ax_r.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10, parse_math=False)  # a "$" in a name stays text
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
