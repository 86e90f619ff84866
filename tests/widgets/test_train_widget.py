"""The Train dock widget: trains a tiny model, which then appears in the Predict widget's list."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_labelfree._widgets._layers import META_KEY
from napari_labelfree._widgets._models import model_label
from napari_labelfree.core.bundle import open_bundle

PLUGIN, PREDICT, TRAIN = "napari-labelfree", "Label-free prediction", "Train a label-free model"
SCALE = (0.29, 0.29, 0.29)
TIMEOUT = 120_000


@pytest.fixture
def train_setup(viewer_factory, volume, monkeypatch):
    # no background time measurement in these tests (it would compete for the CPU)
    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    viewer = viewer_factory()
    target = (volume > np.percentile(volume, 90)).astype(np.float32) * 100
    viewer.add_image(target, name="Hoechst", scale=SCALE, colormap="blue")
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, PREDICT)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.structure.value = "dna"
    train.start_from.value = None  # a new network (by default the built-in dna model is adapted)
    train.patch.value = "8, 16, 16"
    train.batch.value = 2
    train.depth.value = 2
    train.width.value = 8
    train.device.value = "cpu"
    return viewer, predict, train


def _refused(train) -> list[str]:
    """Click Train where it must refuse: it does not start; the notifications it gave."""
    n = len(notification_manager.records)
    train.train_btn.native.click()
    assert not train.is_running
    return [str(r.message) for r in notification_manager.records[n:]]


def test_defaults_fit_a_cpu_and_colours_come_from_the_table(train_setup):
    viewer, predict, train = train_setup
    assert train.signal.value == "bright-field" and train.target.value == "Hoechst"
    assert train.colormap.value == "blue"  # dna, as the built-in model
    train.structure.value = "tom20"
    assert train.colormap.value == "green" and train.name.value == "tom20"
    from napari_labelfree.core.train_estimate import CPU_DEFAULTS, defaults_for

    assert defaults_for("cpu") == CPU_DEFAULTS
    assert CPU_DEFAULTS.depth < 4 and CPU_DEFAULTS.width < 32
    for control in (train.signal, train.target, train.structure, train.name, train.iterations):
        assert control.tooltip


def test_train_a_tiny_model_and_it_appears_in_predict(train_setup, qtbot, monkeypatch):
    viewer, predict, train = train_setup
    # the loss curve (training thread) and the live plot (GUI thread) draw at the same time:
    # neither may use matplotlib's mathtext parser, which is not thread-safe
    from matplotlib.mathtext import MathTextParser

    monkeypatch.setattr(MathTextParser, "parse", lambda *a, **k: pytest.fail("mathtext used"))
    train.iterations.value = 4
    assert predict.models.paths() == []
    train.train_btn.native.click()
    assert train.is_running and train.stop_btn.enabled and not train.train_btn.enabled
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)

    assert train.history["it"] == [1, 2, 3, 4]
    assert all(np.isfinite(train.history["loss"]))
    assert len(train.plot.train_line.get_xdata()) == 4  # the live loss plot has the points
    bundle = open_bundle(train.last_model)
    assert bundle.spec.structure == "dna" and bundle.spec.colormap == "blue"
    assert bundle.spec.architecture.depth == 2
    assert str(bundle.path) in predict.models.paths()  # listed at once, marked (user)
    assert train.status.text().startswith("Done")
    assert train.name.value == "dna-2"  # the next model gets a free name
    assert train.train_btn.enabled and not train.stop_btn.enabled


@pytest.fixture
def held_training(monkeypatch):
    """Training held after step 2 until released (so closing happens mid-training)."""
    import napari_labelfree.core.train as core_train

    real = core_train.iter_train
    reached, release = threading.Event(), threading.Event()

    def held(*args, **kwargs):
        gen = real(*args, **kwargs)
        try:
            for event in gen:
                yield event
                if type(event).__name__ == "TrainStep" and event.iteration == 2:
                    reached.set()
                    release.wait(30)
        except BaseException as e:  # closing: pass it on as the caller meant it
            gen.throw(e)
            raise
        finally:
            gen.close()

    monkeypatch.setattr(core_train, "iter_train", held)
    yield reached, release
    release.set()


def test_stop_at_the_next_step_keeps_a_usable_model(train_setup, qtbot, held_training):
    """Stop is taken at the next yield: the worker is held after step 2 until Stop is pressed."""
    reached, release = held_training
    viewer, predict, train = train_setup
    train.iterations.value = 100_000
    train.train_btn.native.click()
    qtbot.waitUntil(reached.is_set, timeout=TIMEOUT)
    train.stop_btn.native.click()
    release.set()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)

    assert train.history["it"][-1] <= 3
    bundle = open_bundle(train.last_model)
    assert bundle.spec.provenance.get("interrupted") is True
    assert str(bundle.path) in predict.models.paths()
    assert train.status.text().startswith("Stopped")


def test_a_name_in_use_is_refused_with_a_free_one_suggested(train_setup, tiny_models):
    viewer, predict, train = train_setup
    train.structure.value = "tom20"
    train.structure.value = "dna"
    assert train.name.value == "dna-2"  # "dna" is an existing model
    train.name.value = "dna"
    errors = _refused(train)
    assert errors and "exists already" in errors[-1] and "'dna-2'" in errors[-1]


def test_same_layer_twice_gives_a_notification(train_setup):
    viewer, predict, train = train_setup
    train.target.value = "bright-field"
    errors = _refused(train)
    assert errors and "same layer" in errors[-1]


def test_time_estimate_is_shown_before_training(viewer_factory, volume, qtbot, monkeypatch):
    monkeypatch.setattr(
        "napari_labelfree.core.train_estimate.seconds_per_iteration", lambda *a, **k: 0.5
    )
    viewer = viewer_factory()
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.iterations.value = 600
    train.estimate()
    qtbot.waitUntil(lambda: not train.estimator.running, timeout=TIMEOUT)
    assert train.estimate_label.value == "about 0.5 s per iteration: 600 iterations take ~5 min"


def test_start_from_a_model_fine_tunes_it(train_setup, qtbot, tiny_models):
    viewer, predict, train = train_setup
    train.start_from.reset_choices()
    base = tiny_models[0]
    assert str(base.path) in train.start_from.choices and train.start_from.value is None
    train.start_from.value = str(base.path)
    train.name.value = "dna-finetuned"
    train.iterations.value = 2
    train.depth.value, train.width.value = 3, 4  # the starting model's network wins
    train.train_btn.native.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    bundle = open_bundle(train.last_model)
    assert bundle.spec.architecture == base.spec.architecture
    assert bundle.spec.provenance["init"]


def test_closing_the_window_mid_training_asks_and_no_keeps_training(
    train_setup, qtbot, monkeypatch, held_training
):
    """A user closing the window is asked; No keeps the window and the training."""
    from napari_labelfree._widgets import _jobs

    reached, release = held_training
    asked = []
    monkeypatch.setattr(_jobs, "confirm_close", lambda parent, q: asked.append(q) or False)
    viewer, predict, train = train_setup
    train.iterations.value = 100_000
    train.train_btn.native.click()
    qtbot.waitUntil(reached.is_set, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: train.history["it"][-1:] == [2], timeout=TIMEOUT)  # shown in the GUI
    # the title bar's X sends a spontaneous Close event, which a test cannot make: the close
    # filter's callback is called as that event calls it
    assert train.runner._on_window_close(by_user=True) is False
    assert asked and "discard" in asked[-1] and "iteration 2/100000" in asked[-1]
    assert train.is_running  # No: still training
    train.stop_btn.native.click()
    release.set()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    assert open_bundle(train.last_model).spec.provenance.get("interrupted") is True


def test_closing_the_window_mid_training_discards_the_unfinished_model(
    train_setup, qtbot, held_training
):
    """Closing mid-training (Yes, or closed by a script) writes no model of 2 iterations."""
    reached, release = held_training
    viewer, predict, train = train_setup
    train.iterations.value = 100_000
    train.train_btn.native.click()
    qtbot.waitUntil(reached.is_set, timeout=TIMEOUT)
    out = train._out
    assert out.exists()  # the run's folder (log, checkpoints) is there while it trains
    n = len(notification_manager.records)
    release.set()
    viewer.close()  # not by the user: no question, the run is discarded
    assert not out.exists()
    assert not train.is_running and train.last_model is None
    messages = [str(r.message) for r in notification_manager.records[n:]]
    assert any("discarded" in m for m in messages)


def test_a_failed_training_leaves_no_empty_model_folder(train_setup, qtbot, monkeypatch):
    """A run that fails after its folder was made removes the folder (it holds no model)."""
    from napari_labelfree.core.train.engine import Engine

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure while building the network")

    monkeypatch.setattr(Engine, "build", broken)
    viewer, predict, train = train_setup
    train.iterations.value = 2
    train.train_btn.native.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    assert train._out.name == "dna" and not train._out.exists()
    assert train.status.text().startswith("Training failed; no model was written")
    assert train.last_model is None


def test_progress_shows_in_the_dock_not_in_napari_activity(train_setup, qtbot, held_training):
    """The bar is the dock's own (napari's activity bar animates a GIF that repaints the window)."""
    from napari.utils import progress

    reached, release = held_training
    viewer, predict, train = train_setup
    train.iterations.value = 50
    assert train.progress_bar.isHidden()
    train.train_btn.native.click()
    qtbot.waitUntil(reached.is_set, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: train.progress_bar.value() == 2, timeout=TIMEOUT)
    assert not train.progress_bar.isHidden() and train.progress_bar.maximum() == 50
    assert not progress._all_instances  # no napari progress bar is open
    train.stop_btn.native.click()
    release.set()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    assert train.progress_bar.isHidden()


@pytest.mark.parametrize("low, high", [(0.12, 0.25), (0.1401, 0.1422), (1e-5, 3e-3), (0.15, 0.9)])
def test_loss_plot_log_axis_labels_never_repeat(qtbot, low, high):
    """Each tick label in view reads differently ("2e-01, 2e-01, 1e-01" was shown)."""
    from napari_labelfree._widgets._loss_plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    its = list(range(1, 41))
    losses = list(np.geomspace(high, low, len(its)))
    plot.update_lines({"it": its, "loss": losses, "val_it": [], "val": []})
    lo, hi = plot.ax.get_ylim()
    ax = plot.ax
    labels = [
        t.get_text()
        for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True)
        if t.get_text() and lo <= t.get_position()[1] <= hi
    ]
    assert len(labels) >= 2
    assert len(set(labels)) == len(labels), labels


@pytest.mark.parametrize("kind, network", [("2d", "unet2d"), ("2.5d", "unet2.5d")])
def test_network_kind_trains_a_2d_or_25d_model(train_setup, qtbot, kind, network):
    """The Network choice is `labelfree train --kind`: a flat patch, a new network of that kind."""
    viewer, predict, train = train_setup
    train.kind.value = kind
    assert train.patch.value == "1, 128, 128" and train.start_from.value is None
    train.patch.value = "1, 16, 16"
    train.iterations.value = 2
    train.train_btn.native.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    bundle = open_bundle(train.last_model)
    assert bundle.spec.kind == network
    assert bundle.spec.architecture.in_planes == (5 if kind == "2.5d" else 1)
    train.kind.value = "3d"
    assert train.patch.value == "16, 64, 64"  # the CPU default back


def test_a_start_model_of_another_kind_is_refused(train_setup, tiny_models):
    viewer, predict, train = train_setup
    train.kind.value = "2d"
    train.start_from.reset_choices()
    train.start_from.value = str(tiny_models[0].path)  # a 3D model
    errors = _refused(train)
    assert errors and "3D network" in errors[-1] and "a new network" in errors[-1]


def test_estimate_times_the_network_that_will_train(
    viewer_factory, qtbot, monkeypatch, tiny_models
):
    """Fine-tuning trains the start model's network, not the form's: that one is timed."""
    timed = []

    def fake(spec, config, device="auto", steps=2):
        timed.append(spec.architecture)
        return 0.5

    monkeypatch.setattr("napari_labelfree.core.train_estimate.seconds_per_iteration", fake)
    viewer = viewer_factory()
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    qtbot.waitUntil(lambda: not train.estimator.running, timeout=TIMEOUT)
    train.depth.value, train.width.value = 3, 16
    train.start_from.reset_choices()
    train.start_from.value = str(tiny_models[0].path)  # depth 2, width 8
    timed.clear()
    train.estimate()
    qtbot.waitUntil(lambda: not train.estimator.running, timeout=TIMEOUT)
    assert timed and all(a == tiny_models[0].spec.architecture for a in timed)
    assert (train.depth.value, train.width.value) == (2, 8)  # the form shows that network
    train.depth.value, train.width.value = 3, 16
    train.start_from.value = None
    train.estimate()
    qtbot.waitUntil(lambda: not train.estimator.running, timeout=TIMEOUT)
    assert (timed[-1].depth, timed[-1].width) == (3, 16)


@pytest.mark.parametrize("planar", [True, False], ids=["2d-layer", "one-plane-stack"])
def test_a_one_plane_target_trains_the_whole_stack_against_it(train_setup, qtbot, volume, planar):
    """A maximum projection as the target (a z-stack and a projection, as the ISL data come;
    the reader opens a one-plane file as a 2D layer): the Network switches to the 2.5D one
    reading the whole stack, and training ends with the new model's score on the held-out
    strip."""
    viewer, predict, train = train_setup
    wide = np.concatenate([volume] * 4, axis=2)  # 8 x 32 x 128: wide enough for the strip
    viewer.add_image(wide, name="wide bright-field", scale=SCALE)
    if planar:
        viewer.add_image(wide.max(axis=0), name="DAPI projection", scale=SCALE[1:])
    else:
        viewer.add_image(wide.max(axis=0, keepdims=True), name="DAPI projection", scale=SCALE)
    train.signal.value, train.target.value = "wide bright-field", "DAPI projection"
    assert train.kind.value == "2.5d-projection" and train.start_from.value is None
    assert "one plane" in train.status.text()
    spec, _ = train._spec_and_config()
    assert (spec.kind, spec.architecture.in_planes, spec.target_projection) == (
        "unet2.5d",
        9,  # the stack's 8 planes, one end repeated (an odd window)
        "max",
    )
    train.patch.value = "1, 16, 16"
    train.iterations.value = 2
    train.train_btn.native.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    bundle = open_bundle(train.last_model)
    assert (bundle.spec.target_projection, bundle.spec.architecture.in_planes) == ("max", 9)
    assert bundle.spec.provenance["training_images"] == ["wide bright-field t=0"]
    assert bundle.spec.modality == "transmitted-light"  # its layers did not say which
    assert "new network: r " in train.status.text()
    assert "on your held-out strip" in train.status.text()


def test_a_one_plane_target_can_train_a_3d_network_adapting_a_start_model(
    train_setup, qtbot, volume, tiny_models, monkeypatch
):
    """The other network for a projection target: 3D, learning the plane at every plane of the
    stack. It takes a 3D patch and, being 3D, starts from the built-in model of the structure
    by default; trained from a 3D start, it ends with the before/after on the held-out strip and
    predicts one plane."""
    viewer, predict, train = train_setup
    start = str(tiny_models[0].path)  # stands for the built-in dna (a small 3D model, for time)
    monkeypatch.setattr("napari_labelfree._widgets._train.default_start", lambda s: start)
    wide = np.concatenate([volume] * 4, axis=2)  # 8 x 32 x 128: wide enough for the strip
    viewer.add_image(wide, name="wide bright-field", scale=SCALE)
    viewer.add_image(wide.max(axis=0), name="DAPI projection", scale=SCALE[1:])
    train.signal.value, train.target.value = "wide bright-field", "DAPI projection"
    assert train.kind.value == "2.5d-projection"
    train.kind.value = "3d-projection"
    assert train.patch.value == "16, 64, 64"  # a 3D patch (this machine: the CPU's)
    assert "at every plane" in train.status.text()
    assert train.start_from.value == start  # the structure's built-in, being 3D
    assert train.kind.value == "3d-projection"  # the one-plane target keeps the chosen network
    spec = train._trained_spec(train._spec_and_config()[0])
    assert (spec.kind, spec.target_projection) == ("unet3d", "max")
    train.patch.value = "4, 16, 16"
    train.iterations.value = 2
    train.train_btn.native.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    bundle = open_bundle(train.last_model)
    assert (bundle.spec.kind, bundle.spec.target_projection) == ("unet3d", "max")
    assert bundle.spec.provenance["init"]["model"] == tiny_models[0].name
    assert "-> adapted: r " in train.status.text()
    assert bundle.spec.kind_label == "3D (max-projection at every plane)"
    assert "3D (max-projection at every plane)" in model_label(bundle)  # the Predict list says it


def test_the_target_follows_the_signal_to_its_scene(
    viewer_factory, tmp_path, write_positions, monkeypatch
):
    """A multi-position file: the target stays the signal's scene (the same field)."""
    from napari_labelfree._reader import get_reader

    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    path = str(tmp_path / "wells.ome.tif")
    write_positions(path, n=2, shape=(8, 32, 32))
    viewer = viewer_factory()
    for data, kwargs, _ in get_reader(path)(path):
        viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    assert (train.signal.value, train.target.value) == (
        "wells [Position 1]: bright-field",
        "wells [Position 1]: DAPI",
    )
    train.signal.value = "wells [Position 2]: bright-field"
    assert train.target.value == "wells [Position 2]: DAPI"
    assert "of the signal's scene" in train.status.text()


def test_the_target_follows_the_signal_to_its_file(
    viewer_factory, tmp_path, write_positions, monkeypatch
):
    """Two files, each a field with bright-field and DAPI: the target is the signal's file's
    DAPI (the other file's is another field); with none in the signal's file, the other file's
    DAPI is refused in one line before anything is written."""
    from napari_labelfree._reader import get_reader

    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    viewer = viewer_factory()
    for name in ("one", "two"):
        path = str(tmp_path / f"{name}.ome.tif")
        write_positions(path, n=1, shape=(8, 32, 32))
        for data, kwargs, _ in get_reader(path)(path):
            viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.signal.value, train.target.value = "one: bright-field", "one: DAPI"
    train.signal.value = "two: bright-field"
    assert train.target.value == "two: DAPI"
    assert "of the signal's file" in train.status.text()
    viewer.layers.remove("two: DAPI")
    train.target.value = "one: DAPI"
    errors = _refused(train)
    assert errors and "one: DAPI is of another field" in errors[-1]
    assert not any(tmp_path.glob("user-models/*"))


def test_every_scene_of_a_plate_trains_together(
    viewer_factory, tmp_path, write_positions, monkeypatch, qtbot
):
    """A plate of three positions, each bright-field and DAPI: "Every scene of this file" trains
    one model on the three registered pairs (each scene with its own DAPI); unticked, on the
    chosen scene alone. Offered only where the pair is of a scene of a file."""
    import json

    from napari_labelfree._reader import get_reader

    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    viewer = viewer_factory()
    path = str(tmp_path / "plate.ome.tif")
    write_positions(path, n=3, shape=(8, 32, 48))
    for data, kwargs, _ in get_reader(path)(path):
        viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.start_from.value = None
    train.patch.value, train.batch.value = "8, 16, 16", 2
    train.depth.value, train.width.value, train.device.value = 2, 8, "cpu"
    train.iterations.value = 2
    train.signal.value = "plate [Position 2]: bright-field"
    train.target.value = "plate [Position 2]: DAPI"
    assert not train.every_scene.native.isHidden()
    assert "other 2 scenes" in train.every_scene.tooltip

    def trained(every: bool) -> list[str]:
        train.every_scene.value = every
        train.name.value = f"plate-{every}"
        train.train_btn.native.click()
        qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
        card = json.loads((Path(train.last_model) / "config.json").read_text())
        return card["provenance"]["training_images"]

    assert trained(True) == [
        f"plate [Position {k}]: bright-field t=0" for k in (2, 1, 3)
    ]  # the chosen scene first, then the file's order
    assert trained(False) == ["plate [Position 2]: bright-field t=0"]
    viewer.add_image(np.ones((8, 32, 48), np.float32), name="loose", scale=SCALE)
    train.signal.value = "loose"
    assert train.every_scene.native.isHidden()  # no scenes: nothing to offer


def test_positions_in_two_files_pair_scene_by_scene(viewer_factory, tmp_path, monkeypatch, qtbot):
    """Transmitted light and stain in two files of the same three positions (as `labelfree
    train` pairs them: scene k with scene k): the target follows the signal to its position, a
    stain of another position is refused, and every scene trains together."""
    import json

    import tifffile

    from napari_labelfree._reader import get_reader

    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    rng = np.random.default_rng(0)
    viewer = viewer_factory()
    for name, channel in (("cells", "bright-field"), ("stains", "DAPI")):
        path = tmp_path / f"{name}.ome.tif"
        with tifffile.TiffWriter(path, ome=True) as tw:
            for k in range(3):
                meta = {"axes": "ZYX", "Name": f"Position {k + 1}", "Channel": {"Name": [channel]}}
                meta.update(PhysicalSizeX=0.29, PhysicalSizeY=0.29, PhysicalSizeZ=0.29)
                tw.write(rng.random((8, 32, 48)).astype(np.float32) + k, metadata=meta)
        for data, kwargs, _ in get_reader(str(path))(str(path)):
            viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.start_from.value = None
    train.patch.value, train.batch.value, train.iterations.value = "8, 16, 16", 2, 2
    train.depth.value, train.width.value, train.device.value = 2, 8, "cpu"
    train.signal.value = "cells [Position 2]: bright-field"
    train.target.value = "stains [Position 2]: DAPI"
    assert "other 2 scenes" in train.every_scene.tooltip
    train.signal.value = "cells [Position 3]: bright-field"
    assert train.target.value == "stains [Position 3]: DAPI"  # followed to the same position
    train.target.value = "stains [Position 1]: DAPI"  # another position's stain
    assert train.target.value == "stains [Position 3]: DAPI"  # taken back to the signal's
    with train.target.changed.blocked():  # had it stayed, Train would refuse it in one line
        train.target.value = "stains [Position 1]: DAPI"
    errors = _refused(train)
    assert errors and "different scenes (Position 3, Position 1)" in errors[-1]
    train.target.value = "stains [Position 3]: DAPI"
    train.every_scene.value = True
    train.train_btn.native.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    card = json.loads((Path(train.last_model) / "config.json").read_text())
    assert card["provenance"]["training_images"] == [
        f"cells [Position {k}]: bright-field t=0" for k in (3, 1, 2)
    ]


def test_comparing_a_model_on_its_own_training_image_says_it_is_no_held_out_score(
    train_setup, qtbot, tiling_small
):
    """Train on a layer, predict that layer, compare with its stain: the score includes the
    training pixels, and the Compare text says so (and where the held-out score is); renamed,
    the layer keeps its pixels and the text still says so; another field's layer gets no note."""
    viewer, predict, train = train_setup
    train.iterations.value = 2
    train.train_btn.native.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)
    model = Path(train.last_model).name

    def compare(source: str) -> str:
        predict.image.value = source
        tiling_small(predict)
        predict.models.set_checked([str(train.last_model)])
        predict.predict_btn.native.click()
        qtbot.waitUntil(lambda: not predict.is_running, timeout=TIMEOUT)
        (pair,) = [
            c
            for c, (pred, _) in predict.trust.pairs().items()
            if pred.metadata[META_KEY]["source"] == source
        ]
        predict.trust.stain.value = pair
        return predict.trust.compare()

    assert f"{model} learned from an image of this name (bright-field)" in compare("bright-field")
    viewer.layers["bright-field"].name = "bright-field 2"  # same pixels, a name it never saw
    text = compare("bright-field 2")
    assert f"{model} learned from these very pixels (its training image bright-field)" in text
    other = np.flip(viewer.layers["bright-field 2"].data, axis=2).copy()  # another field
    viewer.add_image(other, name="bright-field 3", scale=SCALE)
    assert "learned from" not in compare("bright-field 3")


def test_a_new_network_gets_the_devices_sizes_not_the_start_models(
    viewer_factory, volume, monkeypatch, tiny_models
):
    """A start model puts its network in the form (the built-in dna is adapted by default); back
    to a new network (chosen, or the 2.5D one taken by itself for a projection target), the form
    shows the device's sizes for a new network, unless the user typed their own."""
    from napari_labelfree.core.train_estimate import CPU_DEFAULTS

    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    # a CPU-only machine, whatever this one has (a GPU found would bring the GPU's sizes)
    monkeypatch.setattr(
        "napari_labelfree._widgets._train.load_devices", lambda then: then(["auto", "cpu"])
    )
    viewer = viewer_factory()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    viewer.add_image(volume, name="Hoechst", scale=SCALE)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    new = (CPU_DEFAULTS.depth, CPU_DEFAULTS.width)
    start = tiny_models[0]  # depth 2, width 8, as the built-in's 8
    train.start_from.reset_choices()
    train.start_from.value = str(start.path)
    assert (train.depth.value, train.width.value) == (2, 8) != new
    viewer.add_image(volume.max(axis=0), name="DAPI", scale=SCALE[1:])
    train.target.value = "DAPI"  # one plane: the 2.5D network, new
    assert train.kind.value == "2.5d-projection" and train.start_from.value is None
    assert (train.depth.value, train.width.value) == new
    train.kind.value = "3d"
    train.start_from.value = str(start.path)
    train.width.value = 12  # the user's own
    train.start_from.value = None
    assert (train.depth.value, train.width.value) == (2, 12)


@pytest.mark.parametrize("found", [["auto", "cpu"], ["auto", "cpu", "cuda:0"]])
def test_back_to_3d_the_patch_fits_the_device_that_will_train(
    viewer_factory, volume, monkeypatch, found
):
    """Device "auto" trains on a GPU only where the probe found one: back from a flat network,
    the 3D patch is the CPU's on a machine without (it was the GPU's 32x64x64 on every machine),
    and the CPU's whenever the user chose the CPU."""
    from napari_labelfree.core.train_estimate import CPU_DEFAULTS, GPU_DEFAULTS

    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    monkeypatch.setattr("napari_labelfree._widgets._train.load_devices", lambda then: then(found))
    viewer = viewer_factory()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    gpu = "cuda:0" in found
    for device, sizes in (("auto", GPU_DEFAULTS if gpu else CPU_DEFAULTS), ("cpu", CPU_DEFAULTS)):
        train.device.value = device
        train.kind.value = "2d"
        train.kind.value = "3d"
        assert train.patch.value == ", ".join(map(str, sizes.patch_shape)), device


@pytest.mark.parametrize("user", ["chose the cpu", "typed a batch size, took a flat network"])
def test_the_device_probe_answering_late_keeps_what_the_user_chose(
    viewer_factory, volume, monkeypatch, user
):
    """torch's import takes seconds; a GPU found after the user chose the CPU, typed a batch size
    or took a flat network leaves those alone (the GPU's sizes and 3D patch replaced them)."""
    from napari_labelfree.cli._kind import FLAT_PATCH
    from napari_labelfree.core.train_estimate import CPU_DEFAULTS, GPU_DEFAULTS

    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    answers = []
    monkeypatch.setattr("napari_labelfree._widgets._train.load_devices", answers.append)
    viewer = viewer_factory()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.start_from.value = None  # a new network: the form shows the device's sizes
    if user == "chose the cpu":
        train.device.value = "cpu"
        answers[-1](["auto", "cpu", "cuda:0"])
        assert train.device.value == "cpu"
        assert (train.width.value, train.batch.value) == (
            CPU_DEFAULTS.width,
            CPU_DEFAULTS.batch_size,
        )
        assert train.patch.value == ", ".join(map(str, CPU_DEFAULTS.patch_shape))
    else:
        train.batch.value = 2
        train.kind.value = "2d"
        train.start_from.value = None
        answers[-1](["auto", "cpu", "cuda:0"])  # "auto" will train on the GPU
        assert (train.depth.value, train.width.value) == (GPU_DEFAULTS.depth, GPU_DEFAULTS.width)
        assert train.batch.value == 2
        assert train.patch.value == ", ".join(map(str, FLAT_PATCH))
