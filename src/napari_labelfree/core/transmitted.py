"""Telling transmitted light from fluorescence by its pixels, where no name says which it is.

Transmitted light (bright-field, phase, DIC) is a bright field with structures about as dark as
they are bright: its intensities spread about evenly on both sides of the median. Fluorescence is
a dark background with a few structures far brighter than it: a long tail above the median only.
The measure compares the two sides, so a camera offset or a gain does not change it. The reader
(which channels to show in grey) and the Predict widget (which layer to predict from, and whether
to warn) both use it, on the whole stack: every frame, several z-planes of each, pooled. One plane
is not enough: a fluorescence stack's first planes are often empty noise, which is as symmetric
as a bright field.
"""

from __future__ import annotations

import numpy as np

# at or below this, a plane looks like transmitted light (bright-field ~1, fluorescence >> 2)
TRANSMITTED_SKEW = 2.0
_SAMPLE = 100_000  # pixels looked at: enough for stable percentiles, cheap on any plane
_STACK_SAMPLE = 1_000_000  # pixels looked at over a whole stack
_PLANE_SAMPLE = 4_096  # at least this many from each plane looked at
_STACK_PLANES = 32  # z-planes looked at (spread over the frames; at least one per frame)


def brightness_skew(plane: np.ndarray) -> float:
    """(99.5th percentile - median) / (median - 0.5th percentile) of a strided sample of a plane.

    About 1 for transmitted light, far above 2 for fluorescence; inf for a plane with nothing
    below its median (an empty or saturated one) and for one without finite pixels.
    """
    return _skew(_strided(plane, _SAMPLE))


def _strided(plane: np.ndarray, n: int) -> np.ndarray:
    """About ``n`` pixels of a plane on a regular grid (lazy planes: only those are read)."""
    size = float(np.prod(plane.shape, dtype=float))
    step = max(1, int(np.ceil(np.sqrt(size / n))))
    return np.asarray(plane[..., ::step, ::step], dtype=np.float32).ravel()


def _skew(sample: np.ndarray) -> float:
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return float("inf")
    lo, mid, hi = np.percentile(sample, [0.5, 50.0, 99.5])
    below = float(mid - lo)
    return float(hi - mid) / below if below > 0 else float("inf")


def looks_transmitted_pixels(plane: np.ndarray) -> bool:
    """Whether a plane's intensities look like transmitted light rather than fluorescence."""
    return brightness_skew(plane) <= TRANSMITTED_SKEW


def sampled_planes(shape: tuple[int, ...], max_frames: int | None = None) -> list[tuple[int, ...]]:
    """Indices of the planes of a (..., Z, Y, X) stack that the stack test looks at.

    Every frame (each index of the axes before Z; at most ``max_frames`` of them, evenly spread,
    when given), and in each an even spread of z-planes away from the ends: about
    :data:`_STACK_PLANES` planes in all, at least one per frame.
    """
    if len(shape) < 3:
        return [()]
    lead, n_z = shape[:-3], shape[-3]
    frames = list(np.ndindex(*lead)) if lead else [()]
    if max_frames is not None and len(frames) > max_frames:
        pick = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
        frames = [frames[i] for i in sorted(set(pick.tolist()))]
    per_frame = max(1, min(n_z, _STACK_PLANES // len(frames)))
    zs = sorted({int(round(z)) for z in np.linspace(0, n_z - 1, per_frame + 2)[1:-1]})
    return [(*f, z) for f in frames for z in zs]


def stack_brightness_skew(stack: np.ndarray, max_frames: int | None = None) -> float:
    """:func:`brightness_skew` of a pooled sample of a whole (..., Z, Y, X) stack (or a plane).

    Pooled, not per plane: fluorescence confined to a few planes still gives the long bright tail,
    while the empty planes around it (symmetric noise) only add background. ``max_frames`` bounds
    the frames read for lazy data, where each frame read can be a whole file read.
    """
    planes = sampled_planes(tuple(stack.shape), max_frames)
    per_plane = max(_PLANE_SAMPLE, _STACK_SAMPLE // len(planes))
    return _skew(np.concatenate([_strided(stack[idx], per_plane) for idx in planes]))


def looks_transmitted_stack(stack: np.ndarray, max_frames: int | None = None) -> bool:
    """Whether a whole stack's intensities look like transmitted light (see
    :func:`stack_brightness_skew`)."""
    return stack_brightness_skew(stack, max_frames) <= TRANSMITTED_SKEW
