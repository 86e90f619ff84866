"""The npe2 manifest is valid and every python_name it declares imports."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "napari_labelfree" / "napari.yaml"


def _npe2() -> list[str]:
    exe = shutil.which("npe2") or str(Path(sys.executable).with_name("npe2"))
    return [exe]


def test_npe2_validate_passes():
    proc = subprocess.run(
        [*_npe2(), "validate", "napari-labelfree"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


def test_npe2_validate_with_imports_passes():
    proc = subprocess.run(
        [*_npe2(), "validate", "napari-labelfree", "--imports"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "command",
    [c for c in yaml.safe_load(MANIFEST.read_text())["contributions"]["commands"]],
    ids=lambda c: c["id"],
)
def test_every_python_name_resolves(command):
    module, _, attr = command["python_name"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_widget_factories_take_the_viewer():
    """napari hands the viewer to a callable whose __init__ has a ``napari_viewer`` parameter."""
    import inspect

    from napari_labelfree import _widgets

    for factory in (_widgets.make_predict_widget, _widgets.make_train_widget):
        assert "napari_viewer" in inspect.signature(factory.__init__).parameters


def test_on_activate_resolves():
    """npe2 calls it on the plugin's first use: it makes the reader the remembered one."""
    module, _, attr = yaml.safe_load(MANIFEST.read_text())["on_activate"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
