"""Closing napari while the plugin's workers run, as a user does it, in a fresh process.

Run as a script (``python lifecycle_close.py SCENARIO``) it is one user session: open a viewer,
do one thing, close the window while the plugin's worker is still busy, exit.
:func:`run_try` runs one such session and judges it: exit status 0, no traceback or abort on
stderr, and (mid-training) no model folder left behind. Used by ``test_lifecycle_close.py`` (a
few tries) and ``benchmarks/close_lifecycle.py`` (20 tries of each).

Scenarios: ``dock`` (dock both widgets, close at once: the device probe is importing torch),
``sample`` (close while the sample is simulated), ``train`` (close mid-training), ``predict``
(close mid-prediction), ``round`` (close while "Every scene of this file" is at a plate's second
position), ``exit`` (dock both widgets and let the interpreter exit with the window
still open, as a script without ``napari.run()`` or a restarted Jupyter kernel does), ``estimate``
(the Train widget measures its training step in a fresh process, torch first imported by the
device probe: with torch 2.4 that crashed while the probe ran on Qt's thread pool).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIOS = ("dock", "sample", "train", "predict", "round", "exit", "estimate")
PLUGIN = "napari-labelfree"
BAD_MARKS = (
    "Traceback",
    "Aborted",
    "core dumped",
    "has been deleted",
    "terminate called",
    "NO ESTIMATE",
    "NO ROUND",
)


# ------------------------------------------------------------------------- the child process
def _pump(seconds: float, until=None) -> bool:
    """Process Qt events for up to ``seconds`` (or until ``until()``); True if ``until`` held."""
    from qtpy.QtCore import QCoreApplication

    app = QCoreApplication.instance()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.01)
    return until is None


def _volume():
    import numpy as np

    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:16, 0:64, 0:64]
    blobs = sum(  # nuclei all over the field: the validation strip (right edge) has some too
        np.exp(-(((y - cy) ** 2 + (x - cx) ** 2) / 40.0 + (z - 8) ** 2 / 16.0))
        for cy in (12, 32, 52)
        for cx in (10, 30, 50, 60)
    )
    signal = (100 + 50 * blobs + rng.normal(0, 2, size=blobs.shape)).astype(np.float32)
    target = (blobs > 0.5).astype(np.float32) * 100
    return signal, target


def child(scenario: str) -> None:
    """One try (in its own process): set up, close the viewer while a worker is busy, exit."""
    import napari
    from qtpy.QtCore import QTimer

    viewer = napari.Viewer(show=True)
    if scenario in ("dock", "exit"):
        viewer.window.add_plugin_dock_widget(PLUGIN, "Label-free prediction")
        viewer.window.add_plugin_dock_widget(PLUGIN, "Train a label-free model")
        if scenario == "exit":  # the window stays open: Python's exit tears it down
            _pump(1.0)
            return
    elif scenario == "estimate":
        _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train a label-free model")
        if not _pump(120, lambda: "per iteration" in str(train.estimate_label.value)):
            print(f"NO ESTIMATE: {train.estimate_label.value!r}", flush=True)
    elif scenario == "sample":
        # the sample is simulated on a worker thread while the GUI thread processes events:
        # the window closes in the middle of it
        # as the title bar, File > Close Window (Ctrl+W) and Quit do (not viewer.close())
        QTimer.singleShot(1500, viewer.window._qt_window.close)
        viewer.open_sample(PLUGIN, "zstack")
        print(f"the sample opened {len(viewer.layers)} layers", flush=True)
    elif scenario == "train":
        signal, target = _volume()
        viewer.add_image(target, name="Hoechst", scale=(0.29, 0.29, 0.29))
        viewer.add_image(signal, name="bright-field", scale=(0.29, 0.29, 0.29))
        _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train a label-free model")
        train.signal.value, train.target.value = "bright-field", "Hoechst"
        train.start_from.value = None  # a new tiny network, not a built-in model to adapt
        train.patch.value, train.batch.value = "8, 16, 16", 2
        train.depth.value, train.width.value, train.device.value = 2, 8, "cpu"
        train.iterations.value = 100_000
        train.train_btn.native.click()
        out = train._out
        if not _pump(120, lambda: len(train.history["it"]) >= 2):
            print("training never reached iteration 2", flush=True)
        print(f"closing at iteration {train.history['it'][-1:]}", flush=True)
        viewer.close()
        _pump(0.5)
        if out.exists():
            print(f"LEFTOVER: {out} holds {sorted(p.name for p in out.iterdir())}", flush=True)
        return
    elif scenario == "predict":
        signal, _ = _volume()
        viewer.add_image(signal, name="bright-field", scale=(0.29, 0.29, 0.29))
        _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Label-free prediction")
        predict.models.set_checked(predict.models.paths())
        predict.tile.value, predict.device.value = "16, 32, 32", "cpu"
        predict.predict_btn.native.click()
        _pump(60, lambda: predict.runner.progress.tiles_done >= 1)
    elif scenario == "round":  # close while a round over a plate's positions is at its second
        from napari_labelfree._reader import get_reader

        plate = _plate(Path(os.environ["XDG_DATA_HOME"]).parent / "plate.ome.tif")
        for data, kwargs, _ in get_reader(plate)(plate):
            viewer.add_image(data, **kwargs)
        _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Label-free prediction")
        predict.image.value = "plate [Position 1]: channel 0"
        predict.models.set_checked(predict.models.paths())
        predict.tile.value, predict.device.value = "16, 32, 32", "cpu"
        predict.every_scene.value = True
        predict.predict_btn.native.click()
        if not _pump(120, lambda: "(scene 2 of 3)" in predict.status.text()):
            print(f"NO ROUND: never at scene 2: {predict.status.text()!r}", flush=True)
    if scenario != "sample":
        viewer.close()
    _pump(0.3)


def _plate(path: Path) -> str:
    """A file of three positions (one channel each) for the "round" scenario."""
    import tifffile

    signal, _ = _volume()
    with tifffile.TiffWriter(path, ome=True) as tw:
        for k in range(3):
            meta = {"axes": "ZYX", "Name": f"Position {k + 1}", "PhysicalSizeZ": 0.29}
            tw.write(signal + k, metadata=meta | {"PhysicalSizeY": 0.29, "PhysicalSizeX": 0.29})
    return str(path)


# ------------------------------------------------------------------------ the parent process
def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(home / "data")  # a user model folder of its own
    env["XDG_CONFIG_HOME"] = str(home / "config")  # napari settings of its own
    env["NAPARI_LABELFREE_MODELS"] = str(home / "models")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _tiny_model(folder: Path) -> None:
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec

    spec = ModelSpec(
        structure="dna",
        colormap="blue",
        voxel_size_um=(0.29, 0.29, 0.29),
        architecture=Architecture(depth=2, width=8),
    )
    init_bundle(folder / "dna", spec, seed=0)


def run_try(scenario: str, timeout_s: float = 240.0) -> tuple[bool, str, float]:
    """One try in a fresh process: (passed, why, seconds)."""
    home = Path(tempfile.mkdtemp(prefix="labelfree-close-"))
    try:
        (home / "models").mkdir()
        if scenario in ("predict", "round"):
            _tiny_model(home / "models")
        cmd = [sys.executable, __file__, scenario]
        if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
            cmd = ["xvfb-run", "-a", *cmd]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, env=_environment(home), capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired as e:
            said = "".join(
                part.decode(errors="replace") if isinstance(part, bytes) else part
                for part in (e.stdout or "", e.stderr or "")
            )
            return False, f"no exit within {timeout_s:.0f} s: {said[-600:]}", timeout_s
        took = time.perf_counter() - start
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            return False, f"exit status {proc.returncode}: {output.strip()[-600:]}", took
        bad = [mark for mark in (*BAD_MARKS, "LEFTOVER") if mark in output]
        if bad:
            return False, f"exit 0 but {bad}: {output.strip()[-600:]}", took
        trained = list((home / "data").rglob("config.json")) if (home / "data").exists() else []
        if scenario == "train" and trained:
            return False, f"a model was left: {trained}", took
        return True, "exit 0", took
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    child(sys.argv[1])
