"""`labelfree` with a prediction that stops after its first frame until a signal arrives.

Run as a script by test_faults.py: ``python slow_predict.py MARKER -- labelfree arguments``. The
first frame is predicted and streamed into the output's temporary file, then the marker file is
written and the second frame waits: the test sends its signal at the worst moment, half-way
through the file, without guessing times.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from napari_labelfree.cli import main
from napari_labelfree.core.predict import volume as predict_volume

marker = Path(sys.argv[1])
real = predict_volume.run_volume


def run_volume(plan, volume, networks, frame=0):
    if frame >= 1:
        marker.write_text("started")
        while True:  # until SIGTERM, SIGHUP or SIGINT ends the command
            time.sleep(0.05)
    return (yield from real(plan, volume, networks, frame))


predict_volume.run_volume = run_volume
sys.exit(main(sys.argv[3:]))
