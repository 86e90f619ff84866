"""Training images as the network sees them: z-scored, at the model's voxel size, cut into patches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..config import Normalization
from ..data import ImagePair
from ..errors import LabelFreeError
from ..preprocess import needs_resampling, normalize, resampled_shape, resize, zscore


def prepare_pair(
    pair: ImagePair,
    model_voxel: Sequence[float],
    patch_shape: Sequence[int],
    normalization: Normalization | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Z-score signal and target, resample them to the model's voxel size, pad up to a patch.

    The signal is normalized as the model's ``normalization`` says (prediction does the same;
    the paper's per-image z-score by default), the target always per image.

    Returns
    -------
    signal, target, notices
        float32 ZYX arrays of equal shape, at least ``patch_shape``; texts for the user.
    """
    label = pair.name or "an image pair"
    sig = np.asarray(pair.signal)
    tgt = np.asarray(pair.target)
    if sig.ndim != 3 or tgt.ndim != 3:
        raise LabelFreeError(
            f"{label}: signal {sig.shape} and target {tgt.shape} must both be 3D (Z, Y, X) z-stacks"
        )
    if sig.shape != tgt.shape:
        raise LabelFreeError(
            f"{label}: signal shape {sig.shape} and target shape {tgt.shape} differ; "
            "training needs registered pairs of the same shape"
        )
    notices: list[str] = []
    try:
        sig = normalize(sig, normalization, pair.voxel_size, model_voxel)
        tgt = zscore(tgt)
    except LabelFreeError as e:
        raise LabelFreeError(f"{label}: {e}") from e
    if pair.voxel_size is not None and needs_resampling(pair.voxel_size, model_voxel):
        shape = resampled_shape(sig.shape, pair.voxel_size, model_voxel)
        sig, tgt = resize(sig, shape), resize(tgt, shape)
    short = [max(0, int(p) - n) for n, p in zip(sig.shape, patch_shape, strict=True)]
    if any(short):
        # Mirror padding keeps image statistics at the border (zero padding would teach the
        # network an artificial edge); the notice tells the user their image is small.
        pad = [(s // 2, s - s // 2) for s in short]
        notices.append(
            f"{label}: {sig.shape} voxels at the model's voxel size is smaller than the patch "
            f"{tuple(patch_shape)}; mirror-padded to fit"
        )
        sig = np.pad(sig, pad, mode="symmetric")
        tgt = np.pad(tgt, pad, mode="symmetric")
    return np.ascontiguousarray(sig), np.ascontiguousarray(tgt), notices


class PatchSampler:
    """Random patch positions, uniform over every valid position of every image.

    An image is drawn with probability proportional to its number of patch positions, then a
    position uniformly within it: every patch of the training set is equally likely, so a large
    image is not under-sampled relative to a small one.
    """

    def __init__(
        self, shapes: Sequence[Sequence[int]], patch_shape: Sequence[int], rng: np.random.Generator
    ) -> None:
        self.patch = tuple(int(p) for p in patch_shape)
        self.ranges = [
            tuple(int(n) - p + 1 for n, p in zip(s, self.patch, strict=True)) for s in shapes
        ]
        counts = np.array([float(np.prod(r)) for r in self.ranges])
        self.p = counts / counts.sum()
        self.rng = rng

    def sample(self, n: int) -> list[tuple[int, int, int, int]]:
        """``n`` positions as (image index, z, y, x) of the patch's first voxel."""
        images = self.rng.choice(len(self.ranges), size=n, p=self.p)
        out = []
        for i in images:
            z, y, x = (int(self.rng.integers(0, r)) for r in self.ranges[int(i)])
            out.append((int(i), z, y, x))
        return out


def cut_patches(
    images: Sequence[torch.Tensor], where: Sequence[tuple[int, int, int, int]], patch: Sequence[int]
) -> torch.Tensor:
    """A (N, 1, Z, Y, X) batch of patches cut from images on whatever device they live on."""
    pz, py, px = patch
    return torch.stack([images[i][z : z + pz, y : y + py, x : x + px] for i, z, y, x in where])[
        :, None
    ]
