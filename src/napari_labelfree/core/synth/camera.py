"""The camera of the simulator: photons to counts."""

from __future__ import annotations

import numpy as np


def camera(
    photons: np.ndarray, rng: np.random.Generator, read_noise: float, offset: float, noise: bool
) -> np.ndarray:
    """sCMOS-like camera: Poisson shot noise, Gaussian read noise, offset (gain 1 count/e-)."""
    if not noise:
        return (photons + offset).astype(np.float32)
    counts = rng.poisson(np.clip(photons, 0, None)).astype(np.float32)
    counts += rng.normal(0, read_noise, photons.shape).astype(np.float32)
    return counts + offset
