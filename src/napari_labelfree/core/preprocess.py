"""Normalization and resampling between an image's voxel size and a model's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import Normalization
from .errors import LabelFreeError

# Voxel sizes closer than this (relative) are treated as equal: resampling would only blur.
VOXEL_SIZE_TOLERANCE = 0.02


def zscore(volume: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """(x - mean) / std, as the paper normalizes each image; float32.

    The mean and standard deviation are those of ``region`` (a part of ``volume``), or of the
    whole volume when it is None.
    """
    v = np.asarray(volume, dtype=np.float32)
    r = v if region is None else np.asarray(region, dtype=np.float32)
    mean = float(r.mean(dtype=np.float64))
    std = float(r.std(dtype=np.float64))
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


def center_slices(n_z: int, n_slices: int) -> slice:
    """The ``n_slices`` z-slices around the middle of a stack of ``n_z`` (all when fewer).

    Starts at n_z // 2 - n_slices // 2, moved inside the stack, as pytorch_fnet's
    ``norm_around_center`` does.
    """
    n = min(max(1, int(n_slices)), n_z)
    start = min(max(0, n_z // 2 - n // 2), n_z - n)
    return slice(start, start + n)


def normalize(
    volume: np.ndarray,
    normalization: Normalization | None = None,
    voxel_size: Sequence[float] | None = None,
    model_voxel_size: Sequence[float] | None = None,
) -> np.ndarray:
    """Normalize a ZYX volume as a model expects (``ModelSpec.normalization``); float32.

    "per-image" z-scores over the whole volume. "center-slices" z-scores with the statistics of
    the middle ``center_slices`` slices counted at the model's voxel size: with both voxel sizes
    given, the window is rescaled to the volume's Z spacing so it covers the same depth in um.
    """
    norm = normalization or Normalization()
    if norm.scope == "per-image":
        return zscore(volume)
    n = norm.center_slices
    if voxel_size is not None and model_voxel_size is not None:
        n = int(round(n * float(model_voxel_size[0]) / float(voxel_size[0])))
    return zscore(volume, volume[center_slices(volume.shape[0], n)])


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
