"""The 3D U-Net of Ounkomol et al. (2018), as in their reference software pytorch_fnet, and its
2D and 2.5D variants.

Each level: two conv3x3x3-BN-ReLU; down by a 2x2x2 stride-2 conv + BN + ReLU; up by a 2x2x2
transposed conv + BN + ReLU; the skip is concatenated before the level's second pair of convs.
Channels: ``width`` at the top level, doubling per level. A final 3x3x3 conv maps to one channel
with no activation. Depth 4 / width 32 is the paper's network (23.28 M parameters).

The 2D network ("unet2d") is the same with flat kernels (1x3x3, 1x2x2): every z-plane is
predicted on its own, which is a 2D U-Net (pytorch_fnet's ``fnet_nn_2d``) run plane by plane. The
2.5D network ("unet2.5d") is the 2D one whose first convolution is ``in_planes`` x 3 x 3: each
output plane sees the window of ``in_planes`` planes around it. It pads the stack's ends by
repeating the end planes (``pad_z``), so a stack of Z planes gives Z planes; with ``pad_z`` off
(training on windows) a window gives its centre plane alone.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # this file also runs alone, outside the package: see ``unet3d``
    from .config import Architecture


def _k3(flat: bool, first_z: int = 1) -> dict:
    """Keyword arguments of a 3x3x3 (or flat 1x3x3, or first_z x 3 x 3 unpadded in z) conv."""
    if not flat:
        return {"kernel_size": 3, "padding": 1}
    return {"kernel_size": (first_z, 3, 3), "padding": (0, 1, 1)}


def _k2(flat: bool) -> dict:
    """Keyword arguments of the 2x2x2 stride-2 down / up convolutions (1x2x2 when flat)."""
    return (
        {"kernel_size": 2, "stride": 2}
        if not flat
        else {"kernel_size": (1, 2, 2), "stride": (1, 2, 2)}
    )


class DoubleConv(nn.Module):
    """Two conv3x3x3 (flat: 1x3x3; the 2.5D input: in_planes x 3 x 3) + BatchNorm + ReLU."""

    def __init__(self, n_in: int, n_out: int, flat: bool = False, first_z: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(n_in, n_out, **_k3(flat, first_z))
        self.bn1 = nn.BatchNorm3d(n_out)
        self.conv2 = nn.Conv3d(n_out, n_out, **_k3(flat))
        self.bn2 = nn.BatchNorm3d(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(x)))


class Level(nn.Module):
    """One resolution level; holds the levels below it (recursive, like pytorch_fnet)."""

    def __init__(
        self, n_in: int, n_out: int, depth: int, flat: bool = False, first_z: int = 1
    ) -> None:
        super().__init__()
        self.depth = depth
        self.encode = DoubleConv(n_in, n_out, flat, first_z)
        if depth > 0:
            self.down = nn.Conv3d(n_out, n_out, **_k2(flat))
            self.down_bn = nn.BatchNorm3d(n_out)
            self.below = Level(n_out, 2 * n_out, depth - 1, flat)
            self.up = nn.ConvTranspose3d(2 * n_out, n_out, **_k2(flat))
            self.up_bn = nn.BatchNorm3d(n_out)
            self.decode = DoubleConv(2 * n_out, n_out, flat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.encode(x)
        if self.depth == 0:
            return skip
        y = torch.relu(self.down_bn(self.down(skip)))
        y = self.below(y)
        y = torch.relu(self.up_bn(self.up(y)))
        return self.decode(torch.cat((skip, y), dim=1))


class UNet3D(nn.Module):
    """Fully convolutional U-Net; input (N, C, Z, Y, X) with Y, X (and Z for 3D) multiples of
    2**depth. A 2D or 2.5D network (``arch.name``) keeps Z as it is."""

    def __init__(self, arch: Architecture | None = None) -> None:
        super().__init__()
        if arch is None:
            from .config import Architecture

            arch = Architecture()
        self.arch = arch
        name = getattr(arch, "name", "unet3d")
        flat = name != "unet3d"
        self.window = int(getattr(arch, "in_planes", 1)) if name == "unet2.5d" else 1
        self.pad_z = True  # 2.5D: repeat the end planes so that Z planes in give Z planes out
        self.body = Level(
            self.arch.in_channels, self.arch.width, self.arch.depth, flat, self.window
        )
        self.head = nn.Conv3d(self.arch.width, self.arch.out_channels, **_k3(flat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # (N, C, Y, X): a 2D network on planes (bioimage.io's b, c, y, x)
            return self.forward(x.unsqueeze(2)).squeeze(2)
        return self.head(self.body(pad_window(x, self.window) if self.pad_z else x))


def pad_window(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, C, Z, Y, X) with (window - 1) / 2 copies of the first and last planes added along Z."""
    h = (window - 1) // 2
    if h == 0:
        return x
    return torch.cat(
        [x[:, :, :1].expand(-1, -1, h, -1, -1), x, x[:, :, -1:].expand(-1, -1, h, -1, -1)], 2
    )


def unet3d(
    depth: int = 4,
    width: int = 32,
    in_channels: int = 1,
    out_channels: int = 1,
    name: str = "unet3d",
    in_planes: int = 1,
) -> UNet3D:
    """The network from plain numbers, fresh weights.

    bioimage.io packages name this function with this file as their architecture: consumers
    load the file alone (no package around it), so nothing here may import the package.
    """
    dims = SimpleNamespace(
        name=name,
        depth=depth,
        width=width,
        in_channels=in_channels,
        out_channels=out_channels,
        in_planes=in_planes,
    )
    return UNet3D(dims)  # type: ignore[arg-type]


def build_network(arch: Architecture) -> UNet3D:
    """The network described by ``arch`` with fresh (random) weights."""
    if arch.name not in ("unet3d", "unet2d", "unet2.5d"):
        from .errors import LabelFreeError

        raise LabelFreeError(
            f"unknown architecture {arch.name!r}; this version knows 'unet3d', 'unet2d', 'unet2.5d'"
        )
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
