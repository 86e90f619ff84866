"""A prediction against a real stain (core.trust.compare): shapes that are one field, and a
one-plane stain (a maximum projection) compared with a plane or a stack's projection."""

from __future__ import annotations

import numpy as np
import pytest

from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.trust.compare import comparable, compare_with_stain


def test_shapes_of_one_field():
    assert comparable((8, 32, 40), (8, 32, 40))
    assert comparable((8, 32, 40), (1, 32, 40))  # a stack against a projection
    assert comparable((32, 40), (1, 32, 40)) and comparable((1, 32, 40), (32, 40))
    assert not comparable((8, 32, 40), (4, 32, 40))  # another stack
    assert not comparable((8, 32, 40), (1, 32, 41))  # another field
    assert not comparable((3, 8, 32, 40), (1, 32, 40))  # a time-lapse: frame by frame, not here


def test_a_one_plane_stain_against_a_plane_and_against_a_stacks_projection():
    rng = np.random.default_rng(0)
    stack = rng.random((6, 24, 30)).astype(np.float32)
    stain = 5 * stack.max(axis=0, keepdims=True) + 100  # camera counts of the projection
    plane = compare_with_stain(stack.max(axis=0), stain)  # a 2.5D model's one plane
    assert not plane.projected and plane.pearson_r == pytest.approx(1.0, abs=1e-5)
    assert plane.error.shape == (24, 30) and np.abs(plane.error).max() < 1e-4
    projected = compare_with_stain(stack, stain)
    assert projected.projected and projected.pearson_r == pytest.approx(1.0, abs=1e-5)
    assert projected.text("dna", "DAPI").startswith("the maximum projection of dna against DAPI")
    with pytest.raises(LabelFreeError, match="differ in shape"):
        compare_with_stain(stack, stain[:, :, :-1])
