"""Screenshots for docs/user-guide.md, taken from a real napari window.

Run under an X server (never with QT_QPA_PLATFORM=offscreen, which renders a black canvas)::

    xvfb-run -a python docs/make_screenshots.py            # writes docs/images/guide_*.png

What it does, as a user would: opens the simulated z-stack sample, predicts it with three
built-in models in the Predict widget (the details of the highlighted model shown), opens the
simulated time-lapse and predicts it from the frame under the time slider outwards, saves the
merged image, then opens the Train widget on the z-stack and trains a small lamin-b1 model for a
few iterations (the measured time per iteration shown before it starts). It prints the
first-frame latency and total time the widget took on the time-lapse.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_labelfree import _preferences
from napari_labelfree.core import bundle as bundles
from napari_labelfree.core.bundle import discover_models

PLUGIN = "napari-labelfree"
OUT = Path(__file__).resolve().parent / "images"
# built-in models used for the prediction screenshots
BUILTIN_CHOICE = ("dna", "lamin-b1", "fibrillarin")


def wait(until: Callable[[], bool], timeout: float = 900.0) -> None:
    """Run the Qt event loop until ``until()`` is true."""
    app = QApplication.instance()
    end = time.monotonic() + timeout
    while not until():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() > end:
            raise TimeoutError("gave up waiting")


def settle(seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    wait(lambda: time.monotonic() > end)


def open_sample(viewer: napari.Viewer, key: str) -> None:
    """File > Open Sample, until its hidden fluorescence layers (added one by one) are all there."""
    from napari_labelfree.core.synth import STRUCTURES

    n = len(viewer.layers)
    viewer.open_sample(PLUGIN, key)
    wait(lambda: len(viewer.layers) == n + 1 + len(STRUCTURES))


def shot(viewer: napari.Viewer, name: str) -> Path:
    settle()
    img = viewer.screenshot(canvas_only=False, flash=False)
    path = OUT / f"guide_{name}.png"
    from imageio.v3 import imwrite

    imwrite(path, img)
    print(f"wrote {path} {img.shape[1]}x{img.shape[0]}")
    return path


def close_docks(viewer: napari.Viewer) -> None:
    for name in list(viewer.window.dock_widgets):
        viewer.window.remove_dock_widget(viewer.window.dock_widgets[name])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=20, help="training iterations to show")
    p.add_argument("--only", choices=["all", "predict", "train"], default="all", help="which shots")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    # the model trained for the screenshot goes to a temporary folder, not the user's models
    tmp_models = Path(tempfile.mkdtemp(prefix="labelfree-docs-models-"))
    bundles.user_models_dir = lambda: tmp_models
    # the reader question answered in a temporary settings file: no toast or question row in the
    # pictures, and the user's own answer is neither read nor written
    settings = tmp_models / "settings.json"
    settings.write_text('{"open_files_with_labelfree": false}')
    _preferences.settings_path = lambda: settings

    viewer = napari.Viewer(title="napari-labelfree")
    viewer.window._qt_window.resize(1500, 950)
    viewer.window._qt_window.show()

    if args.only in ("all", "predict"):
        # 1. open: the simulated z-stack sample (File > Open Sample > Label-free prediction)
        open_sample(viewer, "zstack")
        viewer.dims.set_current_step(0, viewer.layers[0].data.shape[0] // 2)
        viewer.reset_view()
        shot(viewer, "open")

        # 2. predict the z-stack with three built-in models
        builtin = {b.spec.structure: b.path for b in discover_models() if b.source == "builtin"}
        models = [builtin[s] for s in BUILTIN_CHOICE]
        _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Label-free prediction")
        predict.models.set_checked(models, show=models[0])
        predict.device.value = "cpu"
        predict.predict_btn.native.click()
        wait(lambda: not predict.is_running)
        viewer.reset_view()
        shot(viewer, "predict")

        # 3. time-lapse: predicted from the frame under the slider outwards, scrubbable while it runs
        viewer.layers.clear()
        open_sample(viewer, "timelapse")
        viewer.dims.set_current_step(0, 4)
        viewer.dims.set_current_step(1, viewer.layers[0].data.shape[1] // 2)
        viewer.reset_view()
        t0 = time.perf_counter()
        predict.predict_btn.native.click()
        run = predict.run
        wait(lambda: len(run.frames_done) >= 1 and not run.pending)
        first = time.perf_counter() - t0
        shot(viewer, "timelapse_first_frame")
        wait(lambda: not predict.is_running)
        total = time.perf_counter() - t0
        viewer.dims.set_current_step(0, 6)
        shot(viewer, "timelapse")
        print(
            f"widget, time-lapse {len(run.frames_done)} frames: first frame (t={run.frames_done[0]}) "
            f"after {first:.1f} s, all after {total:.1f} s; order {run.frames_done}"
        )
        predict.save_merged_image(OUT / "guide_merged.png")
        close_docks(viewer)

    if args.only in ("all", "train"):
        # 4. train: the z-stack's bright-field against its true lamin-b1, a few iterations
        viewer.layers.clear()
        open_sample(viewer, "zstack")
        viewer.dims.set_current_step(0, viewer.layers[0].data.shape[0] // 2)
        _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train a label-free model")
        train.target.value = "lamin-b1 (true)"
        train.structure.value = "lamin-b1"
        train.device.value = "cpu"
        train.iterations.value = args.iterations
        train.estimate()
        wait(lambda: not train.estimator.running and train.estimate_label.value.startswith("about"))
        train.train_btn.native.click()
        wait(lambda: len(train.history["it"]) >= min(args.iterations, 5))
        viewer.layers["lamin-b1 (true)"].visible = True
        shot(viewer, "train")
        train.stop()
        wait(lambda: not train.is_running)
        print(f"trained {train.last_model} ({train.status.text()})")
    viewer.close()


if __name__ == "__main__":
    main()
