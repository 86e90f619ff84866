"""Opt-in torch.compile of the training network: same run, same files, eager when it fails.

The compile goes through torch.compile's "eager" backend (a real Dynamo/AOT trace of the
network, forward and backward, without a C++ compiler), so the losses must equal eager's.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.events import drain
from napari_labelfree.core.train import ImagePair, TrainConfig, TrainStep, iter_train
from napari_labelfree.core.train.engine import Engine
from napari_labelfree.core.weights import load_network


def _pairs():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(8, 24, 24)).astype(np.float32)
    t = (np.roll(s, 1, axis=2) * 2 + 0.1 * rng.normal(size=s.shape)).astype(np.float32)
    return [ImagePair(s, t, None, "r0")]


def _train(folder):
    spec = ModelSpec("dna", architecture=Architecture(depth=2, width=8))
    cfg = TrainConfig.paper(iterations=3, batch_size=2, patch_shape=(8, 16, 16), seed=0)
    losses = []
    gen = iter_train(_pairs(), spec, folder, cfg, device="cpu")
    try:
        while True:
            event = next(gen)
            if isinstance(event, TrainStep):
                losses.append(event.loss)
    except StopIteration as stop:
        return losses, stop.value


def test_compiled_training_equals_eager_and_saves_plain_names(tmp_path, monkeypatch):
    eager_losses, eager_bundle = _train(tmp_path / "eager")
    monkeypatch.setenv("LABELFREE_TRAIN_COMPILE", "1")
    monkeypatch.setenv("LABELFREE_COMPILE_BACKEND", "eager")
    built = []
    real_build = Engine.build.__func__

    def spy(cls, *a, **k):
        built.append(real_build(cls, *a, **k))
        return built[-1]

    monkeypatch.setattr(Engine, "build", classmethod(spy))
    losses, bundle = _train(tmp_path / "compiled")
    assert built[0].compiled  # the compiled path really ran
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    a, b = load_network(eager_bundle).state_dict(), load_network(bundle).state_dict()
    assert list(a) == list(b)  # no "_orig_mod." prefixes: the bundle is a plain model
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_a_failing_compile_trains_eager_with_one_line(tmp_path, monkeypatch, caplog):
    eager_losses, _ = _train(tmp_path / "eager")

    def broken_compile(self, backend="inductor"):
        def fail(*args, **kwargs):
            raise RuntimeError("BackendCompilerFailed: inductor raised\nlong trace")

        self.net._compiled_call_impl = fail
        self.compiled = True

    monkeypatch.setattr(Engine, "compile", broken_compile)
    monkeypatch.setenv("LABELFREE_TRAIN_COMPILE", "1")
    with caplog.at_level(logging.WARNING):
        losses, _ = _train(tmp_path / "fallback")
    assert losses == eager_losses  # nothing of the failed try reached the weights
    lines = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "BackendCompilerFailed" in lines[0]


def test_drain_ignores_the_setting_when_off(tmp_path, monkeypatch):
    monkeypatch.delenv("LABELFREE_TRAIN_COMPILE", raising=False)
    built = []
    real_build = Engine.build.__func__
    monkeypatch.setattr(
        Engine,
        "build",
        classmethod(lambda cls, *a, **k: built.append(real_build(cls, *a, **k)) or built[-1]),
    )
    spec = ModelSpec("dna", architecture=Architecture(depth=2, width=8))
    cfg = TrainConfig.paper(iterations=1, batch_size=2, patch_shape=(8, 16, 16))
    drain(iter_train(_pairs(), spec, tmp_path / "m", cfg, device="cpu"))
    assert not built[0].compiled
