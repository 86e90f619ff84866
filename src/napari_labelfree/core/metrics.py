"""Scores of a prediction against its target: Pearson r and the paper's normalized L2 error.

Normalization, stated once (and followed by ``labelfree evaluate``, training and the demo):

* the **target** is z-scored over the whole image (mean 0, standard deviation 1), exactly as it is
  for training (Ounkomol et al. 2018 z-score every image);
* the **prediction** is used as the network outputs it. A model is trained to output the z-scored
  target, so its output is already in z-scored-target units; re-normalizing it would hide errors
  of scale and offset and would leave a blank prediction undefined.

With that, ``nl2 = sum((prediction - z(target))**2) / sum(z(target)**2)``. Since ``z(target)`` has
unit variance the denominator is the voxel count, so ``nl2`` is the mean squared error in target
standard deviations: a blank (all-zero) prediction scores exactly 1.0, a perfect one 0.0, and a
prediction worse than blank scores above 1.0.

Pearson r is invariant to affine changes of either image, so it needs no normalization.

The image-quality scores virtual-staining papers report now (scikit-image's implementations) use
the same normalization: the prediction as is, against ``z(target)``, with the data range being the
z-scored target's range (max - min):

* **SSIM**: structural similarity (Wang et al. 2004) with a 7-voxel window (smaller where an axis
  is shorter; 2D or 3D alike), Gaussian-free uniform window as scikit-image's default;
* **PSNR**: 10 log10(range**2 / MSE), in dB;
* **NRMSE**: root mean squared error divided by that range ("min-max" normalization), so it does
  not repeat nl2 (whose square root is the RMSE divided by the target's standard deviation).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import LabelFreeError


def _check_pair(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(prediction, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    if np.shape(prediction) != np.shape(target):
        raise LabelFreeError(
            f"prediction of shape {np.shape(prediction)} and target of shape {np.shape(target)} "
            "differ; score images of the same shape"
        )
    if p.size == 0:
        raise LabelFreeError("cannot score empty images")
    return p, t


def pearson_r(prediction: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation coefficient over all voxels (float64 accumulation).

    Parameters
    ----------
    prediction, target
        Arrays of the same shape (any number of axes).

    Returns
    -------
    float
        r in [-1, 1]; NaN when either image is constant (r is undefined there).
    """
    p, t = _check_pair(prediction, target)
    p = p - p.mean()
    t = t - t.mean()
    denom = math.sqrt(float(p @ p) * float(t @ t))
    if denom == 0.0:
        return float("nan")
    return float(np.clip(float(p @ t) / denom, -1.0, 1.0))


def zscore_target(target: np.ndarray) -> np.ndarray:
    """The target z-scored over the whole image, in float64 (the reference the scores use)."""
    t = np.asarray(target, dtype=np.float64)
    std = float(t.std())
    if std == 0.0 or not math.isfinite(std):
        raise LabelFreeError("the target image is constant or not finite; it cannot be scored")
    return (t - t.mean()) / std


def nl2(prediction: np.ndarray, target: np.ndarray) -> float:
    """The paper's normalized L2 error: a blank prediction scores 1.0, a perfect one 0.0.

    ``sum((prediction - z(target))**2) / sum(z(target)**2)``, where ``z`` z-scores the target over
    the whole image and the prediction is taken as is (in z-scored-target units, which is what a
    model trained on z-scored targets outputs). See the module docstring.

    Parameters
    ----------
    prediction
        Model output, in z-scored-target units.
    target
        Raw (or already z-scored) target of the same shape; it is z-scored here.
    """
    p, _ = _check_pair(prediction, target)
    t = zscore_target(target).ravel()
    d = p - t
    return float((d @ d) / (t @ t))


def score(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Both paper scores at once: ``{"pearson_r": ..., "nl2": ...}``."""
    return {"pearson_r": pearson_r(prediction, target), "nl2": nl2(prediction, target)}


# every score :func:`score_all` gives, in report order; True where higher is better
SCORES: dict[str, bool] = {
    "pearson_r": True,
    "nl2": False,
    "ssim": True,
    "psnr": True,
    "nrmse": False,
}


def _ssim_window(shape: tuple[int, ...]) -> int:
    """scikit-image's 7-voxel window, shrunk to the largest odd size every axis can hold."""
    win = min(7, *shape)
    return win if win % 2 else win - 1


def score_all(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Pearson r, nl2, SSIM, PSNR and NRMSE of a prediction (normalization: module docstring).

    Parameters
    ----------
    prediction
        Model output (2D or 3D), in z-scored-target units.
    target
        Raw target of the same shape; z-scored here.

    Returns
    -------
    dict
        ``{name: value}`` for every name in :data:`SCORES`.
    """
    from skimage.metrics import (
        normalized_root_mse,
        peak_signal_noise_ratio,
        structural_similarity,
    )

    p, _ = _check_pair(prediction, target)
    t = zscore_target(target)
    p = p.reshape(t.shape)
    data_range = float(t.max() - t.min())
    # SSIM over the axes an image has: one plane (a projection) is a 2D image, not a thin volume
    axes = tuple(n for n in t.shape if n > 1) or t.shape
    win = _ssim_window(axes)
    out = score(prediction, target)
    if win >= 3:
        out["ssim"] = float(
            structural_similarity(
                t.reshape(axes), p.reshape(axes), win_size=win, data_range=data_range
            )
        )
    else:  # an axis under 3 voxels holds no SSIM window
        out["ssim"] = float("nan")
    mse = float(np.mean((p - t) ** 2))
    out["psnr"] = (
        float(peak_signal_noise_ratio(t, p, data_range=data_range)) if mse > 0 else float("inf")
    )
    out["nrmse"] = float(normalized_root_mse(t, p, normalization="min-max"))
    return out
