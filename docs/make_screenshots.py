"""Screenshots for docs/user-guide.md, taken from a real napari window.

Run under an X server (never with QT_QPA_PLATFORM=offscreen, which renders a black canvas)::

    xvfb-run -a python docs/make_screenshots.py            # writes docs/images/guide_*.png

What it does, as a user would: opens the simulated z-stack sample, trains three small models with
the Train widget (a few hundred iterations each on this CPU; cached and reused by the next run),
predicts the z-stack with three models in the Predict widget (the built-in dna, lamin-b1 and
fibrillarin models when the package has them, else the three just trained), then opens the
simulated time-lapse and predicts it from the frame under the time slider outwards. It prints the first-frame latency and total time
the widget took on the time-lapse.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_labelfree._widgets import registry
from napari_labelfree.core.bundle import discover_models, is_bundle

PLUGIN = "napari-labelfree"
OUT = Path(__file__).resolve().parent / "images"
# structure, colormap: three that read well together when blended additively
MODELS = (("dna", "blue"), ("lamin-b1", "yellow"), ("cellmask", "magenta"))
# built-in models used for the prediction screenshots when the package has them
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
    p.add_argument("--iterations", type=int, default=200, help="training iterations per model")
    p.add_argument("--batch", type=int, default=4, help="training batch size")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=Path.home() / ".cache" / "napari-labelfree" / "docs-models",
        help="trained models are kept here and reused by the next run (delete it to retrain)",
    )
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    models_dir: Path = args.models_dir
    models_dir.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer(title="napari-labelfree")
    viewer.window._qt_window.resize(1500, 950)
    viewer.window._qt_window.show()

    # 1. open: the simulated z-stack sample (File > Open Sample > Label-free prediction)
    viewer.open_sample(PLUGIN, "zstack")
    viewer.dims.set_current_step(0, viewer.layers[0].data.shape[0] // 2)
    viewer.reset_view()
    shot(viewer, "open")

    # 2. train three small models with the Train widget; each appears in the Predict list at once
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train a label-free model")
    train.signal_combo.setCurrentText("bright-field")
    for spin, v in zip(train.patch_spins, (16, 32, 32), strict=True):
        spin.setValue(v)
    train.iterations_spin.setValue(args.iterations)
    train.batch_spin.setValue(args.batch)
    train.depth_spin.setValue(3)
    train.width_spin.setValue(16)
    train.device_combo.setCurrentText("cpu")
    trained = []
    shot_taken = False
    for structure, cmap in MODELS:
        if is_bundle(models_dir / structure):
            print(f"reusing {models_dir / structure}")
            registry.add_folder(models_dir / structure)
            trained.append(models_dir / structure)
            continue
        train.target_combo.setCurrentText(f"{structure} (true)")
        train.structure_edit.setText(structure)
        train.colormap_combo.setCurrentText(cmap)
        train.out_edit.setText(str(models_dir / structure))
        t0 = time.perf_counter()
        train.train_btn.click()
        wait(lambda: not train.is_running)
        print(f"trained {structure} in {time.perf_counter() - t0:.0f} s -> {train.last_model}")
        trained.append(train.last_model)
        if not shot_taken:
            viewer.layers[f"{structure} (true)"].visible = True
            shot(viewer, "train")
            viewer.layers[f"{structure} (true)"].visible = False
            shot_taken = True
    close_docks(viewer)

    # 3. predict the z-stack with three models: the built-in ones where the package has them
    builtin = {b.spec.structure: b.path for b in discover_models() if b.source == "builtin"}
    chosen = [builtin[s] for s in BUILTIN_CHOICE if s in builtin]
    models = chosen if len(chosen) == len(BUILTIN_CHOICE) else trained
    print("predicting with", ", ".join(str(m) for m in models))
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Label-free prediction")
    predict.layer_combo.setCurrentText("bright-field")
    predict.set_checked_models(models)
    predict.device_combo.setCurrentText("cpu")
    predict.predict_btn.click()
    wait(lambda: not predict.is_running)
    viewer.reset_view()
    shot(viewer, "predict")

    # 4. time-lapse: predicted from the frame under the slider outwards, scrubbable while it runs
    viewer.layers.clear()
    viewer.open_sample(PLUGIN, "timelapse")
    viewer.dims.set_current_step(0, 4)
    viewer.dims.set_current_step(1, viewer.layers[0].data.shape[1] // 2)
    viewer.reset_view()
    predict.layer_combo.setCurrentText("bright-field")
    t0 = time.perf_counter()
    predict.predict_btn.click()
    run = predict.run
    wait(lambda: len(run.frames_done) >= 1)
    first = time.perf_counter() - t0
    shot(viewer, "timelapse_first_frame")
    wait(lambda: not predict.is_running)
    total = time.perf_counter() - t0
    viewer.dims.set_current_step(0, 6)
    shot(viewer, "timelapse")
    print(
        f"widget, time-lapse {run.scheduler.total} frames: first frame (t={run.frames_done[0]}) "
        f"after {first:.1f} s, all after {total:.1f} s; order {run.frames_done}"
    )
    n_empty = sum(
        int(not np.any(ly.data[t]))
        for ly in viewer.layers
        if ly.name.endswith("(predicted)")
        for t in range(ly.data.shape[0])
    )
    print(f"empty predicted frames at the end: {n_empty}")
    viewer.close()


if __name__ == "__main__":
    main()
