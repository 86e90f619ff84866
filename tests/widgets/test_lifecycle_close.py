"""Closing napari while the plugin's workers run exits cleanly (issue 19): in fresh processes.

Each test is one user session in its own process (``lifecycle_close.py``): dock the widgets and
close at once (the device probe is still importing torch), close while a sample is simulated,
mid-training, mid-prediction, or never close and let Python exit with the window open (a script
without ``napari.run()``); and the Train widget's first time estimate in a fresh process. Exit
status 0, no traceback or abort, no model left behind.
``benchmarks/close_lifecycle.py`` repeats each 20 times.
"""

from __future__ import annotations

import pytest
from lifecycle_close import SCENARIOS, run_try


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_closing_the_viewer_while_a_worker_runs_exits_cleanly(scenario):
    passed, why, _ = run_try(scenario)
    assert passed, why
