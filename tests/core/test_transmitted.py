"""Telling transmitted light from fluorescence by the pixels (core.transmitted)."""

import numpy as np
import pytest

from napari_labelfree.core.synth import simulate
from napari_labelfree.core.transmitted import (
    TRANSMITTED_SKEW,
    brightness_skew,
    looks_transmitted_pixels,
    looks_transmitted_stack,
    sampled_planes,
    stack_brightness_skew,
)


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


def _fluorescence_stack(n_t=4, n_z=6, seed=0):
    """TZYX fluorescence whose nuclei sit in the middle planes; the outer planes are pure noise
    (symmetric, so each of them alone looks like a bright field)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:64]
    nuclei = ((y - 20) ** 2 + (x - 20) ** 2 < 60) | ((y - 45) ** 2 + (x - 40) ** 2 < 80)
    stack = 100 + rng.normal(0, 5, (n_t, n_z, 64, 64))
    stack[:, 2 : n_z - 2] += 2000 * nuclei
    return stack.astype(np.float32)


def test_the_whole_stack_is_judged_not_one_plane():
    stack = _fluorescence_stack()
    assert looks_transmitted_pixels(stack[2, 0])  # the plane the reader used to look at
    assert not looks_transmitted_stack(stack)
    assert stack_brightness_skew(stack) > 2 * TRANSMITTED_SKEW


def test_every_frame_is_sampled():
    stack = _fluorescence_stack(n_t=40, n_z=6)
    stack[:30, 2:4] = stack[:30, :1]  # the cells come into view in the last quarter
    planes = sampled_planes(stack.shape)
    assert {p[0] for p in planes} == set(range(40))
    assert looks_transmitted_stack(stack[:1])  # the first frame alone
    assert not looks_transmitted_stack(stack)
    assert len({p[0] for p in sampled_planes(stack.shape, max_frames=8)}) == 8  # lazy: bounded


def test_a_bright_field_stack_still_looks_transmitted(field):
    bright = field.data[0, 0]  # ZYX, every plane in or out of focus
    assert looks_transmitted_stack(bright)
    assert looks_transmitted_stack(np.stack([bright, 1.05 * bright]))  # lamp flicker
