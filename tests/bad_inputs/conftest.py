"""Fixtures of the bad-input catalogue: shared inputs built once, a fresh working folder per case.

Every case runs ``labelfree`` in this process (``cli.main``) in a fresh working folder, with the
model search paths pointed inside it, and checks what a user relies on: a non-zero exit, one line
on stderr that says what happened (no traceback), and no file changed or appeared, inputs included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from bad_input_harness import break_model

from napari_labelfree.core import bundle as bundle_mod
from napari_labelfree.core.bundle import init_bundle
from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.io import write_ome_tiff


@dataclass
class Assets:
    """Files shared by every case (built once, read-only to the cases: snapshot checks it)."""

    root: Path
    model: Path  # a tiny untrained dna model, depth 1, width 2, 0.29 um voxels
    good: Path  # OME-TIFF TCZYX (1, 2, 8, 16, 16): "GFP", "bright-field", 0.29 um voxels
    plain: Path  # plain TIFF ZYX (8, 16, 16), no sizes
    zoo: Path  # a model folder for NAPARI_LABELFREE_MODELS: one good model, several broken


def _write_model(folder: Path, structure: str = "dna") -> Path:
    spec = ModelSpec(structure=structure, architecture=Architecture(depth=1, width=2))
    init_bundle(folder, spec)
    return folder


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Assets:
    root = tmp_path_factory.mktemp("assets")
    rng = np.random.default_rng(7)
    data = rng.normal(100, 10, size=(1, 2, 8, 16, 16)).astype(np.float32)
    good = write_ome_tiff(
        root / "good.ome.tif", data, None, ["GFP", "bright-field"], (0.29, 0.29, 0.29)
    )
    plain = root / "plain.tif"
    tifffile.imwrite(plain, data[0, 1])
    model = _write_model(root / "tiny")
    zoo = root / "zoo"
    zoo.mkdir()
    _write_model(zoo / "zoo-good", "zoo-structure")
    for how in ("not-json", "list", "no-weights"):
        break_model(_write_model(zoo / f"zoo-{how}"), how)
    # a temporary of a killed save: hidden, never a model
    _write_model(zoo / ".zoo-temp.host-123.abc.tmp")
    (zoo / "not-a-model").mkdir()  # any other folder: not listed at all
    return Assets(root, model, good, plain, zoo)


@pytest.fixture
def work(tmp_path, monkeypatch, assets):
    """A fresh working folder (the current directory), with the model search paths inside."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv(bundle_mod.ENV_VAR, str(assets.zoo))
    monkeypatch.setattr(bundle_mod, "user_models_dir", lambda: folder / "user-models")
    return folder
