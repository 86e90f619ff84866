"""Training-input statistics in config.json and the out-of-distribution warning of prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_labelfree.core.config import ModelSpec
from napari_labelfree.core.preprocess import normalize, to_model_grid
from napari_labelfree.core.synth import simulate
from napari_labelfree.core.trust.ood import DIFFERS, OK, UNKNOWN, check_input, has_statistics
from napari_labelfree.core.trust.stats import training_statistics

SHAPE = (32, 192, 192)
VOXEL = (0.29, 0.108, 0.108)
GRID = (0.29, 0.29, 0.29)


@pytest.fixture(scope="module")
def fields():
    """Four small simulated fields: bright-field and the DNA stain of each."""
    return [simulate(SHAPE, VOXEL, structures=["dna"], seed=s) for s in (100, 101, 102, 103, 104)]


@pytest.fixture(scope="module")
def stats(fields):
    """Statistics of three fields' bright-field on the model grid, as training keeps them."""
    return training_statistics(
        [to_model_grid(normalize(f.data[0, 0]), VOXEL, GRID) for f in fields[:4]]
    )


def test_statistics_are_a_few_dozen_numbers_that_go_through_json(stats):
    numbers = [v for g in stats["groups"].values() for vs in g.values() for v in vs]
    assert 20 <= len(numbers) <= 300  # compact: no pixels
    spec = ModelSpec("dna", input_statistics=stats)
    again = ModelSpec.from_json(spec.to_json())
    assert again.input_statistics == json.loads(json.dumps(stats))
    assert has_statistics(again)


def test_an_old_config_without_statistics_loads_and_stays_as_it_was():
    old = {"structure": "dna", "voxel_size_um": [0.29, 0.29, 0.29], "schema_version": 1}
    spec = ModelSpec.from_dict(old)
    assert spec.input_statistics is None and not has_statistics(spec)
    assert "input_statistics" not in spec.to_dict()  # nothing new written into an old config
    check = check_input(np.random.default_rng(0).random((8, 32, 32)), GRID, spec, "old")
    assert check.status == UNKNOWN
    assert "old" in check.text() and "cannot check" in check.text()


def test_a_held_out_bright_field_field_passes(fields, stats):
    spec = ModelSpec("dna", input_statistics=stats)
    check = check_input(fields[4].data[0, 0], VOXEL, spec, "dna")
    assert check.status == OK, check.scores
    assert check.text() == ""


def test_a_fluorescence_channel_as_input_is_named(fields, stats):
    spec = ModelSpec("dna", input_statistics=stats)
    check = check_input(fields[4].data[0, 1], VOXEL, spec, "dna")
    assert check.status == DIFFERS
    assert "intensity" in check.text() and "fluorescence" in check.text()
    assert check.text().startswith("model dna")


def test_a_voxel_size_wrong_by_3x_is_caught(fields, stats):
    spec = ModelSpec("dna", input_statistics=stats)
    wrong = (VOXEL[0], VOXEL[1] / 3, VOXEL[2] / 3)
    check = check_input(fields[4].data[0, 0], wrong, spec, "dna")
    assert check.status == DIFFERS
    assert "spatial frequencies" in check.text() and "voxel size" in check.text()
