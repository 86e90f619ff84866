"""Model configs: malformed files are one clear error, networks that cannot fit are refused."""

import json

import pytest

from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.errors import LabelFreeError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "holds a list"),
        ('{"structure": "dna", "schema_version": "abc"}', "schema_version 'abc'"),
        ('{"structure": "dna", "schema_version": 99}', "upgrade napari-labelfree"),
        ('{"schema_version": 1}', "no 'structure'"),
        ('{"structure": 3}', "structure must be text"),
        ('{"structure": "dna", "architecture": "unet"}', "architecture must be an object"),
        ('{"structure": "dna", "architecture": {"depth": "4"}}', "whole number"),
        ('{"structure": "dna", "voxel_size_um": [NaN, 0.29, 0.29]}', "three positive"),
        ('{"structure": "dna", "voxel_size_um": [0.29, 0.29]}', "three positive"),
        ('{"structure": "dna", "voxel_size_um": [0.29, -1, 0.29]}', "three positive"),
        ('{"structure": "dna", "metrics": [1]}', "metrics must be an object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_malformed_config_is_one_clear_error(text, message):
    with pytest.raises(LabelFreeError, match=message):
        ModelSpec.from_json(text)


def test_keys_of_a_newer_version_are_ignored_and_listed():
    d = ModelSpec(structure="dna").to_dict()
    d["future_field"] = {"x": 1}
    spec = ModelSpec.from_json(json.dumps(d))
    assert spec.structure == "dna"
    assert spec.unknown_keys == ["future_field"]
    assert "future_field" not in spec.to_dict()


@pytest.mark.parametrize("part", ["architecture", "normalization"])
def test_an_unknown_network_setting_is_refused_by_name(part):
    # it would build another network, or feed it other numbers, than the weights were trained with
    d = ModelSpec(structure="dna").to_dict()
    d[part]["future_knob"] = 3
    with pytest.raises(LabelFreeError, match=f"unknown {part} setting.*'future_knob'"):
        ModelSpec.from_json(json.dumps(d))


@pytest.mark.parametrize(
    ("depth", "width", "message"),
    [(50, 32, "depth must be 0 to 6"), (4, 100_000, "M parameters"), (4, 0, "at least 1")],
)
def test_absurd_networks_are_refused_at_once(depth, width, message):
    # counted from the arithmetic, never built (depth 50 grew past 6 GB before being killed)
    with pytest.raises(LabelFreeError, match=message):
        Architecture(depth=depth, width=width)


def test_parameter_count_matches_the_network():
    import torch

    from napari_labelfree.core.unet import UNet3D, count_parameters

    for depth, width in [(4, 32), (2, 8), (0, 3)]:
        arch = Architecture(depth=depth, width=width)
        with torch.device("meta"):
            net = UNet3D(arch)
        assert arch.n_parameters() == count_parameters(net)
    assert Architecture().n_parameters() == 23_280_769  # the paper's network
