"""Fine-tuning: training starts from a model's weights, architecture, voxel size and normalization."""

from __future__ import annotations

import pytest

from napari_labelfree.core.bundle import resolve_model
from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.synth import simulate
from napari_labelfree.core.train import ImagePair, TrainConfig, evaluate_model, iter_train

SIM_VOXEL = (0.29, 0.108, 0.108)


def field(seed: int) -> ImagePair:
    im = simulate(shape=(32, 96, 96), voxel_size=SIM_VOXEL, seed=seed, structures=("dna",))
    return ImagePair(im.data[0, 0], im.data[0, 1], SIM_VOXEL, f"seed {seed}")


@pytest.mark.slow
def test_fine_tuning_the_builtin_dna_model_beats_training_from_scratch(tmp_path):
    new_field, held_out = field(301), field(302)  # fields no built-in model was trained on
    builtin = resolve_model("dna")
    # the user's spec asks for another network and grid: fine-tuning takes the model's instead
    spec = ModelSpec("dna", voxel_size_um=(0.5, 0.5, 0.5), architecture=Architecture(depth=2))
    cfg = TrainConfig(iterations=8, batch_size=4, patch_shape=(16, 32, 32), seed=0)
    tuned = drain(iter_train([new_field], spec, tmp_path / "tuned", cfg, device="cpu", init="dna"))
    assert tuned.spec.architecture == builtin.spec.architecture
    assert tuned.spec.voxel_size_um == builtin.spec.voxel_size_um
    assert tuned.spec.normalization == builtin.spec.normalization
    assert tuned.spec.provenance["init"]["model"] == "dna"
    assert tuned.spec.provenance["init"]["source"] == "builtin"

    scratch_spec = ModelSpec(
        "dna", voxel_size_um=builtin.spec.voxel_size_um, architecture=builtin.spec.architecture
    )
    scratch = drain(iter_train([new_field], scratch_spec, tmp_path / "scratch", cfg, device="cpu"))
    r_tuned = evaluate_model(tuned, [held_out], "cpu")[0]["pearson_r"]
    r_scratch = evaluate_model(scratch, [held_out], "cpu")[0]["pearson_r"]
    assert r_tuned > r_scratch + 0.1, (r_tuned, r_scratch)


def test_unknown_starting_model_is_refused(tmp_path):
    spec = ModelSpec("dna", architecture=Architecture(depth=2, width=4))
    with pytest.raises(LabelFreeError, match="no model folder or known model"):
        drain(iter_train([field(1)], spec, tmp_path / "m", TrainConfig(iterations=1), init="nope"))
