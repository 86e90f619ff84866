"""The network of an ensemble model (:mod:`.ensemble`): K U-Nets whose mean is the prediction.

:class:`EnsembleNet` is what its weights file loads into (parameter names ``members.<i>.*``);
:class:`InferenceEnsemble` is its inference twin (each member BatchNorm-folded by
:mod:`.optimize`). Both return the members' mean, one channel like a single network, so every
prediction path (tiles, time-lapses, blocks, Dask, TTA) runs an ensemble as it runs one network.
With ``--uncertainty`` prediction runs :attr:`InferenceEnsemble.spread` instead: the members'
mean and their variance as two channels, which :func:`.predict.tta.spread_predictor` adds to the
spread over the test-time variants (law of total variance).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelSpec
from .unet import UNet3D, build_network


def _mean_and_variance(outs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxel-wise mean and (population) variance of the members' outputs, in float32."""
    stack = torch.stack([o.float() for o in outs])
    mean = stack.mean(dim=0)
    return mean, (stack - mean).square_().mean(dim=0)


class EnsembleNet(nn.Module):
    """K networks of one architecture; the output is their mean."""

    def __init__(self, members: list[UNet3D]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.arch = members[0].arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mean_and_variance([m(x) for m in self.members])[0].type(x.dtype)


class _Spread(nn.Module):
    """The members' mean and variance as two channels (the uncertainty path's network)."""

    def __init__(self, members: nn.ModuleList) -> None:
        super().__init__()
        self.members = members  # shared with the ensemble: no copy of the weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = _mean_and_variance([m(x) for m in self.members])
        return torch.cat([mean, var], dim=1)


class InferenceEnsemble(nn.Module):
    """The inference twin of an :class:`EnsembleNet`: the members' twins, their mean as output."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.spread = _Spread(self.members)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mean_and_variance([m(x) for m in self.members])[0]

    def to_precision(self, dtype: torch.dtype) -> InferenceEnsemble:
        for m in self.members:
            m.to_precision(dtype)
        return self


def build_model(spec: ModelSpec) -> nn.Module:
    """The network ``spec`` describes, fresh: one U-Net, or an :class:`EnsembleNet` of K."""
    if not spec.ensemble:
        return build_network(spec.architecture)
    return EnsembleNet([build_network(spec.architecture) for _ in range(spec.ensemble_size)])


def inference_twin(net: nn.Module, device: torch.device) -> nn.Module:
    """:func:`.optimize.optimize_for_inference` of a network or of each member of an ensemble."""
    from .optimize import optimize_for_inference

    if isinstance(net, EnsembleNet):
        return InferenceEnsemble([optimize_for_inference(m, device) for m in net.members])
    return optimize_for_inference(net, device)


def spread_network(net: nn.Module) -> nn.Module | None:
    """The two-channel (mean, variance) network of an ensemble's twin; None for one network."""
    return getattr(net, "spread", None) if isinstance(net, InferenceEnsemble) else None
