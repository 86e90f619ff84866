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


def z_projection(stack: np.ndarray, projection: str) -> np.ndarray:
    """The "max" or "mean" projection of a ZYX stack over z, as one plane (1, Y, X)."""
    reduce = np.max if projection == "max" else np.mean
    return reduce(stack, axis=0, keepdims=True)


def zscore(volume: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """(x - mean) / std, as the paper normalizes each image; float32.

    The mean and standard deviation are those of ``region`` (a part of ``volume``), or of the
    whole volume when it is None.
    """
    v = np.asarray(volume, dtype=np.float32)
    r = v if region is None else np.asarray(region, dtype=np.float32)
    mean, std = _checked_stats(*_mean_std(r))
    # only a numpy array of another dtype was surely copied by the conversion: that copy is ours
    # to normalize in place; anything else may share the caller's memory
    converted = isinstance(volume, np.ndarray) and volume.dtype != np.float32
    out = v if converted else v.copy()
    out -= np.float32(mean)
    out /= np.float32(std)
    return out


_STATS_CHUNK = 1 << 22  # voxels per float64 temporary: 32 MiB, however large the frame


def _mean_std(r: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of ``r`` with float64 accumulation, a few planes at a time.

    numpy's ``std(dtype=float64)`` holds a float64 copy of the whole array (2 GiB for a
    64x2048x2048 frame) and takes seconds on it; sums over slabs give the same figures.
    """
    flat = np.ravel(r)  # a view of a contiguous array, a copy of a strided region
    n = flat.size
    if n == 0:
        return float("nan"), float("nan")
    total = 0.0
    for i in range(0, n, _STATS_CHUNK):
        total += float(np.sum(flat[i : i + _STATS_CHUNK], dtype=np.float64))
    mean = total / n
    squares = 0.0
    for i in range(0, n, _STATS_CHUNK):
        d = flat[i : i + _STATS_CHUNK].astype(np.float64)
        d -= mean
        squares += float(np.dot(d, d))
    return mean, float(np.sqrt(squares / n))


def _checked_stats(mean: float, std: float) -> tuple[float, float]:
    """(mean, std) of an image, refused when it cannot be z-scored."""
    if not np.isfinite(std):
        raise LabelFreeError(
            "the image contains NaN or infinite values; clean it before prediction"
        )
    if std == 0.0:
        raise LabelFreeError(
            "the image is constant (all voxels equal); there is nothing to predict from"
        )
    return mean, std


def zscore_tensor_(volume: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`zscore` of a float32 ZYX tensor, in place, on the tensor's device.

    The statistics are reduced on the device with float64 accumulation (as numpy's), so a frame
    on a GPU never comes back to the host to be normalized.
    """
    r = volume if region is None else region
    # float64 accumulation keeps a large image's mean exact; the variance is taken about it
    mean = torch.mean(r, dtype=torch.float64)
    var = torch.mean(torch.square(r - mean.float()), dtype=torch.float64)
    mean_f, std_f = _checked_stats(float(mean), float(var.sqrt()))
    return volume.sub_(mean_f).div_(std_f)


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
    region = _normalization_region(volume.shape[0], normalization, voxel_size, model_voxel_size)
    return zscore(volume, None if region is None else volume[region])


def normalize_tensor_(
    volume: torch.Tensor,
    normalization: Normalization | None = None,
    voxel_size: Sequence[float] | None = None,
    model_voxel_size: Sequence[float] | None = None,
) -> torch.Tensor:
    """:func:`normalize` of a float32 ZYX tensor, in place on its device (same statistics)."""
    region = _normalization_region(volume.shape[0], normalization, voxel_size, model_voxel_size)
    return zscore_tensor_(volume, None if region is None else volume[region])


def _normalization_region(
    n_z: int,
    normalization: Normalization | None,
    voxel_size: Sequence[float] | None,
    model_voxel_size: Sequence[float] | None,
) -> slice | None:
    """The z-slices whose statistics normalize the volume (None: all of it)."""
    norm = normalization or Normalization()
    if norm.scope == "per-image":
        return None
    n = norm.center_slices
    if voxel_size is not None and model_voxel_size is not None:
        n = int(round(n * float(model_voxel_size[0]) / float(voxel_size[0])))
    return center_slices(n_z, n)


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
    sigma = prefilter_sigma(volume.shape, shape_zyx)
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


def prefilter_sigma(shape_zyx: Sequence[int], new_shape_zyx: Sequence[int]) -> list[float]:
    """Gaussian sigma per axis before resizing (0 where the axis does not shrink by > 1.2x)."""
    factors = [n / s for n, s in zip(shape_zyx, new_shape_zyx, strict=True)]
    return [0.5 * f if f > 1.2 else 0.0 for f in factors]


def _gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's 1D Gaussian kernel (radius ``int(truncate * sigma + 0.5)``), float64."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / float(sigma)) ** 2)
    return k / k.sum()


def gaussian_filter_tensor(volume: torch.Tensor, sigma: Sequence[float]) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter(volume, sigma, mode="nearest")`` for a ZYX float tensor.

    Separable: one 1D convolution per axis with edge replication, on the tensor's device; axes
    with sigma 0 are left alone (as scipy does).
    """
    v = volume[None, None]
    for axis, s in enumerate(sigma):
        if s <= 0:
            continue
        k = torch.from_numpy(_gaussian_kernel(s)).to(volume.device, volume.dtype)
        r = (k.numel() - 1) // 2
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r  # F.pad lists the last axis first
        v = F.conv3d(F.pad(v, pad, mode="replicate"), k.reshape(shape))
    return v[0, 0]


def resize_tensor(volume: torch.Tensor, shape_zyx: Sequence[int]) -> torch.Tensor:
    """:func:`resize` of a float32 ZYX tensor on its device (same prefilter, same interpolation)."""
    shape_zyx = tuple(int(s) for s in shape_zyx)
    if tuple(volume.shape) == shape_zyx:
        return volume
    sigma = prefilter_sigma(volume.shape, shape_zyx)
    v = gaussian_filter_tensor(volume, sigma) if any(s > 0 for s in sigma) else volume
    out = F.interpolate(v[None, None], size=shape_zyx, mode="trilinear", align_corners=False)
    return out[0, 0]
