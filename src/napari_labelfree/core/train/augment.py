"""Training augmentation on the device, per patch: geometry on signal and target, intensity on the signal.

Real paired data sets are small, and the paper's recipe (no augmentation) overfits them. Each patch
of a batch gets its own draw of:

* **geometry**, the same on signal and target: a flip along Z, Y and X (each with probability 1/2)
  and a rotation by a multiple of 90 degrees in YX (only by 0 or 180 degrees where the patch is not
  square in YX, so that the patch keeps its shape). Transmitted-light images have no preferred
  direction in YX; Z flips are kept because bright-field contrast inverts through focus
  symmetrically enough that a flipped stack is still a plausible one.
* **intensity**, on the signal only (the target is what the network must reproduce, unchanged),
  each with probability 1/2: a Gaussian blur of sigma 0.1-0.5 voxel, a gamma of 0.8-1.25 (on
  the patch's own min-max range, then back), a scale of 0.8-1.25 and an offset of -0.2..0.2
  (z-scored units), and Gaussian noise of standard deviation 0-0.1.

Every parameter is drawn from the numpy generator that draws the patch positions, whose state the
checkpoint already holds; the noise voxels come from a torch generator on the device seeded by one
draw of it per batch. A resumed run therefore augments exactly as an uninterrupted one would, and
a run with augmentation off draws nothing (its patches are those it always drew).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Ranges (z-scored units for intensities, voxels for the blur): mild enough to keep the signal a
# plausible transmitted-light image, wide enough to cover stain-free microscope-to-microscope drift.
P_INTENSITY = 0.5
BLUR_SIGMA = (0.1, 0.5)
GAMMA = (0.8, 1.25)
SCALE = (0.8, 1.25)
OFFSET = (-0.2, 0.2)
NOISE_STD = (0.0, 0.1)


class Augmenter:
    """Augments (N, 1, Z, Y, X) batches of signal and target patches on their device.

    Parameters
    ----------
    rng
        The generator the patch positions are drawn from (its state is in the checkpoint).
    device
        Where the batches live; the noise generator lives there too.
    """

    def __init__(self, rng: np.random.Generator, device: torch.device) -> None:
        self.rng = rng
        self.device = torch.device(device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch augmented: ``x`` (signal) and ``y`` (target), same shapes as given."""
        n = x.shape[0]
        square = x.shape[-1] == x.shape[-2]
        xs, ys = [], []
        for i in range(n):
            flips = [d for d, f in zip((2, 3, 4), self.rng.random(3) < 0.5, strict=True) if f]
            k = int(self.rng.integers(0, 4)) if square else 2 * int(self.rng.integers(0, 2))
            xs.append(geometric(x[i : i + 1], flips, k))
            ys.append(geometric(y[i : i + 1], flips, k))
        x, y = torch.cat(xs), torch.cat(ys)
        return self.intensity(x), y

    def _draw(self, n: int, low: float, high: float, neutral: float, log: bool = False) -> list:
        """Per patch: a value in [low, high] with probability P_INTENSITY, else ``neutral``."""
        on = self.rng.random(n) < P_INTENSITY
        u = self.rng.random(n)
        if log:
            v = np.exp(np.log(low) + u * (np.log(high) - np.log(low)))
        else:
            v = low + u * (high - low)
        return [float(a) if o else neutral for a, o in zip(v, on, strict=True)]

    def intensity(self, x: torch.Tensor) -> torch.Tensor:
        """Blur, gamma, scale and offset, noise: per patch, the signal only."""
        n = x.shape[0]
        blur = self._draw(n, *BLUR_SIGMA, neutral=0.0)
        gamma = self._draw(n, *GAMMA, neutral=1.0, log=True)
        scale = self._draw(n, *SCALE, neutral=1.0, log=True)
        offset = self._draw(n, *OFFSET, neutral=0.0)
        noise = self._draw(n, *NOISE_STD, neutral=0.0)
        seed = int(self.rng.integers(0, 2**62))
        if any(s > 0 for s in blur):
            x = gaussian_blur(x, blur)
        if any(g != 1.0 for g in gamma):
            x = apply_gamma(x, gamma)
        shape = (n, 1, 1, 1, 1)
        x = x * _column(scale, shape, x) + _column(offset, shape, x)
        if any(s > 0 for s in noise):
            g = torch.Generator(device=x.device).manual_seed(seed)
            z = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
            x = x + z * _column(noise, shape, x)
        return x


def _column(values: list[float], shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype).reshape(shape).to(like.device)


def geometric(t: torch.Tensor, flip_dims: list[int], k: int) -> torch.Tensor:
    """Flip ``t`` (N, C, Z, Y, X) along ``flip_dims``, then rotate by ``k`` x 90 degrees in YX."""
    if flip_dims:
        t = torch.flip(t, flip_dims)
    if k % 4:
        t = torch.rot90(t, k, dims=(3, 4))
    return t


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalized 3-tap Gaussian (sigma <= 0.5 voxel puts under 0.5 % of its mass beyond it)."""
    if sigma <= 0:
        return torch.tensor([0.0, 1.0, 0.0])
    w = math.exp(-1.0 / (2.0 * sigma * sigma))
    return torch.tensor([w, 1.0, w]) / (1.0 + 2.0 * w)


def gaussian_blur(x: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """Blur each patch of (N, 1, Z, Y, X) with its own isotropic sigma (separable, edge-replicated)."""
    n = x.shape[0]
    k = torch.stack([gaussian_kernel(s) for s in sigmas]).to(device=x.device, dtype=x.dtype)
    h = x.reshape(1, n, *x.shape[2:])  # patches as channels: one grouped conv blurs them all
    for axis in range(3):
        view = [n, 1, 1, 1, 1]
        view[2 + axis] = 3
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = 1
        h = F.conv3d(F.pad(h, pad, mode="replicate"), k.reshape(view), groups=n)
    return h.reshape(x.shape)


def apply_gamma(x: torch.Tensor, gammas: list[float]) -> torch.Tensor:
    """Gamma on each patch's own [min, max] range, mapped back to that range."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    lo = flat.min(dim=1).values.reshape(n, 1, 1, 1, 1)
    hi = flat.max(dim=1).values.reshape(n, 1, 1, 1, 1)
    span = (hi - lo).clamp_min(1e-6)
    u = ((x - lo) / span).clamp(0, 1)
    g = _column(gammas, (n, 1, 1, 1, 1), x)
    return lo + span * u.pow(g)
