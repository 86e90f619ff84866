"""The one structure table: every place that colours a structure agrees with it."""

from __future__ import annotations

import json

import pytest

from napari_labelfree.core import structures
from napari_labelfree.core.bundle import BUILTIN_DIR
from napari_labelfree.core.structures import (
    TRANSMITTED_COLORMAP,
    colormap_for,
    find_structure,
    fluorescence_colormaps,
    looks_transmitted,
    rgb_for,
)
from napari_labelfree.core.synth import STRUCTURES


def test_every_simulated_structure_has_a_distinct_colour():
    colours = [colormap_for(s, default="none") for s in STRUCTURES]
    assert "none" not in colours
    assert len(set(colours)) == len(colours)
    assert all(rgb_for(c) != rgb_for("gray") for c in colours)  # the montage can tell them apart


def test_built_in_models_use_the_table_colours():
    configs = sorted(BUILTIN_DIR.glob("*/config.json"))
    if not configs:
        pytest.skip("no built-in models in this checkout")
    for path in configs:
        spec = json.loads(path.read_text(encoding="utf-8"))
        assert spec["colormap"] == colormap_for(spec["structure"]), path
        assert spec["colormap"] in structures.COLORMAP_CHOICES


@pytest.mark.parametrize(
    ("name", "structure"),
    [
        ("dna", "dna"),
        ("Hoechst 33342", "dna"),
        ("DAPI", "dna"),
        ("Lamin-B1", "lamin-b1"),
        ("nuclear_envelope", "lamin-b1"),
        ("mEGFP-Tom20 (predicted)", "tom20"),
        ("Sec61 beta", "sec61b"),
        ("CellMask Deep Red", "cellmask"),
        ("golgi", "st6gal1"),  # the paper's Golgi marker
        ("vimentin", None),
        ("EGFP", None),
    ],
)
def test_channel_names_find_their_structure(name, structure):
    found = find_structure(name)
    assert (found.name if found else None) == structure


@pytest.mark.parametrize(
    "name", ["bright-field", "Brightfield", "TL Brightfield", "DIC", "Phase contrast", "BF1", "TL"]
)
def test_transmitted_light_names(name):
    assert looks_transmitted(name)


@pytest.mark.parametrize("name", ["dna", "Hoechst", "BFP", "mTagBFP2", "EGFP", "tom20", "ER"])
def test_fluorescence_names_are_not_transmitted(name):
    assert not looks_transmitted(name)


def test_unknown_fluorescence_channels_get_colours_the_known_ones_do_not_use():
    colours = fluorescence_colormaps(["EGFP", "DAPI", "mCherry"])
    assert colours[1] == colormap_for("dna")
    assert len(set(colours)) == 3
    assert TRANSMITTED_COLORMAP not in colours


def test_a_new_model_takes_its_structure_colour(tmp_path):
    from napari_labelfree.cli import main

    out = tmp_path / "hoechst-model"
    args = ["init-model", str(out), "--structure", "Hoechst", "--depth", "2", "--width", "8"]
    assert main(args) == 0
    spec = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert spec["colormap"] == colormap_for("dna") == "blue"
