"""The Train widget adapts the built-in model of the structure by default and shows before/after."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_labelfree.core import bundle as bundle_mod
from napari_labelfree.core.bundle import open_bundle
from napari_labelfree.core.train.adapt import builtin_for

PLUGIN, TRAIN = "napari-labelfree", "Train a label-free model"
SCALE = (0.29, 0.29, 0.29)


def test_start_from_follows_the_structures_builtin_model(viewer_factory, monkeypatch):
    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    # the shipped models, which the widget tests otherwise hide (conftest's isolated_models)
    monkeypatch.setattr(bundle_mod, "BUILTIN_DIR", Path(bundle_mod.__file__).parents[1] / "models")
    viewer = viewer_factory()
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.structure.value = "tom20"
    assert train.start_from.value == str(builtin_for("tom20").path)
    train.structure.value = "my-organelle"  # no built-in model: a new network
    assert train.start_from.value is None
    train.structure.value = "dna"
    assert train.start_from.value == str(builtin_for("dna").path)


def test_adapting_shows_the_starting_and_adapted_scores_on_the_strip(
    viewer_factory, qtbot, tiny_models, monkeypatch
):
    monkeypatch.setattr("napari_labelfree._widgets._train.TrainWidget.estimate", lambda self: None)
    viewer = viewer_factory()
    rng = np.random.default_rng(0)
    signal = rng.normal(100, 10, (8, 32, 112)).astype(np.float32)  # wide enough for a strip
    viewer.add_image(3 * signal, name="Hoechst", scale=SCALE)
    viewer.add_image(signal, name="bright-field", scale=SCALE)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN)
    train.start_from.reset_choices()
    train.start_from.value = str(tiny_models[0].path)
    train.signal.value, train.target.value = "bright-field", "Hoechst"
    train.name.value = "dna-adapted"
    train.patch.value = "8, 16, 16"
    train.batch.value, train.iterations.value = 2, 2
    train.device.value = "cpu"
    train.train_btn.native.click()
    qtbot.waitUntil(lambda: not train.is_running, timeout=120_000)
    bundle = open_bundle(train.last_model)
    assert bundle.spec.metrics["val_source"] == "strip"
    text = train.status.text()
    assert "dna: r " in text and " -> adapted: r " in text and "on your held-out strip" in text
