"""Compact statistics of what a network sees: a few dozen numbers per image, no pixels.

Computed on z-scored volumes on the model's grid (what the network is fed), per patch, in four
groups that tell apart the usual ways an input can be unlike a model's training images:

* ``intensity``: quantiles of the z-scored values. A fluorescence channel (dark background,
  bright objects) is strongly skewed; transmitted light is roughly symmetric about its mean.
* ``spectrum``: the share of YX power in half-octave bands of spatial frequency (cycles per
  voxel) and of Z power in octave bands. A voxel size wrong by 3x moves features by 3x in scale,
  i.e. shifts this curve by more than three bands.
* ``contrast``: quantiles of the local standard deviation (7x7 windows in YX): how texture is
  spread over the image (empty background, dense cells, noise).
* ``relief``: odd (third-order) moments of neighbouring voxels along four directions. Over a
  bright-field or phase contrast image they average out; DIC's shear shades one side of every
  edge bright and the other dark, always in the same direction. Version 2 takes neighbours 1
  voxel apart (version 1: 2), which told the simulator's DIC from bright-field better on
  validation fields (docs/trust.md).
* ``depth`` (version 2): how an image changes through focus: the share of its variance that is
  the same in every plane of a patch, and the correlation of planes 2 and 4 voxels apart.
  Bright-field contrast of thin, transparent cells fades and reverses through focus; phase
  contrast (and a wrong z-step) keeps or changes it at another rate.

A model's training statistics are the median and the spread (scaled MAD) of each feature over
random patches of its training inputs; :mod:`.ood` compares an input's median with them.

Training images of several kinds (a model trained on clean and domain-randomized simulated
fields, or on two microscopes) are not described by one centre: the median falls between the
kinds and the images of a tight minority kind sit far from it. So the training images are also
grouped into a few *components* (:func:`field_components`): complete linkage of the images'
median features, no two images of a component more than ``SPLIT_DEVIATION`` overall spreads
apart in any group; each component keeps its own median and spread, computed from patches of its
own images. An input is like the training images when it is like the whole or like one of the
components (:mod:`.ood`). Images of one kind give no component, and their statistics are
exactly what they were; the components are an optional key (``"components"``) that readers
before it ignore, so the version stays 2.

A mixture as varied as domain-randomized fields has more kinds than a few components hold: its
rarer images (the finest pixels, strong relief) lie far from the whole and from every kind. So
the training images that formed no component (those beyond the ``MAX_FIELDS`` sampled for them)
can be scored as an input is (:func:`.ood.calibration`), and each group's limit widened to the
largest share of it one of them reaches (``"calibration"``, optional too): a held-out image of the
same mix then exceeds it about as rarely as one more training image would (split conformal: at
most 1 / (n + 1) per group for n such images; or on every training image, ``calibrate_on="all"``,
which widens more and has no such bound). It is asked for (``calibrate=ood.calibration``),
not the default: widening a group's limit for every input also lets through more of the mistakes
it catches, and on validation fields it cost the built-in dna's statistics most of their stain
detection (docs/trust.md); whether it pays is measured per model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

STATS_VERSION = 2
# versions whose statistics this version compares (each group with the features it stored)
READABLE_VERSIONS = (1, 2)
# Patch (Z, Y, X) on the model grid; smaller images use the whole of their smaller axes.
PATCH_SHAPE = (16, 64, 64)
TRAINING_PATCHES = 192
INPUT_PATCHES = 24
QUANTILES = (0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995)
# half-octave YX bands from 1/64 to 1/2 cycles per voxel; octave Z bands from 1/16 to 1/2
YX_EDGES = tuple(0.5 * 2.0 ** (-k / 2) for k in range(10, -1, -1))
Z_EDGES = (1 / 16, 1 / 8, 1 / 4, 0.5)
CONTRAST_QUANTILES = (0.1, 0.5, 0.9)
LOCAL_WINDOW = 7
RELIEF_SHIFT = 1  # voxels on the model grid (version 1 statistics: LEGACY_RELIEF_SHIFT)
LEGACY_RELIEF_SHIFT = 2

GROUPS: dict[str, list[str]] = {
    "intensity": [f"q{q:g}" for q in QUANTILES],
    "spectrum": [f"yx{lo:.3g}-{hi:.3g}" for lo, hi in zip(YX_EDGES, YX_EDGES[1:], strict=False)]
    + [f"z{lo:.3g}-{hi:.3g}" for lo, hi in zip(Z_EDGES, Z_EDGES[1:], strict=False)],
    "contrast": [f"local_std_q{q:g}" for q in CONTRAST_QUANTILES],
    "relief": ["relief1_x", "relief1_y", "relief1_diag", "relief1_antidiag"],
    "depth": ["z_persistence", "z_corr_2", "z_corr_4"],
}
# computed for version 1 statistics, which stored them as their relief group
LEGACY_FEATURES = ["relief_x", "relief_y", "relief_diag", "relief_antidiag"]
# every feature a patch gives: the groups' in order, then the legacy ones
FEATURE_NAMES: list[str] = [n for names in GROUPS.values() for n in names] + LEGACY_FEATURES
# Smallest spread per group (feature units): a feature that barely varies in training must not
# turn a harmless difference into a warning (spectrum and contrast are log10, intensity z units).
SPREAD_FLOOR = {
    "intensity": 0.05,
    "spectrum": 0.05,
    "contrast": 0.03,
    "relief": 0.01,
    "depth": 0.02,
}
Z_LAGS = (2, 4)  # planes on the model grid
# Components (mixtures of kinds of training images): patches drawn from each image, at most
# this many images (a random subset of more), at least this many images to a kind, at most this
# many kinds; two images are of two kinds when their medians differ by more than
# SPLIT_DEVIATION overall spreads (root mean square over a group's features) in some group:
# the limit an input's deviation is held to (ood.THRESHOLD), so that a kind apart is one an
# image of it could not pass as.
FIELD_PATCHES = 8
MAX_FIELDS = 48
MIN_IMAGES = 2
MAX_COMPONENTS = 4
SPLIT_DEVIATION = 2.5
# a kind is kept only when its centre lies this far from the overall one (half the limit): the
# images of a kind nearer are described by the whole set (the 16 clean-preset training fields
# of the built-ins fall into kinds at most 0.8 apart from it; the dna's clean fields, 5.8)
KIND_APART = SPLIT_DEVIATION / 2
# calibration needs at least this many images: those that formed no component ("no kind"), or
# every training image ("all")
MIN_CALIBRATION_IMAGES = 10
CALIBRATION_IMAGES = ("no kind", "all")


def patch_features(patch: np.ndarray) -> np.ndarray:
    """The features (``FEATURE_NAMES`` order) of one z-scored ZYX patch; NaN where undefined."""
    p = np.asarray(patch, dtype=np.float64)
    out = [np.quantile(p, QUANTILES)]
    out += [_yx_spectrum(p), _z_spectrum(p), _local_contrast(p), _relief(p, RELIEF_SHIFT)]
    out += [_depth(p), _relief(p, LEGACY_RELIEF_SHIFT)]
    return np.concatenate(out)


def _band_shares(power: np.ndarray, freq: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """log10 share of power per band (NaN for a band no frequency of this patch falls in)."""
    lo, hi = edges[0], edges[-1]
    inside = (freq >= lo) & (freq <= hi)
    total = power[inside].sum()
    shares = np.full(len(edges) - 1, np.nan)
    if total <= 0:
        return shares
    for k, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        sel = (freq >= a) & ((freq < b) if k < len(edges) - 2 else (freq <= b))
        if sel.any():
            shares[k] = np.log10(max(power[sel].mean() * sel.sum() / total, 1e-12))
    return shares


def _yx_spectrum(p: np.ndarray) -> np.ndarray:
    """log10 band shares of the YX power (averaged over z-slices)."""
    _, ny, nx = p.shape
    window = np.outer(np.hanning(ny), np.hanning(nx)) if min(ny, nx) > 2 else np.ones((ny, nx))
    planes = (p - p.mean(axis=(1, 2), keepdims=True)) * window
    power = (np.abs(np.fft.rfft2(planes)) ** 2).mean(axis=0)
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    return _band_shares(power, np.sqrt(fy**2 + fx**2), YX_EDGES)


def _relief(p: np.ndarray, k: int) -> np.ndarray:
    """How much brighter one side of an edge is than the other, along X, Y and both diagonals.

    A power spectrum cannot see it (an image and its mirror image share one); the third-order
    moment E[a b (b - a)] of voxel pairs a, b ``k`` voxels apart changes sign under mirroring.
    Scaled by E[(b - a)^2]^1.5 it does not depend on contrast. Signed: over many patches of a
    bright-field or phase image it averages out; DIC's fixed shear direction keeps one sign.
    """
    _, ny, nx = p.shape
    if min(ny, nx) <= k:
        return np.full(4, np.nan)
    out = []
    for dy, dx in ((0, k), (k, 0), (k, k), (k, -k)):
        a = p[:, : ny - dy, max(0, -dx) : nx - max(0, dx)]
        b = p[:, dy:, max(0, dx) : nx - max(0, -dx)]
        energy = float(np.mean((b - a) ** 2))
        out.append(float(np.mean(a * b * (b - a))) / energy**1.5 if energy > 0 else np.nan)
    return np.array(out)


def _depth(p: np.ndarray) -> np.ndarray:
    """Share of the variance that every plane shares (the plane-mean image's), and the
    correlation of planes ``Z_LAGS`` apart (each plane's mean removed); NaN for thin patches."""
    nz = p.shape[0]
    if nz < 2 * max(Z_LAGS):
        return np.full(1 + len(Z_LAGS), np.nan)
    planes = p - p.mean(axis=(1, 2), keepdims=True)
    total = float(np.mean(planes * planes))
    if total <= 0:
        return np.full(1 + len(Z_LAGS), np.nan)
    out = [float(np.mean(planes.mean(axis=0) ** 2)) / total]
    for lag in Z_LAGS:
        a, b = planes[:-lag], planes[lag:]
        denom = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
        out.append(float(np.sum(a * b)) / denom if denom > 0 else np.nan)
    return np.array(out)


def _z_spectrum(p: np.ndarray) -> np.ndarray:
    nz = p.shape[0]
    if nz < 4:
        return np.full(len(Z_EDGES) - 1, np.nan)
    cols = (p - p.mean(axis=0, keepdims=True)) * np.hanning(nz)[:, None, None]
    power = (np.abs(np.fft.rfft(cols, axis=0)) ** 2).mean(axis=(1, 2))
    return _band_shares(power, np.fft.rfftfreq(nz), Z_EDGES)


def _local_contrast(p: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    size = (1, LOCAL_WINDOW, LOCAL_WINDOW)
    mean = uniform_filter(p, size, mode="reflect")
    var = np.clip(uniform_filter(p * p, size, mode="reflect") - mean * mean, 1e-12, None)
    return np.log10(np.sqrt(np.quantile(var, CONTRAST_QUANTILES)))


def patch_shape_for(shape_zyx: Sequence[int]) -> tuple[int, int, int]:
    """The statistics patch for a volume: ``PATCH_SHAPE``, cut down to the volume's size."""
    return tuple(min(p, int(n)) for p, n in zip(PATCH_SHAPE, shape_zyx, strict=True))  # type: ignore[return-value]


def sample_features(
    volumes: Sequence[np.ndarray], n_patches: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, n_features) features of ``n_patches`` random patches, uniform over every position.

    Each volume is a z-scored ZYX array on the model grid; a volume draws patches in proportion to
    its number of patch positions (as training draws its patches).
    """
    vols = [np.asarray(v) for v in volumes if np.asarray(v).size]
    if not vols:
        raise ValueError("no volume to compute statistics from")
    shapes = [patch_shape_for(v.shape) for v in vols]
    counts = np.array(
        [
            np.prod([n - p + 1 for n, p in zip(v.shape, s, strict=True)])
            for v, s in zip(vols, shapes, strict=True)
        ],
        dtype=float,
    )
    picks = rng.choice(len(vols), size=n_patches, p=counts / counts.sum())
    rows = []
    for i in picks:
        v, s = vols[int(i)], shapes[int(i)]
        z, y, x = (int(rng.integers(0, n - p + 1)) for n, p in zip(v.shape, s, strict=True))
        rows.append(patch_features(v[z : z + s[0], y : y + s[1], x : x + s[2]]))
    return np.stack(rows)


def component_sample(n_images: int, rng: np.random.Generator) -> list[int]:
    """Which of ``n_images`` images :func:`field_components` describes: all, or a random
    ``MAX_FIELDS`` of more."""
    if n_images > MAX_FIELDS:
        return np.sort(rng.choice(n_images, size=MAX_FIELDS, replace=False)).tolist()
    return list(range(n_images))


def field_components(
    volumes: Sequence[np.ndarray], overall: dict[str, Any], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """The kinds of images among ``volumes``, each summarized as :func:`summarize` does.

    Each image (at most ``MAX_FIELDS``) is described by the median features of
    ``FIELD_PATCHES`` of its patches, in units of the ``overall`` statistics' spreads. Images
    are grouped by complete linkage: a kind is a set of at least ``MIN_IMAGES`` images of which
    no two differ by more than ``SPLIT_DEVIATION`` in any group. Kept are the kinds whose
    median lies more than ``KIND_APART`` from the overall one (the others are described by the
    whole set), the ``MAX_COMPONENTS`` largest, each with its number of images and patches and
    its ``groups``; [] for images of one kind. Images of no kind (e.g. each domain-randomized
    field its own) are described by the overall statistics alone.

    A kind keeps its own median and spread (flooring its spread at the overall one lost
    detections on validation fields of the built-in dna: a stain 67 % instead of 75 %).
    """
    vols = [np.asarray(v) for v in volumes if np.asarray(v).size]
    if len(vols) < 2:
        return []
    vols = [vols[i] for i in component_sample(len(vols), rng)]
    feats = [sample_features([v], FIELD_PATCHES, rng) for v in vols]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.stack([np.nanmedian(f, axis=0) for f in feats])
    kinds = _complete_linkage(_group_distances(medians, overall), SPLIT_DEVIATION)
    kinds = sorted(kinds, key=lambda k: (-len(k), k[0]))
    out = []
    for kind in kinds:
        if len(kind) < MIN_IMAGES or len(kinds) == 1:
            continue
        summary = summarize(np.concatenate([feats[i] for i in kind]))
        # a kind near the overall centre is described by the whole set already
        if _apart(summary, overall) > KIND_APART:
            n = summary["n_patches"]
            out.append({"n_images": len(kind), "n_patches": n, "groups": summary["groups"]})
    return out[:MAX_COMPONENTS]


def stored_floats(values: Sequence[float | None]) -> np.ndarray:
    """Stored medians or spreads as floats (JSON keeps a NaN as null: back to NaN)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _apart(stats: dict[str, Any], overall: dict[str, Any]) -> float:
    """How far the median of ``stats`` lies from the overall one, in overall spreads: the largest
    over groups of the root mean square over the group's features."""
    worst = 0.0
    for group in GROUPS:
        mu, ref = stats["groups"][group], overall["groups"][group]
        a = stored_floats(mu["median"])
        b = stored_floats(ref["median"])
        sd = stored_floats(ref["spread"])
        z = (a - b) / np.maximum(np.nan_to_num(sd, nan=0.0), SPREAD_FLOOR[group])
        z = z[np.isfinite(z)]
        if z.size:
            worst = max(worst, float(np.sqrt(np.mean(z * z))))
    return worst


def _group_distances(medians: np.ndarray, overall: dict[str, Any]) -> np.ndarray:
    """(n, n): how far apart two images' median features are, in overall spreads: the largest
    over groups of the root mean square over the group's features (NaN features left out)."""
    n = len(medians)
    out = np.zeros((n, n))
    for group, names in GROUPS.items():
        ref = overall["groups"][group]
        cols = [FEATURE_NAMES.index(name) for name in names]
        sd = stored_floats(ref["spread"])
        z = medians[:, cols] / np.maximum(np.nan_to_num(sd, nan=0.0), SPREAD_FLOOR[group])
        diff = (z[:, None, :] - z[None, :, :]) ** 2
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            d = np.sqrt(np.nanmean(diff, axis=2))
        out = np.maximum(out, np.nan_to_num(d, nan=0.0))
    return out


def _complete_linkage(dist: np.ndarray, cut: float) -> list[list[int]]:
    """Clusters (sorted lists of indices) of complete linkage, cut where two members would be
    more than ``cut`` apart (scipy's hierarchical clustering)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    labels = fcluster(
        linkage(squareform(dist, checks=False), method="complete"), t=cut, criterion="distance"
    )
    return [np.flatnonzero(labels == label).tolist() for label in np.unique(labels)]


def summarize(features: np.ndarray) -> dict[str, Any]:
    """The statistics stored in config.json: per feature the median and robust spread."""
    features = np.asarray(features, dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN feature stays NaN
        median = np.nanmedian(features, axis=0)
        spread = 1.4826 * np.nanmedian(np.abs(features - median), axis=0)
    groups = {}
    k = 0
    for group, names in GROUPS.items():
        n = len(names)
        mu, sd = median[k : k + n], np.maximum(spread[k : k + n], SPREAD_FLOOR[group])
        with np.errstate(all="ignore"):
            z = (features[:, k : k + n] - mu) / sd
        z = np.where(np.isfinite(z), z, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            single = np.sqrt(np.nanmean(z * z, axis=1))  # each training patch's own deviation
        groups[group] = {
            "median": [_num(v) for v in mu],
            "spread": [_num(v) for v in spread[k : k + n]],
            # how far one training patch alone strays: an input of one patch is held to this
            "patch_score_q99": _num(float(np.nanquantile(single, 0.99)))
            if np.isfinite(single).any()
            else None,
        }
        k += n
    return {
        "version": STATS_VERSION,
        "patch_shape_zyx": list(PATCH_SHAPE),
        "n_patches": int(features.shape[0]),
        "features": {g: GROUPS[g] for g in GROUPS},
        "groups": groups,
    }


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 5)


def training_statistics(
    volumes: Sequence[np.ndarray],
    seed: int = 0,
    calibrate: Callable[[dict[str, Any], list[np.ndarray]], dict[str, Any]] | None = None,
    calibrate_on: str = "no kind",
) -> dict[str, Any]:
    """Statistics of a model's training inputs (z-scored ZYX volumes on the model grid).

    Used by training (``core.train.loop``) and for models trained elsewhere (see
    :func:`~napari_labelfree.core.trust.builtin.simulated_statistics`). Deterministic for a seed.
    ``calibrate`` (:func:`.ood.calibration`, passed in: :mod:`.ood` imports this module) gives the
    ``"calibration"`` entry from the statistics and the images that formed no component (or, with
    ``calibrate_on="all"``, every image), when at least ``MIN_CALIBRATION_IMAGES`` are; nothing
    else changes.
    """
    if calibrate_on not in CALIBRATION_IMAGES:
        raise ValueError(f"calibrate_on must be one of {CALIBRATION_IMAGES}, got {calibrate_on!r}")
    vols = [np.asarray(v) for v in volumes if np.asarray(v).size]
    rng = np.random.default_rng([seed, 7])
    stats = summarize(sample_features(vols, TRAINING_PATCHES, rng))
    if len(vols) < 2:
        return stats
    sampled = component_sample(len(vols), rng)
    components = field_components([vols[i] for i in sampled], stats, rng)
    if components:
        stats["components"] = components
    if calibrate_on == "all":
        rest = list(range(len(vols)))
    else:  # the images that formed no component
        rest = sorted(set(range(len(vols))) - set(sampled))
    if calibrate is not None and len(rest) >= MIN_CALIBRATION_IMAGES:
        stats["calibration"] = {
            **calibrate(stats, [vols[i] for i in rest]),
            "images": calibrate_on,
        }
    return stats
