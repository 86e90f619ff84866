import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from napari_labelfree.core import bundle as bundle_mod
from napari_labelfree.core.bundle import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    discover_models,
    open_bundle,
    resolve_model,
    save_bundle,
)
from napari_labelfree.core.config import SCHEMA_VERSION, Architecture, ModelSpec
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.unet import build_network
from napari_labelfree.core.weights import load_network


def test_round_trip_keeps_spec_and_weights(tmp_path):
    spec = ModelSpec(
        structure="lamin-b1",
        display_name="Nuclear envelope",
        colormap="cyan",
        target="mEGFP-lamin B1",
        voxel_size_um=(0.3, 0.1, 0.1),
        architecture=Architecture(depth=2, width=8),
        provenance={"trained": True, "iterations": 10},
        metrics={"test_pearson_r": 0.8},
    )
    torch.manual_seed(3)
    net = build_network(spec.architecture)
    save_bundle(tmp_path / "m", spec, net.state_dict())
    b = open_bundle(tmp_path / "m")
    assert b.spec == spec
    loaded = load_network(b)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert (
        json.loads((tmp_path / "m" / CONFIG_NAME).read_text())["schema_version"] == SCHEMA_VERSION
    )


def test_existing_folder_is_not_overwritten(tmp_path, make_tiny_model):
    b = make_tiny_model()
    before = (b.path / WEIGHTS_NAME).read_bytes()
    with pytest.raises(LabelFreeError, match="already exists"):
        save_bundle(b.path, b.spec, build_network(b.spec.architecture).state_dict())
    assert (b.path / WEIGHTS_NAME).read_bytes() == before


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, make_tiny_model):
    b = make_tiny_model(depth=2, width=8)
    cfg = json.loads((b.path / CONFIG_NAME).read_text())
    cfg["architecture"]["width"] = 16
    (b.path / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(LabelFreeError, match="do not fit"):
        load_network(open_bundle(b.path))


def test_newer_schema_is_refused(make_tiny_model):
    b = make_tiny_model()
    cfg = json.loads((b.path / CONFIG_NAME).read_text())
    cfg["schema_version"] = SCHEMA_VERSION + 1
    (b.path / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(LabelFreeError, match="newer"):
        open_bundle(b.path)


def test_corrupt_weights_give_a_clear_error(make_tiny_model):
    b = make_tiny_model()
    (b.path / WEIGHTS_NAME).write_bytes(b"not a safetensors file")
    with pytest.raises(LabelFreeError, match="corrupt"):
        load_network(b)


def test_weights_file_is_plain_safetensors(make_tiny_model):
    # no pickle anywhere: the weights load with the safetensors reader alone
    b = make_tiny_model()
    tensors = load_file(str(b.path / WEIGHTS_NAME))
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())


def test_loading_is_cached_and_refreshed_when_weights_change(make_tiny_model):
    b = make_tiny_model()
    assert load_network(b) is load_network(b)
    first = load_network(b)
    state = {k: v + 1 if v.is_floating_point() else v for k, v in first.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(b.path / WEIGHTS_NAME))
    import os

    st = (b.path / WEIGHTS_NAME).stat()
    os.utime(b.path / WEIGHTS_NAME, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert load_network(b) is not first


def test_discovery_in_env_folders_and_by_structure(tmp_path, monkeypatch, make_tiny_model):
    # a structure no built-in model has, so only the env folder can answer it
    b = make_tiny_model(structure="actin", colormap="green")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv(bundle_mod.ENV_VAR, f"{b.path.parent}{__import__('os').pathsep}{other}")
    monkeypatch.setattr(bundle_mod, "user_models_dir", lambda: tmp_path / "nouser")
    names = {m.name: m for m in discover_models()}
    assert b.path.name in names and names[b.path.name].source == "env"
    assert resolve_model("actin").path == b.path
    with pytest.raises(LabelFreeError, match="no model folder or known model"):
        resolve_model("no-such-model")


def test_folder_without_weights_is_not_a_model(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / CONFIG_NAME).write_text(ModelSpec(structure="dna").to_json())
    with pytest.raises(LabelFreeError, match="is not a model"):
        open_bundle(tmp_path / "m")


def test_saved_bundles_are_readable_by_others(tmp_path):
    import os

    from napari_labelfree.core.bundle import init_bundle

    old = os.umask(0o022)
    try:
        b = init_bundle(tmp_path / "m", ModelSpec(structure="dna"))
    finally:
        os.umask(old)
    assert b.path.stat().st_mode & 0o777 == 0o755
    assert (b.path / WEIGHTS_NAME).stat().st_mode & 0o777 == 0o644


def test_one_network_cache_per_weights_file_device_and_dtype(make_tiny_model):
    import os

    from napari_labelfree.core.weights import inference_network

    b = make_tiny_model()
    fp32 = inference_network(b, "cpu", torch.float32)
    bf16 = inference_network(b, "cpu", torch.bfloat16)
    assert bf16 is not fp32
    assert inference_network(b, "cpu", torch.float32) is fp32
    assert inference_network(b, torch.device("cpu"), torch.bfloat16) is bf16
    # retrained in place: a new weights file is read again and its networks rebuilt
    net = load_network(b)
    state = {k: v + 1 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(b.path / WEIGHTS_NAME))
    st = (b.path / WEIGHTS_NAME).stat()
    os.utime(b.path / WEIGHTS_NAME, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    fresh = inference_network(b, "cpu", torch.float32)
    assert fresh is not fp32 and load_network(b) is not net
