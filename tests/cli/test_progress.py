"""Progress bars are for terminals: piped output (a log, a batch job) gets none."""

from __future__ import annotations

from napari_labelfree.cli._progress import drive_prediction
from napari_labelfree.core.events import FrameStarted, Stage, TileDone


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
