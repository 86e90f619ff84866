"""The recipe: optimizers, learning-rate schedules, the L1 + MS-SSIM loss, the best checkpoint."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train import random_pairs, tiny_spec  # tests/core is on the path (no package)

from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.train import LOG_NAME, TrainConfig, iter_train
from napari_labelfree.core.train.recipe import (
    BEST_NAME,
    BestKeeper,
    build_optimizer,
    l1_ms_ssim_loss,
    lr_at,
    ms_ssim3d,
    ssim3d,
)
from napari_labelfree.core.unet import unet3d


def test_paper_recipe_is_the_paper():
    p = TrainConfig.paper()
    assert (p.augment, p.optimizer, p.schedule, p.loss, p.keep_best) == (
        False,
        "adam",
        "constant",
        "mse",
        False,
    )
    assert (p.lr, p.batch_size, p.patch_shape) == (1e-3, 24, (32, 64, 64))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("optimizer", "sgd"),
        ("schedule", "step"),
        ("loss", "l2"),
        ("weight_decay", -1.0),
        ("weights_init", "xavier"),
    ],
)
def test_unknown_recipe_settings_are_refused(field, value):
    with pytest.raises(LabelFreeError):
        TrainConfig(**{field: value})


def test_schedules():
    n, lr = 1000, 1e-3
    const = TrainConfig(iterations=n, lr=lr, schedule="constant")
    assert {lr_at(i, const) for i in (0, 500, 999)} == {lr}
    cos = TrainConfig(iterations=n, lr=lr, schedule="cosine")
    vals = [lr_at(i, cos) for i in range(0, n + 1, 50)]
    assert vals[0] == pytest.approx(lr) and vals[-1] == pytest.approx(0.01 * lr)
    assert all(a >= b for a, b in zip(vals, vals[1:], strict=False))  # never rises
    one = TrainConfig(iterations=n, lr=lr, schedule="onecycle")
    assert lr_at(0, one) == pytest.approx(lr / 25)
    assert lr_at(300, one) == pytest.approx(lr)  # the peak at 30 %
    assert lr_at(n, one) == pytest.approx(lr / 1e4)
    assert lr_at(150, one) < lr_at(300, one) > lr_at(600, one)


def test_adamw_decays_conv_weights_only():
    net = unet3d(2, 4)
    opt = build_optimizer(net, TrainConfig(optimizer="adamw", weight_decay=0.05))
    assert isinstance(opt, torch.optim.AdamW)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in net.named_parameters():
        is_bn = "bn" in name
        assert (id(p) in decayed) == (not is_bn and not name.endswith("bias")), name
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    assert isinstance(build_optimizer(net, TrainConfig(optimizer="adam")), torch.optim.Adam)


def test_ssim_and_ms_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 16, 32, 32, generator=g)
    assert float(ssim3d(x, x, 8.0)) == pytest.approx(1.0, abs=1e-5)
    assert float(ms_ssim3d(x, x, 8.0)) == pytest.approx(1.0, abs=1e-5)
    noisy = x + 0.5 * torch.randn(x.shape, generator=g)
    worse = x + 2.0 * torch.randn(x.shape, generator=g)
    assert 1.0 > float(ms_ssim3d(noisy, x, 8.0)) > float(ms_ssim3d(worse, x, 8.0))
    assert float(ssim3d(noisy, x, 8.0)) == pytest.approx(float(ssim3d(x, noisy, 8.0)))
    # contrast-structure alone: a scaled copy scores 2a / (1 + a^2) (c2 small next to the variance)
    assert float(ssim3d(x, 0.5 * x, 8.0)) < float(ssim3d(x, 0.9 * x, 8.0)) < 1.0
    # the loss is zero for a perfect prediction and gives gradients
    assert float(l1_ms_ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    p = noisy.clone().requires_grad_(True)
    l1_ms_ssim_loss(p, x).backward()
    assert torch.isfinite(p.grad).all() and float(p.grad.abs().sum()) > 0


def test_best_keeper_keeps_the_lowest_validation_loss(tmp_path):
    net = unet3d(1, 2)
    keeper = BestKeeper(tmp_path)
    kept = {}
    for it, loss in ((2, 0.9), (4, 0.5), (6, 0.7)):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        if keeper.offer(net, it, loss):
            kept = {k: v.clone() for k, v in net.state_dict().items()}
    assert keeper.iteration == 4 and keeper.val_loss == pytest.approx(0.5)
    again = BestKeeper(tmp_path)  # a resumed run reads it back
    assert again.iteration == 4
    for k, v in again.state_dict().items():
        torch.testing.assert_close(v, kept[k], rtol=0, atol=0)


def test_training_writes_the_best_validated_weights(tmp_path):
    # a high constant lr makes validation jump around: the best is rarely the last
    cfg = TrainConfig(
        iterations=12,
        batch_size=2,
        patch_shape=(4, 8, 8),
        validate_every=2,
        checkpoint_every=12,
        lr=0.05,
        schedule="constant",
        seed=1,
    )
    bundle = drain(
        iter_train(
            random_pairs(),
            tiny_spec(),
            tmp_path / "m",
            cfg,
            val=random_pairs(1, seed=5),
            device="cpu",
        )
    )
    with open(tmp_path / "m" / LOG_NAME) as f:
        vals = [
            (int(r["iteration"]), float(r["val_loss"])) for r in csv.DictReader(f) if r["val_loss"]
        ]
    best_it = min(vals, key=lambda v: v[1])[0]
    assert bundle.spec.metrics["best_iteration"] == best_it
    assert bundle.spec.metrics["best_val_loss"] == pytest.approx(min(v for _, v in vals), rel=1e-4)
    a = load_file(str(tmp_path / "m" / "weights.safetensors"))
    b = load_file(str(tmp_path / "m" / BEST_NAME))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    # keep_best off: the last weights
    last = drain(
        iter_train(
            random_pairs(),
            tiny_spec(),
            tmp_path / "last",
            TrainConfig(**{**cfg.__dict__, "keep_best": False}),
            val=random_pairs(1, seed=5),
            device="cpu",
        )
    )
    assert "best_iteration" not in last.spec.metrics
    assert not (tmp_path / "last" / BEST_NAME).exists()


def test_l1_ms_ssim_training_runs(tmp_path):
    cfg = TrainConfig(
        iterations=3, batch_size=2, patch_shape=(8, 16, 16), loss="l1+ms-ssim", seed=0
    )
    bundle = drain(
        iter_train(random_pairs(shape=(8, 24, 24)), tiny_spec(), tmp_path / "m", cfg, device="cpu")
    )
    assert np.isfinite(bundle.spec.metrics["final_train_loss"])


def test_fnet_weights_init_draws_pytorch_fnets_distribution_reproducibly():
    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.train.engine import Engine

    spec = ModelSpec("dna", architecture=Architecture(depth=2, width=16))

    def weights(init: str) -> tuple[list[torch.Tensor], torch.Tensor]:
        net = Engine.build(spec, TrainConfig(weights_init=init), torch.device("cpu")).net
        convs = [m.weight.detach() for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
        norms = [m.weight.detach() for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
        return convs, torch.cat(norms)

    convs, norm = weights("fnet")
    for w in convs:  # N(0, 0.02) in every layer, whatever its fan-in
        assert abs(float(w.std()) - 0.02) < 0.004, float(w.std())
    assert abs(float(norm.mean()) - 1.0) < 0.01 and 0.01 < float(norm.std()) < 0.03
    assert torch.equal(weights("fnet")[0][0], convs[0])  # the seed decides: a rerun is the same
    torch_convs, torch_norm = weights("torch")
    # PyTorch's default scales with the fan-in: the first layer (27 inputs) is far wider
    assert float(torch_convs[0].std()) > 0.05 and torch.all(torch_norm == 1)
