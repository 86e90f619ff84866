"""`labelfree predict --timings`, reading ahead and predicting ahead of the writer."""

import threading
import time

import numpy as np
import pytest

from napari_labelfree.cli import main
from napari_labelfree.cli._timings import ReadAhead, Timings, compute_ahead
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.io import from_array, open_image, write_ome_tiff


def test_timelapse_with_timings_writes_every_frame_in_order(tmp_path, rng, make_tiny_model, capsys):
    b = make_tiny_model()
    data = rng.normal(100, 10, size=(3, 1, 8, 24, 24)).astype(np.float32)
    data[1] *= 3  # frames that differ, so a frame written out of place would show
    src = write_ome_tiff(tmp_path / "in.ome.tif", data, None, ["bf"], (0.29, 0.29, 0.29))
    outs = {}
    for flag in ([], ["--timings"]):
        out = tmp_path / f"out{len(flag)}.ome.tif"
        args = ["predict", str(src), "-m", str(b.path), "-o", str(out), "--device", "cpu"]
        assert main([*args, "--precision", "fp32", *flag]) == 0
        outs[len(flag)] = np.stack([open_image(out).frame(t, 0) for t in range(3)])
    np.testing.assert_array_equal(outs[0], outs[1])
    err = capsys.readouterr().err
    assert "timings: start-up" in err and "prediction" in err and "writing" in err


def test_read_ahead_returns_each_frame_asked_for(rng):
    data = rng.normal(size=(4, 2, 3, 5, 6)).astype(np.float32)
    reader = ReadAhead(from_array(data, "TCZYX"), Timings())
    for t in (0, 1, 3, 2, 2):  # in order (read ahead) and out of order (read then)
        np.testing.assert_array_equal(reader.frame(t, 1), data[t, 1])
    assert reader.n_timepoints == 4


def test_compute_ahead_hands_over_items_and_errors():
    def frames():
        yield 1
        yield 2
        raise LabelFreeError("broken model")

    timings = Timings()
    got = []
    with pytest.raises(LabelFreeError, match="broken model"):
        for item in compute_ahead(frames(), timings):
            got.append(item)
    assert got == [1, 2]
    assert list(compute_ahead(iter([5, 6]), timings, background=False)) == [5, 6]


def test_closing_compute_ahead_stops_the_background_work_before_returning():
    """The writer stopping (Ctrl-C, a full disk) leaves no thread computing: one left in torch
    while the interpreter exits aborts the process."""
    stop = threading.Event()
    steps_after_stop = []

    def frames():
        yield "frame 0"
        while True:  # frame 1: tile after tile until told to stop
            time.sleep(0.01)
            if stop.is_set():
                steps_after_stop.append(1)
                return
        yield "frame 1"

    ahead = compute_ahead(frames(), Timings(), stop=stop)
    assert next(ahead) == "frame 0"
    ahead.close()
    assert stop.is_set() and steps_after_stop == [1]
    assert not [t for t in threading.enumerate() if t.name == "labelfree-predict"]


def test_read_ahead_close_leaves_no_reader(rng):
    data = rng.normal(size=(3, 1, 2, 4, 4)).astype(np.float32)
    reader = ReadAhead(from_array(data, "TCZYX"), Timings())
    reader.frame(0, 0)  # frame 1 is being read in the background
    reader.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("labelfree-read")]
