"""Both simulated samples open from File > Open Sample as named layers with physical scale."""

from __future__ import annotations

import time

import pytest

from napari_labelfree.core.synth import STRUCTURES, simulate


@pytest.mark.parametrize(
    ("key", "ndim", "scale"),
    [("zstack", 3, (0.29, 0.108, 0.108)), ("timelapse", 4, (1.0, 0.29, 0.065, 0.065))],
)
def test_sample_opens(make_napari_viewer, qtbot, key, ndim, scale):
    viewer = make_napari_viewer()
    start = time.perf_counter()
    viewer.open_sample("napari-labelfree", key)
    elapsed = time.perf_counter() - start
    # the transmitted light at once; the hidden fluorescences one per event-loop turn after it
    assert [layer.name for layer in viewer.layers] == ["bright-field"]
    qtbot.waitUntil(lambda: len(viewer.layers) == 1 + len(STRUCTURES), timeout=60_000)
    names = [layer.name for layer in viewer.layers]
    assert names == ["bright-field", *(f"{s} (true)" for s in STRUCTURES)]
    for layer in viewer.layers:
        assert layer.data.ndim == ndim
        assert tuple(layer.scale) == pytest.approx(scale)
    assert viewer.layers["bright-field"].visible
    assert viewer.layers["dna (true)"].blending == "additive"
    # the hidden layers arrive unselected: the visible one keeps its controls on show
    assert viewer.layers.selection.active is viewer.layers["bright-field"]
    print(f"{key} opened in {elapsed:.1f} s")


def test_the_gui_keeps_handling_events_while_a_sample_is_made(make_napari_viewer, monkeypatch):
    """The simulation waits for an event only the GUI thread can deliver: were the GUI thread
    blocked while the sample is made (the old behaviour), it would never come."""
    import threading

    from qtpy.QtCore import QTimer

    from napari_labelfree import _sample_data

    viewer = make_napari_viewer()
    delivered = threading.Event()
    made_by = []

    def simulate_after_an_event(kind):
        assert delivered.wait(timeout=60), "the GUI thread handled no event during the simulation"
        made_by.append(threading.current_thread())
        return simulate(
            structures=STRUCTURES, shape=(4, 32, 32), voxel_size=(0.29, 0.108, 0.108), seed=0
        )

    monkeypatch.setattr(_sample_data, "_CACHE", {})
    monkeypatch.setattr(_sample_data, "_simulate", simulate_after_an_event)
    QTimer.singleShot(50, delivered.set)
    viewer.open_sample("napari-labelfree", "zstack")
    assert made_by and made_by[0] is not threading.main_thread()
    assert viewer.layers["bright-field"].data.shape == (4, 32, 32)


def test_closing_the_viewer_while_the_sample_layers_follow(make_napari_viewer, qtbot):
    """The viewer closed before all hidden layers were added: the rest are dropped, no error."""
    from qtpy.QtCore import QCoreApplication

    viewer = make_napari_viewer()
    viewer.open_sample("napari-labelfree", "zstack")
    assert len(viewer.layers) == 1
    viewer.close()
    qtbot.wait(300)  # the pending additions fire on the closed viewer
    QCoreApplication.processEvents()


def test_the_sample_menu_leaves_the_simulator_to_the_worker():
    """File > Open Sample imports this module on the GUI thread: the simulator and scipy (~2 s
    on a loaded 2-core machine) are imported by the worker that simulates, not there."""
    import subprocess
    import sys

    code = (
        "import sys, napari_labelfree._sample_data; "
        "print(sorted({'napari_labelfree.core.synth', 'scipy.ndimage'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
