"""The Train dock widget: trains a tiny model, which then appears in the Predict widget's list."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_labelfree.core.bundle import open_bundle

PLUGIN, PREDICT, TRAIN = "napari-labelfree", "Label-free prediction", "Train a label-free model"

pytest.importorskip("napari_labelfree.core.train")
SCALE = (0.29, 0.29, 0.29)
TIMEOUT = 120_000


@pytest.fixture
def train_setup(viewer_factory, volume):
    viewer = viewer_factory()
    viewer.add_image(volume, name="bright-field", scale=SCALE)
    target = (volume > np.percentile(volume, 90)).astype(np.float32) * 100
    viewer.add_image(target, name="dna", scale=SCALE, colormap="blue")
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, PREDICT)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.structure_edit.setText("dna")
    train.colormap_combo.setCurrentText("cyan")
    for spin, v in zip(train.patch_spins, (8, 16, 16), strict=True):
        spin.setValue(v)
    train.batch_spin.setValue(2)
    train.depth_spin.setValue(2)
    train.width_spin.setValue(8)
    train.device_combo.setCurrentText("cpu")
    return viewer, predict, train


def test_train_a_tiny_model_and_it_appears_in_predict(train_setup, qtbot):
    viewer, predict, train = train_setup
    assert train.signal_combo.currentText() == "bright-field"
    assert train.target_combo.currentText() == "dna"
    train.iterations_spin.setValue(4)
    assert predict.model_paths() == []
    train.train_btn.click()
    assert train.is_running and train.stop_btn.isEnabled() and not train.train_btn.isEnabled()
    run = train.run
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)

    assert run.iterations == [1, 2, 3, 4]
    assert all(np.isfinite(run.losses))
    assert len(train.plot.train_line.get_xdata()) == 4  # the live loss plot has the points
    bundle = open_bundle(train.last_model)
    assert bundle.spec.structure == "dna" and bundle.spec.colormap == "cyan"
    assert bundle.spec.architecture.depth == 2
    assert str(bundle.path) in predict.model_paths()  # listed at once
    assert train.status.text().startswith("Done")
    assert train.train_btn.isEnabled() and not train.stop_btn.isEnabled()


def test_stop_keeps_a_usable_model(train_setup, qtbot):
    viewer, predict, train = train_setup
    train.iterations_spin.setValue(100_000)
    train.train_btn.click()
    run = train.run
    qtbot.waitUntil(lambda: len(run.iterations) >= 2, timeout=TIMEOUT)
    train.stop_btn.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=TIMEOUT)

    assert len(run.iterations) < 100_000
    bundle = open_bundle(train.last_model)
    assert bundle.spec.provenance.get("interrupted") is True
    assert str(bundle.path) in predict.model_paths()
    assert train.status.text().startswith("Stopped")

    # and it predicts
    predict.set_checked_models([bundle.path])
    for spin, v in zip(predict.tile_spins, (8, 16, 16), strict=True):
        spin.setValue(v)
    predict.layer_combo.setCurrentText("bright-field")
    predict.predict_btn.click()
    qtbot.waitUntil(lambda: not predict.is_running, timeout=TIMEOUT)
    assert "dna (predicted)" in viewer.layers


def test_same_layer_twice_gives_a_notification(train_setup):
    viewer, predict, train = train_setup
    train.target_combo.setCurrentText("bright-field")
    before = len(notification_manager.records)
    train.train_btn.click()
    assert not train.is_running
    errors = [str(r.message) for r in notification_manager.records[before:]]
    assert errors and "same layer" in errors[-1]
