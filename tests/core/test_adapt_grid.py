"""Fine-tuning on images coarser than the starting model's grid trains at their own voxel size."""

from __future__ import annotations

import math

import pytest

from napari_labelfree.core.bundle import open_bundle, resolve_model
from napari_labelfree.core.config import ModelSpec
from napari_labelfree.core.events import Notice
from napari_labelfree.core.synth import simulate
from napari_labelfree.core.train import ImagePair, TrainConfig, evaluate_model, iter_train
from napari_labelfree.core.train.init import adaptation_grid

COARSE = (1.0, 0.44, 0.44)  # the ISL field's grid: coarser than the built-ins' 0.29 um


def test_adaptation_grid_never_upsamples_and_keeps_the_model_grid_otherwise():
    model = (0.29, 0.29, 0.29)
    assert adaptation_grid(model, [COARSE]) == COARSE
    assert adaptation_grid(model, [(0.29, 0.108, 0.108)]) == model  # finer: downsampled as before
    assert adaptation_grid(model, [(2.0, 0.1, 0.5)]) == (2.0, 0.29, 0.5)  # per axis
    # several images: the finest of them is not upsampled
    assert adaptation_grid(model, [(2.0, 0.5, 0.5), (1.0, 0.44, 0.6)]) == (1.0, 0.44, 0.5)
    # an image of unknown voxel size is on the model's grid: the grid stays
    assert adaptation_grid(model, [COARSE, None]) == model
    assert adaptation_grid(model, []) == model


def coarse_pair(seed: int, name: str) -> ImagePair:
    im = simulate(shape=(16, 72, 72), voxel_size=COARSE, seed=seed, structures=("dna",))
    return ImagePair(im.data[0, 0], im.data[0, 1], COARSE, name)


@pytest.mark.slow
def test_fine_tuning_coarse_images_trains_at_their_grid_and_scores_before_after_alike(tmp_path):
    train, val = coarse_pair(401, "train"), coarse_pair(402, "val")
    builtin = resolve_model("dna")
    cfg = TrainConfig(iterations=2, batch_size=2, patch_shape=(16, 32, 32), seed=0)
    gen = iter_train([train], ModelSpec("dna"), tmp_path / "m", cfg, [val], "cpu", init="dna")
    events = list(gen)
    tuned = open_bundle(tmp_path / "m")
    assert tuned.spec.voxel_size_um == COARSE
    grid = tuned.spec.provenance["init"]["grid"]
    assert grid["starting_model_voxel_size_um"] == list(builtin.spec.voxel_size_um)
    assert any(isinstance(e, Notice) and "own voxel size" in e.text for e in events)
    # "before": the built-in model predicting the validation image as a user would (resampled to
    # its own grid and back), on the same voxels as the adapted model's "after"
    expected = evaluate_model(builtin, [val], "cpu")[0]["pearson_r"]
    before = tuned.spec.metrics["init_val_pearson_r_mean"]
    assert math.isclose(before, expected, abs_tol=1e-4), (before, expected)
