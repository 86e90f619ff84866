"""Is this image like the ones a model was trained on? A check on the statistics of :mod:`.stats`.

The input is normalized and resampled to the model's grid as prediction does (a central crop of
at most ``CROP_ZYX`` model voxels: the check costs a fraction of one tile's prediction), cut into
patches, and the median of each feature over the patches is compared with the model's training
statistics in units of their spread. A group of features (intensity, spectrum, contrast,
relief, depth) differs when the root mean square of its features' deviations exceeds
``THRESHOLD``. Statistics of a mixture of kinds of training images also hold each kind's
(``components``, :func:`.stats.field_components`): the input is compared with the whole and with
each kind, and the one it is most like is the one that counts. Statistics of a larger mixture
also hold each group's ``calibration`` scale (:func:`calibration`): the limits are widened so that
the training images that formed no kind, scored as an input is, pass. The threshold was chosen on
training and validation images only (benchmarks/ood_detection.py measures the false-alarm and
detection rates on held-out ones).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import ModelSpec
from ..data import NOT_RECORDED
from ..events import Notice
from .stats import (
    FEATURE_NAMES,
    INPUT_PATCHES,
    READABLE_VERSIONS,
    SPREAD_FLOOR,
    sample_features,
    stored_floats,
)

# Deviation (root mean square over a group's features, in training spreads) above which a group
# differs; chosen on validation images (benchmarks/ood_detection.py, docs/trust.md).
THRESHOLD = 2.5
CROP_ZYX = (48, 256, 256)
STATS_VOXELS = 1 << 24  # at most about this many voxels give the normalization's mean and std

OK, DIFFERS, UNKNOWN = "ok", "differs", "unknown"

# what each group's difference most often means, phrased as the thing to check
HINTS = {
    "intensity": "is it a fluorescence channel rather than transmitted light?",
    "spectrum": "is the voxel size right?",
    "contrast": "another microscope, modality or kind of sample?",
    "relief": "is it DIC for a model of bright-field or phase contrast (or the other way)?",
    "depth": "another modality, or a wrong z-step (how the image changes through focus)?",
}
LABELS = {
    "intensity": "intensity distribution",
    "spectrum": "spatial frequencies",
    "contrast": "local contrast",
    "relief": "shaded relief",
    "depth": "change through focus",
}


@dataclass(frozen=True)
class InputCheck:
    """The outcome of comparing one image with one model's training inputs."""

    model: str
    status: str  # OK, DIFFERS or UNKNOWN (the model stores no statistics)
    scores: dict[str, float] = field(default_factory=dict)  # group -> deviation in spreads
    thresholds: dict[str, float] = field(default_factory=dict)  # group -> its limit here

    @property
    def differing(self) -> list[str]:
        return [g for g, s in self.scores.items() if s > self.thresholds.get(g, THRESHOLD)]

    def text(self) -> str:
        """One line for the user ('' when the image looks like the training images)."""
        if self.status == UNKNOWN:
            return (
                f"model {self.model} stores no statistics of its training images (imported, or "
                "trained before napari-labelfree kept them): cannot check whether this image is "
                "like them"
            )
        if self.status == OK:
            return ""
        worst = sorted(self.differing, key=lambda g: -self.scores[g])
        what = ", ".join(
            f"{LABELS[g]} {self.scores[g]:.1f}x its training spread (usual: up to "
            f"{self.thresholds.get(g, THRESHOLD):.1f}x)"
            for g in worst
        )
        hints = " ".join(HINTS[g] for g in worst)
        return (
            f"model {self.model}: this image is unlike the model's training images ({what}): "
            f"{hints} Its prediction may look plausible and still be wrong"
        )


def has_statistics(spec: ModelSpec) -> bool:
    stats = getattr(spec, "input_statistics", None)
    return (
        isinstance(stats, dict)
        and stats.get("version") in READABLE_VERSIONS
        and isinstance(stats.get("groups"), dict)
        and isinstance(stats.get("features"), dict)
    )


def input_on_model_grid(
    frame: np.ndarray, voxel_size: Sequence[float], spec: ModelSpec
) -> np.ndarray:
    """A central crop of a ZYX frame as the network sees it: normalized, on the model's grid.

    The mean and standard deviation are the model normalization's, taken over the whole frame
    (slice by slice: no float copy of a large frame; over a regular grid of about
    ``STATS_VOXELS`` of its voxels when it has more); only the crop is resampled.
    """
    from ..preprocess import _normalization_region, to_model_grid

    frame = np.asarray(frame)
    model_vox = spec.voxel_size_um
    region = _normalization_region(frame.shape[0], spec.normalization, voxel_size, model_vox)
    part = frame if region is None else frame[region]
    # a large frame's mean and spread from a regular grid of STATS_VOXELS of its voxels: the
    # check is statistical, and reading every voxel of a 64x2048x2048 frame took most of it
    step = max(1, int(math.sqrt(part.size / STATS_VOXELS)))
    s1 = s2 = 0.0
    n = 0
    for plane in part:
        p = plane[::step, ::step].astype(np.float64)
        s1 += float(p.sum())
        s2 += float((p * p).sum())
        n += p.size
    mean = s1 / n
    std = math.sqrt(max(s2 / n - mean * mean, 0.0))
    if not math.isfinite(std) or std == 0.0:
        raise ValueError("constant or non-finite image")
    # CROP_ZYX model voxels in the frame's own voxels
    sizes = [
        max(1, int(math.ceil(c * m / v)))
        for c, v, m in zip(CROP_ZYX, voxel_size, model_vox, strict=True)
    ]
    sub = (central_crop(frame, sizes).astype(np.float32) - np.float32(mean)) / np.float32(std)
    return to_model_grid(sub, voxel_size, model_vox)


def central_crop(volume: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """The centre of ``volume``, at most ``sizes`` voxels along each axis (a view)."""
    crop = []
    for n, size in zip(volume.shape, sizes, strict=True):
        k = min(n, size)
        crop.append(slice((n - k) // 2, (n - k) // 2 + k))
    return volume[tuple(crop)]


def compare(features: np.ndarray, stats: dict[str, Any]) -> dict[str, float]:
    """Deviation per group of one image's median features from the training statistics.

    Each group is compared on the features its statistics list (by name), so statistics of an
    older version (fewer features, fewer groups) are compared as they were.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a band a small image lacks stays NaN
        med = np.nanmedian(np.asarray(features, dtype=np.float64), axis=0)
    where = {name: i for i, name in enumerate(FEATURE_NAMES)}
    scores: dict[str, float] = {}
    for group, ref in stats["groups"].items():
        names = stats["features"].get(group) or []
        if group not in SPREAD_FLOOR or len(names) != len(ref.get("median", ())):
            continue  # a group this version does not know
        x = np.array([med[where[n]] if n in where else np.nan for n in names], dtype=float)
        mu = stored_floats(ref["median"])
        sd = stored_floats(ref["spread"])
        z = (x - mu) / np.maximum(sd, SPREAD_FLOOR[group])
        z = z[np.isfinite(z)]
        if z.size:
            scores[group] = round(float(np.sqrt(np.mean(z * z))), 2)
    return scores


def input_features(
    frame: np.ndarray, voxel_size: Sequence[float], spec: ModelSpec
) -> tuple[np.ndarray, int] | None:
    """(features of random patches, independent patches) of a frame as ``spec``'s network sees
    it (None: a constant frame)."""
    try:
        grid = input_on_model_grid(frame, voxel_size, spec)
    except ValueError:
        return None  # a constant frame: prediction itself says so
    return grid_features(grid)


def grid_features(grid: np.ndarray) -> tuple[np.ndarray, int]:
    """(features of random patches, independent patches) of a normalized volume on the model's
    grid, at most ``CROP_ZYX`` voxels (:func:`input_on_model_grid`'s crop)."""
    feats = sample_features([grid], INPUT_PATCHES, np.random.default_rng(0))
    return feats, min(INPUT_PATCHES, independent_patches(grid.shape))


def check_input(
    frame: np.ndarray,
    voxel_size: Sequence[float],
    spec: ModelSpec,
    model: str = "",
    features: tuple[np.ndarray, int] | None = None,
) -> InputCheck:
    """Compare a raw ZYX frame (at ``voxel_size`` um) with ``spec``'s training inputs.

    ``features`` (:func:`input_features` for a spec of the same voxel size and normalization)
    saves computing them again for each of several models.
    """
    name = model or spec.display_name or spec.structure
    if not has_statistics(spec):
        return InputCheck(name, UNKNOWN)
    if features is None:
        features = input_features(frame, voxel_size, spec)
    if features is None:
        return InputCheck(name, UNKNOWN)
    features, n_independent = features
    stats: dict[str, Any] = spec.input_statistics  # type: ignore[assignment]
    scale = limit_scales(stats)
    scores, limits = closest(
        [
            (compare(features, ref), thresholds(ref, n_independent, scale))
            for ref in references(stats)
        ]
    )
    check = InputCheck(name, OK, scores, limits)
    return InputCheck(name, DIFFERS, scores, limits) if check.differing else check


def references(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """What an input is compared with: the whole training set, then each kind of its images
    (statistics of one kind, and those written before components, hold the whole only)."""
    refs = [stats]
    parts = stats.get("components")
    for part in parts if isinstance(parts, list) else []:
        groups = part.get("groups") if isinstance(part, dict) else None
        # a hand-edited or damaged kind (not every group the whole set has) is left out: it
        # must neither stop the prediction nor, comparing nothing, pass every image
        if (
            isinstance(groups, dict)
            and set(groups) == set(stats["groups"])
            and all(
                isinstance(g, dict)
                and isinstance(g.get("median"), list)
                and isinstance(g.get("spread"), list)
                for g in groups.values()
            )
        ):
            refs.append({"features": stats["features"], "groups": groups})
    return refs


def closest(
    compared: Sequence[tuple[dict[str, float], dict[str, float]]],
) -> tuple[dict[str, float], dict[str, float]]:
    """The (scores, limits) of the reference the input is most like: the smallest largest
    deviation in units of its limit (the first of equals: the whole training set)."""

    def worst(c: tuple[dict[str, float], dict[str, float]]) -> float:
        scores, limits = c
        return max(
            (s / max(limits.get(g, THRESHOLD), 1e-9) for g, s in scores.items()), default=0.0
        )

    return min(compared, key=worst)


def thresholds(
    stats: dict[str, Any], n_independent: int, scale: dict[str, float] | None = None
) -> dict[str, float]:
    """Per group, how far an input of ``n_independent`` non-overlapping patches may stray.

    ``THRESHOLD`` for an image of many patches (its median is steady); for a small image, whose
    median is that of a few patches, the training patches' own 99th-percentile deviation shrunk
    as a median of n is (1.25 / sqrt(n)), when that is larger; times the group's calibration
    ``scale`` (:func:`limit_scales`; 1 without).
    """
    out = {}
    for group, ref in stats["groups"].items():
        q99 = ref.get("patch_score_q99")
        small = 0.0 if q99 is None else 1.25 * float(q99) / math.sqrt(max(1, n_independent))
        out[group] = round(max(THRESHOLD, small), 2)
        factor = (scale or {}).get(group, 1.0)
        if factor != 1.0:  # rounded up: a calibration image stays within its widened limit
            out[group] = math.ceil(out[group] * factor * 100) / 100
    return out


def calibration(stats: dict[str, Any], volumes: Sequence[np.ndarray]) -> dict[str, Any]:
    """Per group, how much the limits must widen for every one of ``volumes`` to pass.

    ``volumes`` are training images (normalized, on the model's grid): those that formed no kind
    of the ``stats``, or all of them; each is scored as an input is (its central crop,
    :func:`grid_features`, the reference it is most like) and the scale of a group is the largest
    score-to-limit ratio any of them reaches there, at least 1. For images that formed no kind,
    exchangeable held-out images then exceed a widened limit with probability at most 1 / (n + 1)
    per group (split conformal prediction); all images widen it more.
    """
    refs = references(stats)
    scale = dict.fromkeys(stats["groups"], 1.0)
    for v in volumes:
        features, n = grid_features(central_crop(np.asarray(v), CROP_ZYX))
        scores, limits = closest([(compare(features, ref), thresholds(ref, n)) for ref in refs])
        for group, value in scores.items():
            scale[group] = max(scale[group], value / limits[group])
    return {
        "n_images": len(volumes),
        # rounded up, never below a calibration image's own ratio
        "limit_scale": {g: math.ceil(float(x) * 1000) / 1000 for g, x in scale.items()},
    }


def limit_scales(stats: dict[str, Any]) -> dict[str, float]:
    """The stored calibration scales (group -> factor of at least 1); {} without, or when a
    hand-edited or damaged entry is not a set of finite numbers of at least 1 (left out: it
    must neither stop the prediction nor widen a limit without bound)."""
    entry = stats.get("calibration")
    scale = entry.get("limit_scale") if isinstance(entry, dict) else None
    if not isinstance(scale, dict):
        return {}
    out = {}
    for group, value in scale.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return {}
        if not (math.isfinite(value) and value >= 1.0):
            return {}
        out[str(group)] = float(value)
    return out


def independent_patches(shape_zyx: Sequence[int]) -> int:
    """Non-overlapping statistics patches an image of this shape (model grid) holds, at least 1."""
    from .stats import patch_shape_for

    p = patch_shape_for(shape_zyx)
    return max(1, math.prod(max(1, int(n) // s) for n, s in zip(shape_zyx, p, strict=True)))


@dataclass(frozen=True)
class InputWarning(Notice):
    """A prediction's warning that its input is unlike a model's training images (or unchecked).

    The CLI prints it as a line beginning ``warning:``; the Predict widget shows it and marks
    the model (``model`` is the model's folder name, ``status`` DIFFERS or UNKNOWN).
    """

    model: str = ""
    status: str = DIFFERS


def clean_simulated_modality(spec: ModelSpec) -> str:
    """The modality of a simulated model's clean-preset training fields: as its
    ``provenance.simulation`` records, else DIC for a DIC model and bright-field otherwise."""
    sim = spec.provenance.get("simulation") or {}
    return str(sim.get("modality") or ("dic" if spec.modality == "dic" else "bright-field"))


def seen_modalities(spec: ModelSpec) -> set[str] | None:
    """The contrast methods of every image a model's weights learned from; None when some are not
    known (a file that did not say, an imported model, a start that does not record them).

    Its own training images (``provenance.input_modalities``, from their files' metadata), and for
    a fine-tuned model its start's (``provenance.init.input_modalities``, recorded at training);
    a model trained on simulated fields: the modalities simulated.
    """
    prov = spec.provenance
    sim = prov.get("simulation")
    if isinstance(sim, dict):
        from ..synth.randomize import MODALITY_WEIGHTS

        randomized = MODALITY_WEIGHTS if sim.get("randomized") else ()
        return {clean_simulated_modality(spec), *randomized}
    own = prov.get("input_modalities")
    if not isinstance(own, dict) or not own or NOT_RECORDED in own:
        return None
    init = prov.get("init")
    if not init:
        return set(own)
    start = init.get("input_modalities") if isinstance(init, dict) else None
    if not isinstance(start, list) or not start or NOT_RECORDED in start:
        return None
    return set(own) | {str(m) for m in start}


def modality_warnings(bundles: Sequence[Any], modality: str | None) -> list[InputWarning]:
    """One warning per model none of whose training images were of ``modality`` (what the input's
    file names: "dic", "phase-contrast", ...), as far as their files said (:func:`seen_modalities`).

    Exact where it applies, unlike the statistics: files that say DIC and a model that saw only
    phase contrast. Models whose training images are not all known are not judged here.
    """
    if not modality:
        return []
    out = []
    for b in bundles:
        seen = seen_modalities(b.spec)
        if seen is None or modality in seen:
            continue
        out.append(
            InputWarning(
                f"model {b.name}: this image is {modality}, its file's metadata says, and the "
                f"model was trained on {' and '.join(sorted(seen))} images only (as recorded "
                "with it): its prediction may look plausible and still be wrong",
                "model_input",
                b.name,
                DIFFERS,
            )
        )
    return out


def input_warnings(
    bundles: Sequence[Any], frame: np.ndarray, voxel_size: Sequence[float]
) -> list[InputWarning]:
    """One warning per model whose training images this frame is unlike, or that cannot tell.

    Models that see the frame alike (voxel size, normalization) share one computation.
    """
    cache: dict[tuple, tuple[np.ndarray, int] | None] = {}
    out = []
    for b in bundles:
        spec = b.spec
        features = None
        if has_statistics(spec):
            key = (tuple(spec.voxel_size_um), repr(spec.normalization))
            if key not in cache:
                cache[key] = input_features(frame, voxel_size, spec)
            features = cache[key]
        check = check_input(frame, voxel_size, spec, b.name, features)
        if check.status != OK:
            out.append(InputWarning(check.text(), "model_input", b.name, check.status))
    return out
