"""Fine-tuning's warm start: the starting model's weights shrunk and perturbed (Ash & Adams 2020)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.train import ImagePair, TrainConfig, iter_train
from napari_labelfree.core.train.init import is_reset, load_init_weights
from napari_labelfree.core.unet import build_network
from napari_labelfree.core.weights import load_network

TINY = Architecture(depth=2, width=8)


def pair(seed: int) -> ImagePair:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(16, 48, 48)).astype(np.float32)
    target = (signal + 0.5 * rng.normal(size=signal.shape)).astype(np.float32)
    return ImagePair(signal, target, None, f"pair {seed}")


def tiny_config(**overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "iterations": 1,
        "batch_size": 2,
        "patch_shape": (16, 32, 32),
        "val_strip": 0.0,
    }
    return TrainConfig(**{**settings, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A tiny trained model to start from (its BatchNorm running statistics are not the fresh ones)."""
    out = tmp_path_factory.mktemp("start") / "m"
    spec = ModelSpec("dna", architecture=TINY)
    return drain(iter_train([pair(0)], spec, out, tiny_config(iterations=3), device="cpu"))


def test_the_starting_weights_are_shrunk_and_perturbed_by_fresh_ones_buffers_copied(start):
    pre = load_network(start).state_dict()
    torch.manual_seed(7)
    net = build_network(TINY)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    load_init_weights(net, start, shrink=0.4, perturb=0.1)
    got = net.state_dict()
    learnable = {name for name, _ in net.named_parameters()}
    assert learnable and any("running_var" in k for k in got)
    for name, value in got.items():
        if name in learnable:
            torch.testing.assert_close(value, 0.4 * pre[name] + 0.1 * fresh[name])
        else:  # BatchNorm's running statistics: the starting model's, as they are
            torch.testing.assert_close(value, pre[name])
    # 1 and 0: an exact copy
    load_init_weights(net, start)
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, pre[name])


def test_a_fine_tuned_model_records_its_warm_start_in_provenance(start, tmp_path):
    spec = ModelSpec("dna", architecture=TINY)
    cfg = tiny_config(init_shrink=0.5, init_perturb=0.2)
    tuned = drain(iter_train([pair(1)], spec, tmp_path / "a", cfg, device="cpu", init=start))
    sp = tuned.spec.provenance["init"]["shrink_perturb"]
    assert (sp["shrink"], sp["perturb"]) == (0.5, 0.2)
    copy = tiny_config(init_shrink=1.0, init_perturb=0.0)
    plain = drain(iter_train([pair(1)], spec, tmp_path / "b", copy, device="cpu", init=start))
    assert "shrink_perturb" not in plain.spec.provenance["init"]


@pytest.mark.parametrize(("shrink", "perturb"), [(0.0, 0.1), (1.5, 0.0), (0.5, -0.1), (0.5, 2.0)])
def test_out_of_range_warm_start_settings_are_refused(shrink, perturb):
    with pytest.raises(LabelFreeError, match="init_"):
        TrainConfig(init_shrink=shrink, init_perturb=perturb)


def test_a_reset_decoder_keeps_its_fresh_weights_and_the_encoder_the_starting_models(start):
    pre = load_network(start).state_dict()
    torch.manual_seed(3)
    net = build_network(TINY)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    load_init_weights(net, start, reset=("decoder",))
    got = net.state_dict()
    decoder = [k for k in got if is_reset(k, ("decoder",))]
    # every level's up-convolution and decoding convolutions and the head; the encoder and the
    # bottom level (depth 2: body.below.below) stay the starting model's
    for name in ("head.weight", "body.up.weight", "body.up_bn.bias", "body.decode.conv1.weight"):
        assert name in decoder
    assert "body.below.decode.conv2.weight" in decoder and "body.below.up.weight" in decoder
    assert not any(".encode." in k or k.startswith("body.below.below") for k in decoder)
    for name, value in got.items():
        torch.testing.assert_close(value, fresh[name] if name in decoder else pre[name])
    # a name prefix: only the head
    assert [k for k in got if is_reset(k, ("head",))] == ["head.weight", "head.bias"]
