"""2D and 2.5D models: kinds in config.json, the networks, prediction of planes and time-lapses,
projection targets, and training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_labelfree.core.bundle import init_bundle, open_bundle, read_spec
from napari_labelfree.core.config import Architecture, ModelSpec, TilingConfig
from napari_labelfree.core.data import ImagePair
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import Notice, drain
from napari_labelfree.core.io import from_array
from napari_labelfree.core.optimize import optimize_for_inference
from napari_labelfree.core.predict.plan import plan_prediction
from napari_labelfree.core.predict.run import iter_predict
from napari_labelfree.core.predict.volume import group_tta
from napari_labelfree.core.preprocess import zscore
from napari_labelfree.core.unet import build_network, count_parameters, randomize_batchnorm
from napari_labelfree.core.weights import load_network

FP32 = TilingConfig(precision="fp32")
VOX = (1.0, 0.5, 0.5)


def _model(tmp_path, name, kind="unet2d", in_planes=1, projection="", seed=0, **kw):
    spec = ModelSpec(
        "dna",
        voxel_size_um=VOX,
        architecture=Architecture(name=kind, depth=2, width=8, in_planes=in_planes),
        target_projection=projection,
        **kw,
    )
    bundle = init_bundle(tmp_path / name, spec, seed=seed)
    randomize_batchnorm(load_network(bundle), seed)  # an untrained BatchNorm is the identity
    return bundle


def test_old_configs_read_as_3d_and_kinds_round_trip(tmp_path):
    old = ModelSpec("dna").to_dict()
    del old["architecture"]["name"], old["architecture"]["in_planes"]
    assert ModelSpec.from_dict(old).kind == "unet3d"
    b = _model(tmp_path, "p", "unet2.5d", 5, "max")
    on_disk = json.loads((b.path / "config.json").read_text())
    assert on_disk["architecture"]["name"] == "unet2.5d" and on_disk["target_projection"] == "max"
    spec = read_spec(b.path)
    assert (spec.kind, spec.architecture.in_planes, spec.target_projection) == (
        "unet2.5d",
        5,
        "max",
    )
    assert spec.kind_label == "2.5D (5 planes, max-projection)"
    assert "target_projection" not in ModelSpec("dna").to_dict()  # 3D configs stay as they were
    assert read_spec(_model(tmp_path, "3p", "unet3d", 1, "max").path).kind_label == (
        "3D (max-projection at every plane)"
    )


@pytest.mark.parametrize(
    "arch, projection, words",
    [
        ({"name": "unet2.5d", "in_planes": 4}, "", "odd"),
        ({"name": "unet2.5d", "in_planes": 1}, "", "odd"),
        ({"name": "unet2d", "in_planes": 3}, "", "2.5D"),
        ({"name": "unet4d"}, "", "upgrade"),
        ({"name": "unet2d"}, "max", "2.5D and 3D"),
        ({"name": "unet2.5d", "in_planes": 3}, "median", "max"),
    ],
)
def test_impossible_kinds_are_refused_with_a_reason(arch, projection, words):
    with pytest.raises(LabelFreeError, match=words):
        ModelSpec(
            "dna",
            architecture=Architecture(depth=2, width=8, **arch),
            target_projection=projection,
        )


@pytest.mark.parametrize("kind, planes", [("unet3d", 1), ("unet2d", 1), ("unet2.5d", 5)])
def test_parameter_count_matches_the_built_network(kind, planes):
    arch = Architecture(name=kind, depth=3, width=8, in_planes=planes)
    assert arch.n_parameters() == count_parameters(build_network(arch))


def test_2d_network_predicts_each_plane_on_its_own():
    net = randomize_batchnorm(build_network(Architecture(name="unet2d", depth=2, width=8)))
    x = torch.randn(1, 1, 3, 16, 16)
    with torch.no_grad():
        whole = net(x)
        alone = net(x[:, :, 1:2])
        x2 = x.clone()
        x2[:, :, 0] = 100.0  # another plane changed: plane 1 is unmoved
        moved = net(x2)
    assert torch.allclose(whole[:, :, 1:2], alone, atol=1e-5)
    assert torch.allclose(moved[:, :, 1], whole[:, :, 1], atol=1e-5)


def test_25d_network_reads_its_window_and_repeats_end_planes():
    net = randomize_batchnorm(
        build_network(Architecture(name="unet2.5d", depth=2, width=8, in_planes=3))
    )
    x = torch.randn(1, 1, 6, 16, 16)
    with torch.no_grad():
        whole = net(x)
        assert whole.shape == x.shape
        x2 = x.clone()
        x2[:, :, 5] += 5.0  # outside plane 2's window (1..3)
        assert torch.allclose(net(x2)[:, :, 2], whole[:, :, 2], atol=1e-5)
        assert not torch.allclose(net(x2)[:, :, 4], whole[:, :, 4], atol=1e-3)  # inside plane 4's
        net.pad_z = False  # training: a window gives its centre plane
        assert torch.allclose(net(x[:, :, 1:4]), whole[:, :, 2:3], atol=1e-5)
        padded = torch.cat([x[:, :, :1], x[:, :, :2]], 2)  # plane 0's window at the stack's end
        assert torch.allclose(net(padded), whole[:, :, :1], atol=1e-5)


@pytest.mark.parametrize("kind, planes", [("unet2d", 1), ("unet2.5d", 5)])
def test_inference_twin_equals_the_network(kind, planes):
    net = randomize_batchnorm(
        build_network(Architecture(name=kind, depth=2, width=8, in_planes=planes))
    )
    x = torch.randn(2, 1, 4, 16, 24)
    with torch.no_grad():
        assert torch.allclose(optimize_for_inference(net)(x), net(x), atol=1e-4)


def test_2d_image_and_2d_timelapse_predict_plane_by_plane(tmp_path, rng):
    b = _model(tmp_path, "m2")
    movie = rng.random((3, 40, 48)).astype(np.float32)
    out = drain(
        iter_predict(from_array(movie, "TYX", physical_sizes=(None, 0.5, 0.5)), b, device="cpu")
    )["dna"]
    assert out.shape == (3, 1, 40, 48)
    net = load_network(b)
    with torch.no_grad():
        for t in range(3):  # each frame z-scored and predicted alone, whatever the tiling
            ref = net(torch.from_numpy(zscore(movie[t]))[None, None, None]).numpy()[0, 0]
            np.testing.assert_allclose(out[t], ref, atol=1e-4)
    single = from_array(movie[0], "YX", physical_sizes=(None, 0.5, 0.5))
    plan = plan_prediction(single, b, device="cpu", tiling=FP32)
    assert plan.notices == () and plan.output_shape_zyx == (1, 40, 48)  # no z-step asked for
    tiled = plan_prediction(
        single, b, device="cpu", tiling=TilingConfig(tile_shape=(1, 32, 32), precision="fp32")
    )
    assert tiled.tile_shapes[0][0] == 1  # a plane is not padded to the network's stride
    small = drain(tiled.predict_volume(movie[0][None]))["dna"]
    assert small.shape == (1, 40, 48)  # blended from 32x32 tiles: close, not equal, at seams
    assert np.corrcoef(small.ravel(), out[0].ravel())[0, 1] > 0.95


def test_2d_model_on_a_stack_predicts_every_plane_and_says_so(tmp_path, rng):
    b = _model(tmp_path, "m2")
    stack = rng.random((5, 32, 32)).astype(np.float32)
    plan = plan_prediction(from_array(stack, "ZYX", physical_sizes=VOX), b, device="cpu")
    assert any("each of the 5 z-planes" in n.text for n in plan.notices)
    assert drain(plan.predict_volume(stack))["dna"].shape == (5, 32, 32)


def test_3d_model_still_refuses_a_plane_and_kinds_of_output_do_not_mix(tmp_path, make_tiny_model):
    plane = from_array(np.ones((32, 32), np.float32), "YX")
    with pytest.raises(LabelFreeError, match="is 2D.*with a 2D model"):
        plan_prediction(plane, make_tiny_model(), device="cpu")
    stack = from_array(np.ones((5, 32, 32), np.float32), "ZYX", physical_sizes=VOX)
    with pytest.raises(LabelFreeError, match="two runs"):
        plan_prediction(stack, [_model(tmp_path, "a"), _model(tmp_path, "p", "unet2.5d", 3, "max")])


def test_25d_projection_model_predicts_one_plane_from_the_middle_window(tmp_path, rng):
    b = _model(tmp_path, "p", "unet2.5d", 5, "max")
    stack = rng.random((9, 32, 40)).astype(np.float32)
    plan = plan_prediction(
        from_array(stack, "ZYX", physical_sizes=VOX), b, device="cpu", tiling=FP32
    )
    assert plan.output_shape_zyx == (1, 32, 40)
    out = drain(plan.predict_volume(stack))["dna"]
    net = load_network(b)
    net.pad_z = False
    try:
        with torch.no_grad():
            ref = net(torch.from_numpy(zscore(stack)[2:7])[None, None]).numpy()[0, 0]
    finally:
        net.pad_z = True
    assert out.shape == (1, 32, 40)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    # TTA over z would reverse the window: asked for, it averages the YX variants only
    tta = TilingConfig(precision="fp32", tta="yxz")
    plan = plan_prediction(
        from_array(stack, "ZYX", physical_sizes=VOX), b, device="cpu", tiling=tta
    )
    assert drain(plan.predict_volume(stack))["dna"].shape == (1, 32, 40)


def test_3d_projection_model_predicts_the_maximum_of_its_planes(tmp_path, rng):
    """A 3D network trained against the projection at every plane predicts every plane of the
    whole stack; their maximum over z is its one plane, as for a 2.5D projection model."""
    b = _model(tmp_path, "p3", "unet3d", 1, "max")
    stack = rng.random((8, 32, 40)).astype(np.float32)
    source = from_array(stack, "ZYX", physical_sizes=VOX)
    plan = plan_prediction(source, b, device="cpu", tiling=FP32)
    assert plan.output_shape_zyx == (1, 32, 40)
    out = drain(plan.predict_volume(stack))["dna"]
    net = load_network(b)
    with torch.no_grad():
        every_plane = net(torch.from_numpy(zscore(stack))[None, None]).numpy()[0, 0]
    assert out.shape == (1, 32, 40)
    np.testing.assert_allclose(out[0], every_plane.max(axis=0), atol=1e-4)
    # a stack shallower than a tile is padded up to one, as in training: tiles cut thinner than
    # the patches it learned from gave edge planes whose maximum ruled the plane (ISL: r 0.54
    # against 0.87 padded)
    shallow = from_array(rng.random((6, 32, 40)).astype(np.float32), "ZYX", physical_sizes=VOX)
    assert plan_prediction(shallow, b, device="cpu", tiling=FP32).tile_shapes[0][0] >= 6
    # a 3D network's z-flipped copy estimates the same planes: test-time z flips stay
    assert group_tta(plan.groups[0], "yxz") == "yxz"
    # trained against the mean projection, its planes' mean
    mean = _model(tmp_path, "p3mean", "unet3d", 1, "mean")
    plan = plan_prediction(source, mean, device="cpu", tiling=FP32)
    with torch.no_grad():
        planes = load_network(mean)(torch.from_numpy(zscore(stack))[None, None]).numpy()[0, 0]
    out = drain(plan.predict_volume(stack))["dna"]
    np.testing.assert_allclose(out[0], planes.mean(axis=0), atol=1e-4)


def _events(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


def _pair(rng, project=False):
    sig = rng.random((7, 32, 32)).astype(np.float32)
    tgt = (2 * sig + 0.1 * rng.random(sig.shape)).astype(np.float32)
    return ImagePair(sig, tgt.max(0, keepdims=True) if project else tgt, (1.0, 0.5, 0.5), "a")


@pytest.mark.parametrize(
    "kind, planes, projection, patch",
    [
        ("unet2d", 1, "", (1, 16, 16)),
        ("unet2.5d", 3, "", (2, 16, 16)),
        ("unet2.5d", 5, "max", (1, 16, 16)),
        ("unet3d", 1, "max", (4, 16, 16)),
    ],
)
def test_training_2d_and_25d_models(tmp_path, rng, kind, planes, projection, patch):
    from napari_labelfree.core.train import TrainConfig, iter_train

    spec = ModelSpec(
        "dna",
        voxel_size_um=VOX,
        architecture=Architecture(name=kind, depth=2, width=8, in_planes=planes),
        target_projection=projection,
    )
    cfg = TrainConfig(
        iterations=4, batch_size=2, patch_shape=patch, validate_every=2, checkpoint_every=2
    )
    pair = _pair(rng, project=bool(projection))
    events = list(_events(iter_train([pair], spec, tmp_path / "m", cfg, val=[pair], device="cpu")))
    bundle = open_bundle(tmp_path / "m")
    assert (bundle.spec.kind, bundle.spec.target_projection) == (kind, projection)
    assert bundle.spec.metrics.get("val_pearson_r_mean") is not None  # scored on whole images
    out = drain(
        iter_predict(from_array(pair.signal, "ZYX", physical_sizes=VOX), bundle, device="cpu")
    )
    assert out["dna"].shape == (1, 1 if projection else 7, 32, 32)
    # the 7-plane stack holds every window: no plane had to be repeated for training
    assert not [e for e in events if isinstance(e, Notice) and "repeated" in e.text]


def test_projection_pair_smaller_than_the_patch_is_padded_not_a_crash(tmp_path, rng):
    from napari_labelfree.core.train import TrainConfig, iter_train

    spec = ModelSpec(
        "dna",
        voxel_size_um=VOX,
        architecture=Architecture(name="unet2.5d", depth=2, width=8, in_planes=3),
        target_projection="max",
    )
    cfg = TrainConfig(iterations=2, batch_size=2, patch_shape=(1, 32, 32), validate_every=2)
    small = ImagePair(
        rng.random((5, 16, 24)).astype(np.float32),
        rng.random((1, 16, 24)).astype(np.float32),
        VOX,
        "small",
    )  # a 16-pixel validation strip, say, under a 32x32 patch
    events = list(_events(iter_train([_pair(rng, True)], spec, tmp_path / "m", cfg, val=[small])))
    assert any(isinstance(e, Notice) and "mirror-padded" in e.text for e in events)
    assert open_bundle(tmp_path / "m").spec.metrics.get("val_pearson_r_mean") is not None
