"""A model recognises its own training images by name and by their pixels (core.trust.seen)."""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_labelfree.core.config import ModelSpec
from napari_labelfree.core.trust.seen import (
    image_key,
    learned_from,
    learned_pixels,
    pixel_fingerprint,
    seen_note,
    training_pixels,
)


def _spec(names, **metrics) -> ModelSpec:
    spec = ModelSpec(structure="dna")
    spec.provenance["training_images"] = names
    spec.metrics.update(metrics)
    return spec


def test_a_training_name_stands_for_its_signal_image_and_scene():
    assert image_key("cells: bright-field t=0") == "cells: bright-field"
    assert image_key("a.ome.tif|b.ome.tif [Position 2] t=3") == "a.ome.tif [Position 2]"
    assert image_key("a.ome.tif|b.ome.tif") == "a.ome.tif"
    assert image_key("field.czi") == "field.czi"


def test_an_image_is_recognised_by_its_layer_or_file_name_and_scene():
    spec = _spec(["cells: bright-field t=0", "wells.ome.tif|dapi.ome.tif [Position 2] t=1"])
    assert learned_from(spec, ["cells: bright-field"]) == "cells: bright-field"
    assert learned_from(spec, ["other layer", "wells.ome.tif [Position 2]"]) == (
        "wells.ome.tif [Position 2]"
    )
    assert learned_from(spec, ["wells.ome.tif [Position 1]"]) is None  # another position
    assert learned_from(spec, ["cells: DAPI", None]) is None
    assert learned_from(ModelSpec(structure="dna"), ["cells: bright-field"]) is None  # unrecorded


def test_the_note_points_to_the_held_out_strip_score_where_there_is_one():
    strip = _spec(["x t=0"], val_pearson_r_mean=0.7234, val_source="strip")
    assert "held out of it: r 0.72" in seen_note("dna-2", strip, "x")
    given = _spec(["x t=0"], val_pearson_r_mean=0.9, val_source="given")
    note = seen_note("dna-2", given, "x")
    assert note.startswith("dna-2 learned from an image of this name (x)") and "0.9" not in note


def test_several_images_make_one_sentence():
    spec = _spec(["a.tif", "b.tif", "c.tif", "d.tif"], val_pearson_r_mean=0.5, val_source="strip")
    note = seen_note("m", spec, ["a.tif", "b.tif", "c.tif", "d.tif"])
    assert note.startswith(
        "m learned from 4 images of these names (a.tif, b.tif, c.tif and 1 more)"
    )
    assert "so they say little" in note and "held out of them: r 0.50" in note


def test_the_same_pixels_have_the_same_fingerprint_however_they_are_held():
    """A file read again, a lazy (dask) layer, float32 after reading, a 2D plane as a one-plane
    stack: one fingerprint. Another field, a crop or a change on the sampled grid: another."""
    rng = np.random.default_rng(0)
    image = (rng.random((20, 100, 90)) * 4000).astype(np.uint16)
    same = pixel_fingerprint(image)
    assert pixel_fingerprint(image.astype(np.float32)) == same
    assert pixel_fingerprint(da.from_array(image, chunks=(4, 32, 32))) == same
    assert pixel_fingerprint(image[3]) == pixel_fingerprint(image[3:4])  # YX as (1, Y, X)
    changed = image.copy()
    changed[0, 0, 0] += 1  # the grid's first voxel
    others = [image[::-1], image[:, :, :89], changed, (rng.random((20, 100, 90)) * 4000)]
    assert len({same, *(pixel_fingerprint(o) for o in others)}) == 5


def test_a_model_recognises_its_training_pixels_under_another_name():
    rng = np.random.default_rng(1)
    a, b = rng.random((8, 32, 32)), rng.random((8, 32, 32))
    spec = _spec(["cells: bright-field t=0"], val_pearson_r_mean=0.7234, val_source="strip")
    spec.provenance["training_pixels"] = training_pixels(["cells: bright-field t=0"], [a])
    assert learned_pixels(spec, [pixel_fingerprint(b), pixel_fingerprint(a)]) == (
        "cells: bright-field"
    )
    assert learned_pixels(spec, [pixel_fingerprint(b)]) is None
    assert learned_pixels(_spec(["x"]), [pixel_fingerprint(a)]) is None  # none recorded
    note = seen_note("dna-2", spec, "cells: bright-field", same_pixels=True)
    assert note.startswith(
        "dna-2 learned from these very pixels (its training image cells: bright-field): the "
        "score includes the pixels it was trained on"
    )
    assert note.endswith("held out of it: r 0.72")


def test_training_keeps_its_images_fingerprints(tmp_path):
    """The trainer records each named training image's fingerprint in the model's provenance."""
    from napari_labelfree.core.config import Architecture
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.train import ImagePair, TrainConfig, iter_train

    rng = np.random.default_rng(2)
    pairs = [
        ImagePair(rng.random((8, 32, 32), dtype=np.float32), rng.random((8, 32, 32)), None, n)
        for n in ("a.tif t=0", "a.tif t=1")
    ]
    spec = ModelSpec(structure="dna", architecture=Architecture(depth=1, width=4))
    config = TrainConfig(iterations=1, batch_size=1, patch_shape=(8, 16, 16), val_strip=0)
    bundle = drain(iter_train(pairs, spec, tmp_path / "m", config, device="cpu"))
    kept = bundle.spec.provenance["training_pixels"]
    assert kept == {pixel_fingerprint(p.signal): p.name for p in pairs}
    assert learned_pixels(bundle.spec, [pixel_fingerprint(pairs[1].signal)]) == "a.tif"


def test_a_fine_tuned_model_learned_from_its_starting_models_images_too(tmp_path):
    """Fine-tuned on b from a model trained on a, a model has learned from a as well: by name and
    by pixels; the note then leaves out its own strip's score (held out of b, not of a)."""
    from napari_labelfree.core.config import Architecture
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.train import ImagePair, TrainConfig, iter_train

    rng = np.random.default_rng(3)
    a, b = (rng.random((8, 32, 64), dtype=np.float32) for _ in range(2))
    spec = ModelSpec(structure="dna", architecture=Architecture(depth=1, width=4))
    config = TrainConfig(iterations=1, batch_size=1, patch_shape=(8, 16, 16))
    first = drain(iter_train([ImagePair(a, a, None, "a.tif")], spec, tmp_path / "m1", config))
    second = drain(
        iter_train([ImagePair(b, b, None, "b.tif")], spec, tmp_path / "m2", config, init=first)
    )
    assert second.spec.provenance["training_images"] == ["b.tif"]  # its own, as the card says
    assert learned_from(second.spec, ["a.tif"]) == "a.tif"
    assert learned_pixels(second.spec, [pixel_fingerprint(a)]) == "a.tif"
    assert "held out" in seen_note("m2", second.spec, "b.tif")  # its own strip (of b)
    assert "held out" not in seen_note("m2", second.spec, "a.tif")
    third = drain(
        iter_train([ImagePair(b, b, None, "c.tif")], spec, tmp_path / "m3", config, init=second)
    )
    assert learned_from(third.spec, ["a.tif"]) == "a.tif"  # through two starts
