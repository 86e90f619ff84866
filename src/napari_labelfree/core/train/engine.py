"""The network, its optimizer and the numerics of one training run.

``TrainConfig.precision`` "auto" runs the forward pass under autocast on CUDA (bf16, or fp16 with a
GradScaler where bf16 is missing) and in fp32 elsewhere. Not bf16 on the CPU, although it ran the
paper network 2.5x faster on a 2-core AVX512-BF16 CPU: there BatchNorm computes its batch
statistics in bf16, and a tiny network on small patches went to NaN within five steps in NCDHW
layout (ask for it with precision "bf16" if you must). Activations are ``channels_last_3d`` on CPU
and CUDA (1.35-1.5x on the CPU in fp32, identical losses). Adam is fused where the device has it
and a step returns its loss on the device (:mod:`.throughput`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ModelSpec
from ..device import compute_dtype, is_out_of_memory
from ..errors import LabelFreeError
from ..metrics import pearson_r
from ..optimize import prefers_channels_last
from ..unet import fnet_weights_init
from .config import TrainConfig
from .recipe import build_optimizer, loss_function
from .throughput import fuse_optimizer

Batch = tuple[torch.Tensor, torch.Tensor]  # network input, target


@dataclass
class Engine:
    """The network, its optimizer and the numerics of one run (precision, memory layout)."""

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], AbstractContextManager[Any]]
    channels_last: bool
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.mse_loss
    # the DistributedDataParallel wrapper of ``net`` when several processes train (core.train.ddp)
    ddp: torch.nn.Module | None = None
    compiled: bool = False  # torch.compile'd in place (opt-in: LABELFREE_TRAIN_COMPILE=1)

    @classmethod
    def build(cls, spec: ModelSpec, config: TrainConfig, dev: torch.device) -> Engine:
        # Every random stream is seeded before the network is built: its initial weights are drawn.
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
        channels_last = prefers_channels_last(dev)
        net = _build_network(spec)
        if config.weights_init == "fnet":  # drawn on the CPU: the same weights on every device
            fnet_weights_init(net)
        net = net.to(dev)
        if channels_last:
            net = net.to(memory_format=torch.channels_last_3d)
        optimizer = build_optimizer(net, config)
        # CPU bf16 autocast is not numerically safe for training (see the module docstring)
        auto_cpu = config.precision == "auto" and dev.type != "cuda"
        dtype = compute_dtype(dev, "fp32" if auto_cpu else config.precision)
        amp_dtype = None if dtype == torch.float32 else dtype
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = (
                True  # fixed patch shape: cuDNN picks its fastest kernels
            )
        scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16)
        optimizer = fuse_optimizer(optimizer, dev)
        autocast = (lambda: torch.autocast(dev.type, dtype=amp_dtype)) if amp_dtype else nullcontext
        engine = cls(net, optimizer, scaler, autocast, channels_last, loss_function(config))
        from ..predict.compile_cache import Acceleration

        settings = Acceleration.from_env()
        if settings.train_compile:
            engine.compile(settings.compile_backend)
        return engine

    def compile(self, backend: str = "inductor") -> None:
        """``torch.compile`` the network in place: forward and backward fused per patch shape.

        In place (``nn.Module.compile``) so parameter names, checkpoints and bundles are those of
        the plain network. Opt-in: not bit-identical to eager (fused kernels round differently)
        and not yet measured on a GPU. A first step that fails falls back to eager (:meth:`step`).
        """
        self.net.compile(backend=backend, dynamic=False)
        self.compiled = True

    def layout(self, batch: torch.Tensor) -> torch.Tensor:
        """A network input batch in the memory layout the network runs in."""
        if self.channels_last:
            return batch.contiguous(memory_format=torch.channels_last_3d)
        return batch

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the loss of a batch (MSE in the paper); returns the loss, on the
        device (no host wait)."""
        if not self.compiled:
            return self._step(x, y)
        try:
            return self._step(x, y)
        except Exception as e:  # noqa: BLE001 - a compile that fails costs its time, not the run
            if is_out_of_memory(e):
                raise
            # nothing was stepped: the failure came before the optimizer (forward or backward)
            self.net._compiled_call_impl = None
            self.compiled = False
            first = (str(e).strip().splitlines() or [""])[0][:200]
            logging.getLogger(__name__).warning(
                "torch.compile failed for training (%s: %s); training with eager PyTorch",
                type(e).__name__,
                first,
            )
            return self._step(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            pred = (self.ddp if self.ddp is not None else self.net)(x)
        loss = self.loss_fn(pred.float(), y)  # loss in fp32 whatever the autocast dtype
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def validate(self, batches: Sequence[Batch]) -> tuple[float, float]:
        """MSE and Pearson r over the validation batches, in eval mode."""
        self.net.eval()
        preds, targets = [], []
        try:
            with torch.no_grad(), self.autocast():
                for x, y in batches:
                    preds.append(self.net(x).float().cpu())
                    targets.append(y.float().cpu())
        finally:
            self.net.train()
        p = torch.cat(preds).numpy()
        t = torch.cat(targets).numpy()
        return float(np.mean((p - t) ** 2, dtype=np.float64)), pearson_r(p, t)


def _build_network(spec: ModelSpec) -> torch.nn.Module:
    from ..unet import build_network

    if spec.architecture.in_channels != 1 or spec.architecture.out_channels != 1:
        raise LabelFreeError("training supports one input and one output channel")
    return build_network(spec.architecture)
