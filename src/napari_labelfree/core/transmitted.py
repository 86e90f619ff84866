"""Telling transmitted light from fluorescence by its pixels, where no name says which it is.

Transmitted light (bright-field, phase, DIC) is a bright field with structures about as dark as
they are bright: its intensities spread about evenly on both sides of the median. Fluorescence is
a dark background with a few structures far brighter than it: a long tail above the median only.
The measure compares the two sides, so a camera offset or a gain does not change it. The reader
(which channels to show in grey) and the Predict widget (which layer to predict from) both use it.
"""

from __future__ import annotations

import numpy as np

# at or below this, a plane looks like transmitted light (bright-field ~1, fluorescence >> 2)
TRANSMITTED_SKEW = 2.0
_SAMPLE = 100_000  # pixels looked at: enough for stable percentiles, cheap on any plane


def brightness_skew(plane: np.ndarray) -> float:
    """(99.5th percentile - median) / (median - 0.5th percentile) of a strided sample of a plane.

    About 1 for transmitted light, far above 2 for fluorescence; inf for a plane with nothing
    below its median (an empty or saturated one) and for one without finite pixels.
    """
    size = float(np.prod(plane.shape, dtype=float))  # lazy (dask) planes: only the sample is read
    step = max(1, int(np.ceil(np.sqrt(size / _SAMPLE))))
    sample = np.asarray(plane[..., ::step, ::step], dtype=np.float32).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return float("inf")
    lo, mid, hi = np.percentile(sample, [0.5, 50.0, 99.5])
    below = float(mid - lo)
    return float(hi - mid) / below if below > 0 else float("inf")


def looks_transmitted_pixels(plane: np.ndarray) -> bool:
    """Whether a plane's intensities look like transmitted light rather than fluorescence."""
    return brightness_skew(plane) <= TRANSMITTED_SKEW
