"""The training recipe beyond the paper's: optimizer, learning-rate schedule, loss, best checkpoint.

The paper (Ounkomol et al. 2018) trained with Adam at a fixed learning rate of 0.001 on the MSE;
``TrainConfig.paper()`` is that recipe. The options here:

* ``optimizer``: "adam" (the paper) or "adamw" (decoupled weight decay ``weight_decay``, not on
  BatchNorm parameters or biases);
* ``schedule``: "constant" (the paper), "cosine" (from ``lr`` down to 1 % of it) or "onecycle"
  (a linear rise from ``lr``/25 to ``lr`` over the first 30 %, then a cosine down to ``lr``/1e4).
  The learning rate is a pure function of the iteration, so a resumed run follows the same curve;
* ``loss``: "mse" (the paper) or "l1+ms-ssim", 0.84 (1 - MS-SSIM) + 0.16 L1 (Zhao et al., IEEE
  TCI 2017), with a 3D MS-SSIM written here (Gaussian window, as many scales as the patch holds);
* the best weights by validation MSE, kept in ``best.safetensors`` (with their iteration) and
  written as the model at the end, where validation data exists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from ..files import atomic_file
from .config import TrainConfig

BEST_NAME = "best.safetensors"
_BEST_KEY = "napari_labelfree_best"


def build_optimizer(net: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config``; AdamW decays conv weights only (not BatchNorm, not biases)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=config.lr)
    decay, no_decay = [], []
    for module in net.modules():
        for name, p in module.named_parameters(recurse=False):
            is_norm = isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
            (no_decay if is_norm or name == "bias" else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def lr_at(iteration: int, config: TrainConfig) -> float:
    """The learning rate of step ``iteration`` (0-based) of ``config.iterations``."""
    lr, n = config.lr, max(1, config.iterations)
    t = min(1.0, iteration / n)
    if config.schedule == "cosine":
        low = 0.01 * lr
        return low + (lr - low) * 0.5 * (1 + math.cos(math.pi * t))
    if config.schedule == "onecycle":
        start, end, peak = lr / 25, lr / 1e4, 0.3
        if t < peak:
            return start + (lr - start) * t / peak
        return end + (lr - end) * 0.5 * (1 + math.cos(math.pi * (t - peak) / (1 - peak)))
    return lr


def set_lr(optimizer: torch.optim.Optimizer, iteration: int, config: TrainConfig) -> None:
    """Set every group's learning rate for step ``iteration``."""
    lr = lr_at(iteration, config)
    for group in optimizer.param_groups:
        group["lr"] = lr


def loss_function(config: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of ``config``: prediction, target -> scalar."""
    if config.loss == "mse":
        return F.mse_loss
    return l1_ms_ssim_loss


# ---------------------------------------------------------------- 3D SSIM / MS-SSIM (torch)
_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003
_WINDOW, _SIGMA = 5, 1.0  # small patches: a 5-voxel window keeps several scales in a 16-voxel z
_ALPHA = 0.84  # Zhao et al. 2017


def _gauss(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    c = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(c**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of (N, C, Z, Y, X) along the axes long enough."""
    c = x.shape[1]
    for axis in range(3):
        if x.shape[2 + axis] < g.numel():
            continue
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = g.numel()
        x = F.conv3d(x, g.reshape(shape).expand(c, 1, *shape[2:]), groups=c)
    return x


def ssim_parts(
    x: torch.Tensor, y: torch.Tensor, data_range: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term of (N, C, Z, Y, X) images, per image (N,)."""
    g = _gauss(_WINDOW, _SIGMA, x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _filter(x, g), _filter(y, g)
    sxx = _filter(x * x, g) - mx * mx
    syy = _filter(y * y, g) - my * my
    sxy = _filter(x * y, g) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim3d(x: torch.Tensor, y: torch.Tensor, data_range: torch.Tensor | float) -> torch.Tensor:
    """Mean SSIM of two (N, C, Z, Y, X) batches (Gaussian window of 5, sigma 1)."""
    dr = torch.as_tensor(data_range, dtype=x.dtype, device=x.device)
    return ssim_parts(x, y, dr)[0].mean()


def ms_ssim3d(x: torch.Tensor, y: torch.Tensor, data_range: torch.Tensor | float) -> torch.Tensor:
    """Multi-scale SSIM over as many scales (up to 5) as keep every axis at least a window long."""
    dr = torch.as_tensor(data_range, dtype=x.dtype, device=x.device)
    levels = 1
    while levels < len(_MS_WEIGHTS) and min(x.shape[2:]) // 2**levels >= _WINDOW:
        levels += 1
    w = torch.tensor(_MS_WEIGHTS[:levels], dtype=x.dtype, device=x.device)
    w = w / w.sum()
    vals = []
    for level in range(levels):
        s, cs = ssim_parts(x, y, dr)
        vals.append(torch.relu(s if level == levels - 1 else cs))  # relu: no negative powers
        if level < levels - 1:
            x, y = F.avg_pool3d(x, 2), F.avg_pool3d(y, 2)
    stack = torch.stack(vals, dim=0)  # (levels, N)
    return torch.prod(stack ** w[:, None], dim=0).mean()


def l1_ms_ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """0.84 (1 - MS-SSIM) + 0.16 L1; the data range is the target batch's (z-scored units)."""
    dr = (target.max() - target.min()).detach().clamp_min(1e-6)
    return _ALPHA * (1 - ms_ssim3d(pred, target, dr)) + (1 - _ALPHA) * F.l1_loss(pred, target)


# ---------------------------------------------------------------- best checkpoint
class BestKeeper:
    """The weights with the lowest validation MSE so far, kept in ``out_dir/best.safetensors``.

    A file, not memory: a resumed run knows the best of the iterations before the interruption.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / BEST_NAME
        self.iteration: int | None = None
        self.val_loss = math.inf
        if self.path.is_file():
            with safe_open(str(self.path), framework="pt", device="cpu") as f:
                meta = json.loads((f.metadata() or {}).get(_BEST_KEY, "{}"))
            self.iteration = meta.get("iteration")
            self.val_loss = float(meta.get("val_loss", math.inf))

    def offer(self, net: torch.nn.Module, iteration: int, val_loss: float) -> bool:
        """Keep ``net``'s weights when ``val_loss`` beats the best so far; True when kept."""
        if not (val_loss < self.val_loss):
            return False
        self.iteration, self.val_loss = int(iteration), float(val_loss)
        meta = json.dumps({"iteration": self.iteration, "val_loss": self.val_loss})
        with atomic_file(self.path) as tmp:
            save_file(
                {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()},
                str(tmp),
                metadata={"format": "pt", _BEST_KEY: meta},
            )
        return True

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The best weights (CPU tensors)."""
        with safe_open(str(self.path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


# ---------------------------------------------------------------- the hooks the loop calls
class Recipe:
    """What the loop asks of the recipe at each step: augment, set the lr, keep the best weights.

    Parameters
    ----------
    config
        The run's settings.
    out_dir
        The run's folder (``best.safetensors`` lives there).
    rng
        The patch generator (augmentation draws from it: its state is in the checkpoint).
    device
        The training device.
    validating
        Whether the run has validation data (the best weights need it).
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: Path,
        rng: np.random.Generator,
        device: torch.device,
        validating: bool,
    ) -> None:
        from .augment import Augmenter

        self.config = config
        self.augmenter = Augmenter(rng, device) if config.augment else None
        self.best = BestKeeper(out_dir) if config.keep_best and validating else None

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch as the network sees it (augmented where asked)."""
        return self.augmenter(x, y) if self.augmenter is not None else (x, y)

    def before_step(self, optimizer: torch.optim.Optimizer, iteration: int) -> None:
        """The learning rate of step ``iteration`` (0-based)."""
        set_lr(optimizer, iteration, self.config)

    def validated(self, net: torch.nn.Module, iteration: int, val_loss: float) -> None:
        if self.best is not None:
            self.best.offer(net, iteration, val_loss)

    def bundle_weights(self, net: torch.nn.Module, interrupted: bool) -> dict[str, torch.Tensor]:
        """The weights the model folder gets: the best validated at the end of a run, else the last."""
        if self.best is not None and not interrupted and self.best.iteration is not None:
            return self.best.state_dict()
        return net.state_dict()

    def metrics(self, interrupted: bool) -> dict[str, Any]:
        """What config.json says about the weights it holds."""
        if self.best is not None and not interrupted and self.best.iteration is not None:
            return {"best_iteration": self.best.iteration, "best_val_loss": self.best.val_loss}
        return {}
