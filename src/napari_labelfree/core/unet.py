"""The 3D U-Net of Ounkomol et al. (2018), as in their reference software pytorch_fnet.

Each level: two conv3x3x3-BN-ReLU; down by a 2x2x2 stride-2 conv + BN + ReLU; up by a 2x2x2
transposed conv + BN + ReLU; the skip is concatenated before the level's second pair of convs.
Channels: ``width`` at the top level, doubling per level. A final 3x3x3 conv maps to one channel
with no activation. Depth 4 / width 32 is the paper's network (23.28 M parameters).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # this file also runs alone, outside the package: see ``unet3d``
    from .config import Architecture


class DoubleConv(nn.Module):
    """Two conv3x3x3 + BatchNorm + ReLU."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(n_in, n_out, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm3d(n_out)
        self.conv2 = nn.Conv3d(n_out, n_out, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm3d(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(x)))


class Level(nn.Module):
    """One resolution level; holds the levels below it (recursive, like pytorch_fnet)."""

    def __init__(self, n_in: int, n_out: int, depth: int) -> None:
        super().__init__()
        self.depth = depth
        self.encode = DoubleConv(n_in, n_out)
        if depth > 0:
            self.down = nn.Conv3d(n_out, n_out, kernel_size=2, stride=2)
            self.down_bn = nn.BatchNorm3d(n_out)
            self.below = Level(n_out, 2 * n_out, depth - 1)
            self.up = nn.ConvTranspose3d(2 * n_out, n_out, kernel_size=2, stride=2)
            self.up_bn = nn.BatchNorm3d(n_out)
            self.decode = DoubleConv(2 * n_out, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.encode(x)
        if self.depth == 0:
            return skip
        y = torch.relu(self.down_bn(self.down(skip)))
        y = self.below(y)
        y = torch.relu(self.up_bn(self.up(y)))
        return self.decode(torch.cat((skip, y), dim=1))


class UNet3D(nn.Module):
    """Fully convolutional 3D U-Net; input (N, C, Z, Y, X) with Z, Y, X multiples of 2**depth."""

    def __init__(self, arch: Architecture | None = None) -> None:
        super().__init__()
        if arch is None:
            from .config import Architecture

            arch = Architecture()
        self.arch = arch
        self.body = Level(self.arch.in_channels, self.arch.width, self.arch.depth)
        self.head = nn.Conv3d(self.arch.width, self.arch.out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def unet3d(depth: int = 4, width: int = 32, in_channels: int = 1, out_channels: int = 1) -> UNet3D:
    """The network from plain numbers, fresh weights.

    bioimage.io packages name this function with this file as their architecture: consumers
    load the file alone (no package around it), so nothing here may import the package.
    """
    dims = SimpleNamespace(
        name="unet3d", depth=depth, width=width, in_channels=in_channels, out_channels=out_channels
    )
    return UNet3D(dims)  # type: ignore[arg-type]


def build_network(arch: Architecture) -> UNet3D:
    """The network described by ``arch`` with fresh (random) weights."""
    if arch.name != "unet3d":
        from .errors import LabelFreeError

        raise LabelFreeError(f"unknown architecture {arch.name!r}; this version knows 'unet3d'")
    return UNet3D(arch)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def fnet_weights_init(net: nn.Module) -> nn.Module:
    """pytorch_fnet's initialisation, in place: conv weights N(0, 0.02), BatchNorm weights
    N(1, 0.02) and biases 0 (conv biases as PyTorch makes them), from torch's global generator."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv3d | nn.ConvTranspose3d):
                m.weight.normal_(0.0, 0.02)
            elif isinstance(m, nn.BatchNorm3d):
                m.weight.normal_(1.0, 0.02)
                m.bias.zero_()
    return net


def randomize_batchnorm(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm layer non-trivial running statistics and affine terms, in place.

    An untrained BatchNorm is the identity in eval mode, so a test or benchmark of BatchNorm
    folding on an untrained network would prove nothing; this makes it act like a trained one.
    Returns ``net`` in eval mode.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.3)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return net.eval()
