"""The automatic validation strip and the before/after line of fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest

from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.events import Notice
from napari_labelfree.core.train import ImagePair, TrainConfig, iter_train
from napari_labelfree.core.train.adapt import before_after, builtin_for
from napari_labelfree.core.train.holdout import hold_out_strips, strip_width


def pair(width: int, seed: int = 0) -> ImagePair:
    rng = np.random.default_rng(seed)
    sig = rng.normal(size=(8, 32, width)).astype(np.float32)
    return ImagePair(sig, 2 * sig + 1, None, "field")


def test_strip_is_the_right_end_with_a_gap_and_leaves_no_pixel_twice():
    p = pair(200)
    train, val, msg = hold_out_strips([p], 0.15, patch_x=16, model_voxel_x=1.0)
    assert len(train) == len(val) == 1
    strip, gap = 30, 7
    assert val[0].signal.shape[-1] == strip
    assert train[0].signal.shape[-1] == 200 - strip - gap
    np.testing.assert_array_equal(val[0].signal, p.signal[..., -strip:])
    np.testing.assert_array_equal(train[0].target, p.target[..., : 200 - strip - gap])
    assert "holding out the right 15%" in msg
    assert "--val" not in msg  # said in the Train widget too: the command line adds its options


def test_strip_is_at_least_a_patch_wide_in_the_images_own_pixels():
    # the model works at 0.3 um, the image has 0.1 um pixels: a 16-voxel patch is 48 pixels
    sig = pair(400).signal
    p = ImagePair(sig, sig, (1.0, 0.1, 0.1), "x")
    _, val, _ = hold_out_strips([p], 0.05, patch_x=16, model_voxel_x=0.3)
    assert val[0].signal.shape[-1] == 48


def test_too_narrow_an_image_trains_whole_and_says_so():
    train, val, msg = hold_out_strips([pair(40)], 0.15, patch_x=16, model_voxel_x=1.0)
    assert val == [] and train[0].signal.shape[-1] == 40
    assert "too narrow" in msg
    assert strip_width(40, 0.15, 16) is None


def test_the_strip_is_a_training_setting_and_the_paper_recipe_has_none():
    assert TrainConfig().val_strip == pytest.approx(0.15)
    assert TrainConfig.paper().val_strip == 0.0
    with pytest.raises(Exception, match="validation strip"):
        TrainConfig(val_strip=0.6)


def _train(tmp_path, name, cfg, **kw):
    spec = ModelSpec(
        "dna", voxel_size_um=(1.0, 1.0, 1.0), architecture=Architecture(depth=2, width=4)
    )
    events = []
    gen = iter_train([pair(160)], spec, tmp_path / name, cfg, device="cpu", **kw)
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return stop.value, [e.text for e in events if isinstance(e, Notice)]


def test_training_without_validation_holds_out_a_strip_and_scores_it(tmp_path):
    cfg = TrainConfig(iterations=2, batch_size=2, patch_shape=(8, 16, 16), validate_every=1)
    bundle, notes = _train(tmp_path, "strip", cfg)
    assert any("validation strip" in n for n in notes)
    m = bundle.spec.metrics
    assert m["val_source"] == "strip"
    assert bundle.spec.provenance["n_val_images"] == 1
    assert m["val_pearson_r_mean"] is not None and m["best_iteration"] in (1, 2)


def test_the_strip_can_be_turned_off(tmp_path):
    cfg = TrainConfig(iterations=1, batch_size=2, patch_shape=(8, 16, 16), val_strip=0.0)
    bundle, notes = _train(tmp_path, "off", cfg)
    assert not any("validation strip" in n for n in notes)
    assert bundle.spec.provenance["n_val_images"] == 0
    assert "val_pearson_r_mean" not in bundle.spec.metrics


def test_fine_tuning_reports_the_starting_model_on_the_same_strip(tmp_path):
    cfg = TrainConfig(iterations=2, batch_size=2, patch_shape=(8, 16, 16))
    start, _ = _train(tmp_path, "start", cfg)
    tuned, _ = _train(tmp_path, "tuned", cfg, init=start.path)
    m = tuned.spec.metrics
    assert m["init_model"] == "start"
    assert -1.0 <= m["init_val_pearson_r_mean"] <= 1.0
    line = before_after(m)
    assert line == (
        f"start: r {m['init_val_pearson_r_mean']:.2f} -> adapted: "
        f"r {m['val_pearson_r_mean']:.2f} on your held-out strip"
    )
    assert before_after(start.spec.metrics) is None  # trained from scratch: nothing to compare


def test_builtin_for_finds_the_shipped_model_of_a_structure():
    assert builtin_for("DNA").spec.structure == "dna"
    assert builtin_for("no-such-structure") is None
