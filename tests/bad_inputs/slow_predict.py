"""`labelfree` with a prediction whose second frame keeps torch busy until the test stops it.

Run as a script by test_faults.py: ``python slow_predict.py MARKER MODE -- labelfree arguments``.
The first frame is predicted and streamed into the output's temporary file; the second frame then
runs torch convolutions tile after tile without end, and the marker file is written. The test
sends its signal at the worst moment, half-way through the file and with torch at work in the
background thread that predicts ahead of the writer, without guessing times.

MODE ``signal`` waits for the test's signal; MODE ``full-disk`` makes the writer fail with ENOSPC
once the marker is written (the disk filling up while the next frame is being predicted).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
from pathlib import Path

import tifffile

from napari_labelfree.cli import main
from napari_labelfree.core.events import TileDone
from napari_labelfree.core.predict import volume as predict_volume

# Ctrl-C as a terminal's foreground job gets it: a shell starts background jobs (a CI runner's
# `cmd &`) with SIGINT ignored, and Python then leaves it ignored, as it should
signal.signal(signal.SIGINT, signal.default_int_handler)

marker = Path(sys.argv[1])
mode = sys.argv[2]
real_volume = predict_volume.run_volume
real_imwrite = tifffile.imwrite


def run_volume(plan, volume, networks, frame=0):
    if frame == 0:
        return (yield from real_volume(plan, volume, networks, frame))
    import torch

    x = torch.randn(1, 8, 32, 64, 64)
    w = torch.randn(8, 8, 3, 3, 3)
    for i in range(10**9):  # until the command stops asking for tiles
        torch.nn.functional.conv3d(x, w, padding=1)
        if i == 1:
            marker.write_text("started")
        yield TileDone(i, i + 1, frame)
    raise AssertionError("unreachable")


def imwrite_then_full(path, *args, data=None, **kwargs):
    """Write frame 0's pages to the file, then fail as a full disk does."""
    n_pages = kwargs["shape"][1] * kwargs["shape"][2]
    with open(path, "wb") as f:
        for _ in range(n_pages):
            f.write(next(data).tobytes())
    while not marker.exists():
        time.sleep(0.01)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


predict_volume.run_volume = run_volume
if mode == "full-disk":
    tifffile.imwrite = imwrite_then_full
sys.exit(main(sys.argv[4:]))
