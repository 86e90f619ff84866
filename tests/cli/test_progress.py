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


def test_a_time_lapse_written_to_tiff_in_a_log_counts_every_frame(tmp_path, capsys, monkeypatch):
    """The TIFF writer drains one frame per call: the count and the time left span the file."""
    import itertools

    from napari_labelfree.cli import main
    from napari_labelfree.core.io import write_ome_tiff

    clock = itertools.count(0.0, 20.0)  # every reading of the clock: 20 s later
    real = _progress.LogLines
    monkeypatch.setattr(_progress, "LogLines", lambda: real(clock=clock.__next__))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    movie = rng.random((5, 1, 8, 32, 32)).astype(np.float32)
    write_ome_tiff("movie.ome.tif", movie, physical_sizes=(1.0, 0.5, 0.5))
    tiny = ["--depth", "2", "--width", "8", "--voxel-size", "1,0.5,0.5"]
    assert main(["init-model", "m", "--structure", "dna", *tiny]) == 0
    assert main(["predict", "movie.ome.tif", "-m", "./m", "-o", "out.ome.tif"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "time points done" in ln]
    assert lines == [
        "labelfree: movie.ome.tif: 2 of 5 time points done, 30.0 s each, about 2 min left"
    ]


def test_a_resumed_run_counts_the_time_points_left(monkeypatch):
    import itertools

    clock = itertools.count(0.0, 20.0)
    real = _progress.LogLines
    monkeypatch.setattr(_progress, "LogLines", lambda: real(clock=clock.__next__))
    log = _progress.FrameLog("movie.czi", to_do=4, resumed=True)  # 4 of 10 were left
    log.started()
    lines = [log.frame_done(10) for _ in range(4)]
    assert (
        lines[1]
        == "labelfree: movie.czi: 2 of the 4 time points left are done, 30.0 s each, about 60 s left"
    )
    assert lines[3] is None  # none after the last
