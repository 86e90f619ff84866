"""A model recognises its own training images by name (core.trust.seen)."""

from __future__ import annotations

from napari_labelfree.core.config import ModelSpec
from napari_labelfree.core.trust.seen import image_key, learned_from, seen_note


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
