"""Widget-test fixtures: isolated model folders, tiny models, widgets opened as the Plugins menu does."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_labelfree._widgets import registry
from napari_labelfree.core import bundle as bundle_mod
from napari_labelfree.core.bundle import init_bundle
from napari_labelfree.core.config import Architecture, ModelSpec

PLUGIN = "napari-labelfree"
PREDICT = "Label-free prediction"
TRAIN = "Train a label-free model"


@pytest.fixture(autouse=True)
def isolated_models(tmp_path, monkeypatch):
    """Only the models a test makes are discovered (no user folder, no environment variable)."""
    user = tmp_path / "user-models"
    user.mkdir()
    monkeypatch.setattr(bundle_mod, "user_models_dir", lambda: user)
    monkeypatch.setattr(bundle_mod, "BUILTIN_DIR", tmp_path / "no-builtin")
    env = tmp_path / "env-models"
    env.mkdir()
    monkeypatch.setenv(bundle_mod.ENV_VAR, str(env))
    # the session-wide registry must not carry folders added by an earlier test
    monkeypatch.setattr(registry, "_extra", [])
    return env


@pytest.fixture
def tiny_models(isolated_models):
    """Two tiny untrained models (depth 2, width 8) in the environment-variable folder."""
    made = []
    for i, (structure, cmap) in enumerate((("dna", "blue"), ("lamin-b1", "magenta"))):
        spec = ModelSpec(
            structure=structure,
            colormap=cmap,
            voxel_size_um=(0.29, 0.29, 0.29),
            architecture=Architecture(depth=2, width=8),
        )
        made.append(init_bundle(isolated_models / structure, spec, seed=i))
    return made


@pytest.fixture
def volume():
    """A small bright-field-like ZYX volume (smooth blobs plus noise)."""
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:8, 0:32, 0:32]
    blobs = np.exp(-(((y - 16) ** 2 + (x - 12) ** 2) / 40.0 + (z - 4) ** 2 / 8.0))
    return (100 + 50 * blobs + rng.normal(0, 2, size=blobs.shape)).astype(np.float32)


def flush_deferred_deletes() -> None:
    """Run pending deleteLater()s now.

    napari's activity dialog connects each progress bar's ``destroyed`` signal to itself; a bar
    whose deletion is still pending when the viewer closes calls into a deleted dialog (a
    segfault). A user never closes the window within the same event-loop turn; a test does.

    (Nested bars, ``progress(nest_under=...)``, segfault in napari 0.9.2 + PyQt6 6.11 whenever they
    are deleted, even with the viewer open: ``f = progress(total=3); t = progress(total=2,
    nest_under=f); t.close(); f.close()`` then deleting them. The widgets therefore do not nest.)
    """
    from qtpy.QtCore import QCoreApplication, QEvent

    app = QCoreApplication.instance()
    if app is not None:
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        app.processEvents()


@pytest.fixture
def viewer_factory(make_napari_viewer):
    """make_napari_viewer that lets progress bars finish deleting before the viewers close."""
    yield make_napari_viewer
    flush_deferred_deletes()


@pytest.fixture
def open_predict(viewer_factory):
    """Factory: a viewer and its Predict widget, opened through the Plugins-menu path."""

    def make(**viewer_kwargs):
        viewer = viewer_factory(**viewer_kwargs)
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, PREDICT)
        return viewer, widget

    return make


@pytest.fixture
def tiling_small():
    """Advanced settings for small tests: fp32 on the CPU, tiles that cut 8x32x32 into several."""

    def apply(widget, tile=(16, 16, 16)):
        widget.tile.value = ", ".join(map(str, tile))
        widget.device.value = "cpu"
        widget.precision = "fp32"  # outputs are compared: the same numbers on every CPU

    return apply


class Gate:
    """Holds the prediction worker after each finished frame until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.frames = 0

    def wait(self) -> None:
        if not self.release.wait(30):
            raise TimeoutError("the test never released the prediction worker")


@pytest.fixture
def gate(monkeypatch):
    """Every plan made while it is active pauses after each FrameDone until ``gate.release``."""
    import napari_labelfree.core.predict.plan as core_predict
    from napari_labelfree.core.events import FrameDone

    real = core_predict.plan_prediction
    g = Gate()

    def plan_prediction(*args, **kwargs):
        plan = real(*args, **kwargs)
        frames = plan.iter_frames

        def iter_frames(scheduler=None):
            for event in frames(scheduler):
                yield event
                if isinstance(event, FrameDone):
                    g.frames += 1
                    g.wait()

        plan.iter_frames = iter_frames
        return plan

    monkeypatch.setattr(core_predict, "plan_prediction", plan_prediction)
    yield g
    g.release.set()
