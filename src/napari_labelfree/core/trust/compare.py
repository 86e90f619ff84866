"""A prediction against a real stain of the same field: Pearson r, SSIM and the error map.

The quick answer to "does this model work on my microscope?" when the file also holds a
fluorescence channel of the predicted structure. Both images are z-scored first (a prediction is
in z-scored units, a stain in camera counts), so the error map reads in standard deviations.
A stain of one plane (a maximum projection, as confocal stains often come) is compared with a
one-plane prediction (a 2.5D projection model's) as it is, and with a z-stack prediction through
the stack's maximum projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import LabelFreeError
from ..structures import find_structure, looks_transmitted


@dataclass(frozen=True)
class StainComparison:
    """Scores of a prediction against a stain, and their difference voxel by voxel."""

    pearson_r: float
    ssim: float
    error: np.ndarray  # z-scored prediction minus z-scored stain, float32 (one plane: Y, X)
    projected: bool = False  # the prediction's maximum projection was compared (a one-plane stain)

    def text(self, prediction: str, stain: str) -> str:
        what = f"the maximum projection of {prediction}" if self.projected else prediction
        return (
            f"{what} against {stain}: Pearson r {self.pearson_r:.3f}, SSIM {self.ssim:.3f} "
            "(both z-scored; the error map is prediction minus stain in standard deviations)"
        )


def _plane(shape: Sequence[int]) -> tuple[int, ...] | None:
    """Y, X of a one-plane image (Y, X or 1, Y, X); None for a stack."""
    shape = tuple(shape)
    if len(shape) == 2:
        return shape
    return shape[1:] if len(shape) == 3 and shape[0] == 1 else None


def comparable(prediction_shape: Sequence[int], stain_shape: Sequence[int]) -> bool:
    """Whether a prediction and a stain of these shapes are one field: the same shape, or a
    one-plane stain of a prediction's Y, X (a one-plane prediction or a z-stack's projection)."""
    if tuple(prediction_shape) == tuple(stain_shape):
        return True
    plane = _plane(stain_shape)
    return (
        plane is not None
        and len(prediction_shape) in (2, 3)
        and (tuple(prediction_shape[-2:]) == plane)
    )


def _z(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    std = float(a.std(dtype=np.float64))
    if not np.isfinite(std) or std == 0.0:
        raise LabelFreeError("the image is constant or not finite: there is nothing to compare")
    return (a - np.float32(a.mean(dtype=np.float64))) / np.float32(std)


def compare_with_stain(prediction: np.ndarray, stain: np.ndarray) -> StainComparison:
    """Pearson r, SSIM and error map of a prediction against a stain of the same shape (ZYX or YX)."""
    from ..metrics import score_all

    p, s = np.asarray(prediction), np.asarray(stain)
    if not comparable(p.shape, s.shape):
        raise LabelFreeError(
            f"the prediction {p.shape} and the stain {s.shape} differ in shape; compare images "
            "of the same field (the stain from the same file as the transmitted light)"
        )
    projected = False
    if p.shape != s.shape:  # a one-plane stain: compare planes
        projected = _plane(p.shape) is None
        p = p.max(axis=0) if projected else p.reshape(p.shape[-2:])
        s = s.reshape(s.shape[-2:])
    zp, zs = _z(p), _z(s)
    scores = score_all(zp, zs)
    return StainComparison(scores["pearson_r"], scores["ssim"], zp - zs, projected)


def matching_stains(structure: str, names: Sequence[str]) -> list[str]:
    """The names (channels, layers) that are a fluorescence stain of ``structure``."""
    wanted = find_structure(structure)
    if wanted is None:
        return []
    out = []
    for n in names:
        channel = n.rsplit(": ", 1)[-1]  # the reader names layers "file: channel"
        if looks_transmitted(channel) or any(k in n for k in ("(predict", "(uncertainty", " vs ")):
            continue
        found = find_structure(channel)
        if found is not None and found.name == wanted.name:
            out.append(n)
    return out
