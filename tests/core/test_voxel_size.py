"""Typed voxel sizes: one rule (core.voxel_size) before anything becomes a layer's scale."""

import pytest

from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.voxel_size import check_voxel_size, format_voxel_size, parse_voxel_size


def test_plausible_sizes_are_read_in_any_separator():
    assert parse_voxel_size("0.29, 0.108, 0.108") == (0.29, 0.108, 0.108)
    assert parse_voxel_size("0.29 0.108;0.108") == (0.29, 0.108, 0.108)
    assert parse_voxel_size("  ") is None  # unknown


@pytest.mark.parametrize(
    "text", ["290, 108, 108", "1e9, 1, 1", "0, 1, 1", "-1, 1, 1", "nan, 1, 1", "1, 1", "a, b, c"]
)
def test_implausible_sizes_are_refused_with_what_to_type(text):
    with pytest.raises(LabelFreeError) as err:
        parse_voxel_size(text)
    assert err.value.fields == ("voxel_size",) and "um" in str(err.value)


def test_nanometres_are_recognised():
    with pytest.raises(LabelFreeError, match=r"nanometres\? Then enter 0.29, 0.108, 0.108"):
        check_voxel_size((290, 108, 108))


def test_sizes_are_shown_rounded():
    assert format_voxel_size((0.29, 0.290003, 0.290003)) == "0.29, 0.29, 0.29"
    assert format_voxel_size(None) == ""
