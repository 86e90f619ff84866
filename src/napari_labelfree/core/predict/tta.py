"""Test-time augmentation: the mean of the predictions of flipped and rotated copies of each tile.

A transmitted-light image and its fluorescence have no preferred direction in YX, so a model's
prediction of a rotated input, rotated back, is another estimate of the same thing; their mean has
less of the network's orientation-dependent error. Variants ("yx": the 8 symmetries of the square,
i.e. 4 rotations by 90 degrees in YX, each with and without a flip of X; "yxz": those 8 and each
flipped in Z, 16) are applied to each tile, predicted one by one, transformed back and averaged.
The cost is one tile pass per variant: 8x (or 16x) the prediction time, no more memory. Tiles are
multiples of the network's stride on every axis, so a rotated tile (Y and X swapped) still fits it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TTA_MODES = ("none", "yx", "yxz")

Predictor = Callable[[torch.Tensor], torch.Tensor]


def variants(mode: str) -> list[tuple[bool, bool, int]]:
    """(flip Z, flip X, quarter turns in YX) of every variant of ``mode``."""
    if mode == "none":
        return [(False, False, 0)]
    yx = [(False, fx, k) for fx in (False, True) for k in range(4)]
    if mode == "yx":
        return yx
    return yx + [(True, fx, k) for _, fx, k in yx]


def forward(t: torch.Tensor, fz: bool, fx: bool, k: int) -> torch.Tensor:
    """A variant of (N, C, Z, Y, X) ``t``: flips first, then ``k`` quarter turns in YX."""
    dims = [d for d, f in ((2, fz), (4, fx)) if f]
    if dims:
        t = torch.flip(t, dims)
    return torch.rot90(t, k, dims=(3, 4)) if k else t


def inverse(t: torch.Tensor, fz: bool, fx: bool, k: int) -> torch.Tensor:
    """Undo :func:`forward`: turn back, then flip again."""
    if k:
        t = torch.rot90(t, -k, dims=(3, 4))
    dims = [d for d, f in ((2, fz), (4, fx)) if f]
    return torch.flip(t, dims) if dims else t


def tta_predictor(predict: Predictor, mode: str) -> Predictor:
    """``predict`` averaged over the variants of ``mode`` (the same function for "none")."""
    if mode == "none":
        return predict
    vs = variants(mode)

    def averaged(batch: torch.Tensor) -> torch.Tensor:
        total = None
        for v in vs:
            out = inverse(predict(forward(batch, *v)), *v)
            total = out if total is None else total + out
        return total / len(vs)

    return averaged


def spread_predictor(predict: Predictor, mode: str, within: bool = False) -> Predictor:
    """Mean and standard deviation of ``predict`` over the variants of ``mode`` ("none": "yx").

    The output has twice the channels: the means of the n outputs, then their standard deviations
    (the voxel-wise spread that core.trust calls uncertainty). Same cost as :func:`tta_predictor`.

    ``within``: ``predict`` returns 2n channels, n means and the n variances inside each (an
    ensemble's members, :mod:`..ensemble_net`); the spread is then over every member and variant,
    sqrt(mean of the variances + variance of the means) (the law of total variance).
    """
    vs = variants("yx" if mode == "none" else mode)

    def both(batch: torch.Tensor) -> torch.Tensor:
        # Welford's running mean and sum of squared deviations: no cancellation where the
        # variants agree (E[x^2] - E[x]^2 in float32 would leave noise of 1e-3 there)
        mean = m2 = inside = None
        for k, v in enumerate(vs, start=1):
            out = inverse(predict(forward(batch, *v)), *v).float()
            if within:
                out, var = out.chunk(2, dim=1)
                inside = var if inside is None else inside + var
            if mean is None:
                mean, m2 = out, torch.zeros_like(out)
                continue
            delta = out - mean
            mean = mean + delta / k
            m2 += delta * (out - mean)
        var = m2 / len(vs)
        if inside is not None:
            var = var + inside / len(vs)
        return torch.cat([mean, var.clamp_min_(0.0).sqrt_()], dim=1)

    return both
