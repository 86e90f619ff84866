"""Progress bars are for terminals: piped output (a log, a batch job) gets none, and a line now
and then instead where a run is long."""

from __future__ import annotations

import numpy as np

from napari_labelfree.cli import _progress
from napari_labelfree.cli._progress import drive_prediction
from napari_labelfree.core.events import FrameDone, FrameStarted, Stage, TileDone


def _frames():
    for t in range(2):
        yield FrameStarted(t, 2)
        yield Stage(t, "resampling to the model's voxel size (3 s)")
        for i in range(3):
            yield TileDone(i, 3, t)
    return "done"


def test_no_bar_when_stderr_is_not_a_terminal(capsys):
    assert drive_prediction(_frames(), "cells.tif") == "done"
    assert capsys.readouterr().err == ""  # capsys's stderr is not a terminal


def test_a_bar_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert drive_prediction(_frames(), "cells.tif") == "done"
    assert "tile" in capsys.readouterr().err


def test_a_step_before_the_tiles_is_shown_in_the_bar(capsys, monkeypatch):
    """A big frame spends seconds resampling before its first tile: the bar says so."""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    drive_prediction(_frames(), "cells.tif")
    assert "resampling to the model's voxel size (3 s)" in capsys.readouterr().err


def test_a_long_time_lapse_in_a_log_says_how_far_it_is(capsys, monkeypatch):
    """200 time points of 20 s each into a log file: a line after the first half minute, then
    every five minutes, with the time points done and the time left; none after the last."""
    now = [0.0]
    real = _progress.LogLines
    monkeypatch.setattr(_progress, "LogLines", lambda: real(clock=lambda: now[0]))

    def frames():
        for t in range(200):
            yield FrameStarted(t, 200)
            yield TileDone(0, 1, t)
            now[0] += 20.0
            yield FrameDone(t, 200, {"dna": np.zeros((1, 2, 2), np.float32)})
        return "done"

    assert drive_prediction(frames(), "movie.czi") == "done"
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (
        "labelfree: movie.czi: 2 of 200 time points done, 20.0 s each, about 66 min left"
    )
    assert [ln.split(":")[2].split()[0] for ln in lines] == [str(2 + 15 * k) for k in range(14)]
