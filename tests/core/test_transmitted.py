"""Telling transmitted light from fluorescence by the pixels (core.transmitted)."""

import numpy as np
import pytest

from napari_labelfree.core.synth import simulate
from napari_labelfree.core.transmitted import brightness_skew, looks_transmitted_pixels


@pytest.fixture(scope="module")
def field():
    return simulate(shape=(32, 192, 192), seed=3)


def test_simulated_bright_field_and_fluorescence_are_told_apart(field):
    mid = field.data.shape[2] // 2
    bright = field.data[0, 0, mid]
    assert looks_transmitted_pixels(bright)
    for c, name in enumerate(field.channel_names[1:], start=1):
        assert not looks_transmitted_pixels(field.data[0, c, mid]), name


def test_camera_offset_and_gain_do_not_change_the_answer(field):
    plane = field.data[0, 1, field.data.shape[2] // 2].astype(np.float32)
    skew = brightness_skew(plane)
    assert brightness_skew(3.0 * plane + 500.0) == pytest.approx(skew, rel=1e-3)


def test_empty_and_non_finite_planes_are_not_transmitted():
    assert not looks_transmitted_pixels(np.zeros((32, 32), np.float32))
    assert not looks_transmitted_pixels(np.full((32, 32), np.nan, np.float32))
