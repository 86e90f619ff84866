"""Normalization and resampling between an image's voxel size and a model's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import LabelFreeError

# Voxel sizes closer than this (relative) are treated as equal: resampling would only blur.
VOXEL_SIZE_TOLERANCE = 0.02


def zscore(volume: np.ndarray) -> np.ndarray:
    """(x - mean) / std over the whole volume, as the paper normalizes each image; float32."""
    v = np.asarray(volume, dtype=np.float32)
    mean = float(v.mean(dtype=np.float64))
    std = float(v.std(dtype=np.float64))
    if not np.isfinite(std):
        raise LabelFreeError(
            "the image contains NaN or infinite values; clean it before prediction"
        )
    if std == 0.0:
        raise LabelFreeError(
            "the image is constant (all voxels equal); there is nothing to predict from"
        )
    out = v - np.float32(mean)
    out /= np.float32(std)
    return out


def resampled_shape(
    shape_zyx: Sequence[int], from_voxel: Sequence[float], to_voxel: Sequence[float]
) -> tuple[int, int, int]:
    """Shape of a volume of ``shape_zyx`` at ``from_voxel`` um once resampled to ``to_voxel`` um."""
    return tuple(
        max(1, int(round(n * f / t)))
        for n, f, t in zip(shape_zyx, from_voxel, to_voxel, strict=True)
    )  # type: ignore[return-value]


def needs_resampling(from_voxel: Sequence[float], to_voxel: Sequence[float]) -> bool:
    return any(
        abs(f / t - 1.0) > VOXEL_SIZE_TOLERANCE for f, t in zip(from_voxel, to_voxel, strict=True)
    )


def resize(volume: np.ndarray, shape_zyx: Sequence[int]) -> np.ndarray:
    """Resize a ZYX float volume to ``shape_zyx`` (trilinear; Gaussian prefilter where it shrinks).

    The prefilter (sigma = 0.5 x shrink factor) keeps down-sampling from aliasing fine texture,
    which would otherwise change what the network sees at another magnification.
    """
    shape_zyx = tuple(int(s) for s in shape_zyx)
    if tuple(volume.shape) == shape_zyx:
        return np.asarray(volume, dtype=np.float32)
    factors = [n / s for n, s in zip(volume.shape, shape_zyx, strict=True)]
    sigma = [0.5 * f if f > 1.2 else 0.0 for f in factors]
    v = np.asarray(volume, dtype=np.float32)
    if any(s > 0 for s in sigma):
        from scipy.ndimage import gaussian_filter  # only when downsampling; import costs 0.25 s

        v = gaussian_filter(v, sigma=sigma, mode="nearest")
    t = torch.from_numpy(np.ascontiguousarray(v))[None, None]
    out = F.interpolate(t, size=shape_zyx, mode="trilinear", align_corners=False)
    return out[0, 0].numpy()


def to_model_grid(
    volume: np.ndarray, voxel_size: Sequence[float], model_voxel_size: Sequence[float]
) -> np.ndarray:
    """Resample a ZYX volume from its voxel size to the model's (no-op when they match)."""
    if not needs_resampling(voxel_size, model_voxel_size):
        return np.asarray(volume, dtype=np.float32)
    return resize(volume, resampled_shape(volume.shape, voxel_size, model_voxel_size))
