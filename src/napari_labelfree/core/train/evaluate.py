"""Scoring a trained model on whole images, predicted as a user predicts them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..bundle import ModelBundle
from ..data import ImagePair
from ..errors import LabelFreeError
from ..events import drain
from ..metrics import score_all
from ..preprocess import z_projection

# the key of an entry scored on its prediction's z-projection (a one-plane target); value: how
PROJECTED = "prediction_projected"


def evaluate_model(
    bundle: ModelBundle, pairs: Sequence[ImagePair], device: Any = "auto"
) -> list[dict[str, Any]]:
    """Whole-image scores of one model on image pairs (the scores of ``labelfree evaluate``).

    Each signal is predicted as a user would predict it (z-scored, resampled to the model's voxel
    size, tiled, resampled back); the prediction is scored against its target at the target's own
    grid (see :mod:`napari_labelfree.core.metrics` for the normalization).

    Parameters
    ----------
    device
        'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a ``torch.device``.

    Returns
    -------
    list of dict
        One ``{"name", "pearson_r", "nl2", "ssim", "psnr", "nrmse"}`` per pair
        (:func:`napari_labelfree.core.metrics.score_all`). A model predicting stacks against a
        one-plane target (a maximum projection, as the ISL data's) is scored on the maximum
        projection of its prediction, and its entry says so (``PROJECTED``: "max").
    """
    from ..predict.run import iter_predict_volume

    out = []
    for pair in pairs:
        sig_shape, tgt_shape = np.shape(pair.signal), np.shape(pair.target)
        # a stack predicted against a one-plane target (a projection): its maximum is scored
        project = not bundle.spec.target_projection and tgt_shape[0] == 1 < sig_shape[0]
        if bundle.spec.target_projection or project:  # one target plane per stack
            sig_shape, tgt_shape = sig_shape[1:], tgt_shape[1:]
        if sig_shape != tgt_shape:
            raise LabelFreeError(
                f"{pair.name or 'an image pair'}: signal {np.shape(pair.signal)} and target "
                f"{np.shape(pair.target)} differ in shape"
            )
        vox = pair.voxel_size or bundle.spec.voxel_size_um
        pred = drain(iter_predict_volume(np.asarray(pair.signal), [bundle], vox, device=device))
        p = next(iter(pred.values()))
        if project:
            p = z_projection(p, "max")
        target = np.asarray(pair.target)
        if bundle.spec.target_projection and target.shape[0] > 1:  # what it was trained against
            target = z_projection(target, bundle.spec.target_projection)
        scores = score_all(p, target)
        out.append({"name": pair.name, **scores, **({PROJECTED: "max"} if project else {})})
    return out


def mean_score(values: Sequence[float | None]) -> float | None:
    """Mean of the finite values; None when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None
