"""Domain randomization: every imaging and specimen factor drawn per field within cited ranges.

A model trained on one clean optical model of one cell type learns that model's quirks; real
transmitted-light images vary in condenser and objective NA, partial coherence, focus, aberration,
illumination, dust, camera and sampling, and cells vary in size, shape, density and refractive
index. :func:`random_settings` draws one :class:`FieldSettings` per seed from :data:`RANGES`
(each range and its source in docs/simulation.md, "Domain randomization"); :func:`clean_settings`
is the fixed preset the simulator always had (the paper's 100x hiPS data: bright-field, 0.108 um
pixels, 0.29 um z-step). :func:`render_field` images one field with given settings:

1. the specimen is simulated on a grid fine enough for the optics (the camera pixel divided by
   the smallest whole number that brings it under the Nyquist limit of the transfer function),
2. binned to the camera pixel (a pixel integrates its area),
3. the transmitted light is multiplied by an uneven illumination (a tilt and vignetting) and the
   shadows of out-of-focus dust, then a camera converts photons to counts: Poisson shot noise,
   Gaussian read noise, gain, offset, and quantisation to its bit depth with clipping.

The fluorescence (the training target) is binned the same way and keeps the preset's camera.
Same seed, same settings, same field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..errors import LabelFreeError

# name -> (low, high): the ranges random_settings draws from (uniform unless noted in
# random_settings; docs/simulation.md gives the source of each)
RANGES: dict[str, tuple[float, float]] = {
    "pixel_um": (0.065, 0.4),  # log-uniform; 100x/6.5 um sCMOS .. 20x on a 8 um CCD pixel
    "z_step_um": (0.2, 1.0),
    "wavelength": (0.45, 0.65),  # filtered halogen / LED illumination
    "coherence": (0.15, 0.9),  # NA_condenser / NA_objective (bright-field, DIC)
    "annulus_inner": (0.55, 0.75),  # phase-contrast annulus, fraction of the objective NA
    "annulus_width": (0.08, 0.18),
    "ring_transmission": (0.25, 0.55),  # amplitude (6-30 % of the intensity)
    "ring_extra_na": (0.01, 0.06),  # ring wider than the annulus's image: the halo's size
    "focus_offset_um": (-3.0, 3.0),
    "spherical_waves": (-0.3, 0.3),
    "cell_diameter": (7.0, 25.0),  # log-uniform
    "cell_height": (3.0, 10.0),
    "mitotic_fraction": (0.0, 0.2),
    "coverage": (0.3, 0.55),  # spread cells: footprint radius / diameter
    "elongation": (1.0, 3.0),
    "drop": (0.0, 0.9),  # up to sparse cultures with most of the field empty medium
    "cluster_diameters": (1.0, 3.0),  # clumped cells: kept within this many diameters of one
    "cytoplasm_dn": (0.012, 0.030),
    "nucleoplasm_dn": (0.006, 0.030),  # below or above the cytoplasm: both are reported
    "chromatin_texture_dn": (0.0, 0.012),
    "nucleolus_dn": (0.015, 0.040),
    "chromatin_period_um": (0.6, 2.5),
    "debris_per_100um2": (0.0, 0.3),
    "fibres_per_100um2": (0.0, 20.0),  # um of neurite / process per 100 um^2 of field
    "illumination_tilt": (0.0, 0.3),  # fractional change across the field
    "vignetting": (0.0, 0.3),  # fractional fall-off at the corners
    "dust_per_1000um2": (0.0, 2.0),
    "dust_contrast": (0.02, 0.1),
    "photons": (300.0, 20000.0),  # log-uniform, background photons per pixel
    "read_noise": (1.0, 10.0),  # electrons rms
    "fill": (0.2, 0.7),  # background level as a fraction of the camera's full scale
    "offset_fraction": (0.0, 0.1),
}
MODALITY_WEIGHTS = {"bright-field": 0.45, "phase-contrast": 0.4, "dic": 0.15}
# fields whose cells do not fill the field (the rest: the preset's confluent monolayer); most
# cultures imaged are not confluent, and a model must see empty medium to predict no nucleus there
SPREAD_SHARE = 0.75
BIT_DEPTHS = {8: 0.2, 12: 0.3, 16: 0.5}
# Objective NA for a camera pixel (the magnification): catalogue objectives with a 6.5 um pixel
# (100x/1.2-1.4, 60x/1.2, 40x/0.6-0.95, 20x/0.4-0.75); the Born model here is for water (<= 1.2)
NA_BY_PIXEL: tuple[tuple[float, float, float], ...] = (
    (0.09, 1.0, 1.2),
    (0.14, 0.9, 1.2),
    (0.22, 0.6, 0.95),
    (math.inf, 0.3, 0.8),
)
MAX_SIM_PIXELS = 320  # the finest grid's lateral size is capped (memory and time per field)


@dataclass(frozen=True)
class FieldSettings:
    """Everything one simulated field is imaged with; the defaults are the clean preset."""

    modality: str = "bright-field"
    pixel_um: float = 0.108
    z_step_um: float = 0.29
    wavelength: float = 0.532
    na_detection: float = 1.2
    na_illumination: float = 0.55
    phase_annulus: tuple[float, float] = (0.7, 0.85)
    phase_ring: tuple[float, float, float] = (math.pi / 2, 0.25, 0.03)
    focus_offset_um: float = 0.0
    spherical_waves: float = 0.0
    cell_diameter: float = 10.0
    cell_height: float = 7.0
    mitotic_fraction: float = 0.1
    spread: tuple[float, ...] | None = None  # coverage, elongation, drop[, cluster]
    index: dict[str, float] = field(default_factory=dict)
    chromatin_period_um: float = 1.2
    debris_per_100um2: float = 0.0
    fibres_per_100um2: float = 0.0
    illumination_tilt: float = 0.0
    vignetting: float = 0.0
    dust_per_1000um2: float = 0.0
    dust_contrast: float = 0.05
    photons: float = 3000.0
    read_noise: float = 2.0
    gain: float = 1.0  # counts per electron
    offset: float = 100.0
    bit_depth: int | None = None  # None: no quantisation (the preset)

    def as_dict(self) -> dict:
        """JSON-ready (for provenance)."""
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def clean_settings() -> FieldSettings:
    """The clean preset: the simulator's settings before randomization (bright-field hiPS)."""
    return FieldSettings()


def _uniform(rng: np.random.Generator, name: str) -> float:
    lo, hi = RANGES[name]
    return float(rng.uniform(lo, hi))


def _log_uniform(rng: np.random.Generator, name: str) -> float:
    lo, hi = RANGES[name]
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_settings(seed: int, modality: str | None = None) -> FieldSettings:
    """One field's settings drawn from :data:`RANGES` (same seed, same settings).

    ``modality`` fixes the contrast; None draws it (:data:`MODALITY_WEIGHTS`).
    """
    rng = np.random.default_rng([int(seed), 24])
    mods = list(MODALITY_WEIGHTS)
    drawn = str(rng.choice(mods, p=list(MODALITY_WEIGHTS.values())))
    modality = modality or drawn
    if modality not in MODALITY_WEIGHTS:
        raise LabelFreeError(f"unknown modality {modality!r}; choose one of {', '.join(mods)}")
    pixel = _log_uniform(rng, "pixel_um")
    lo, hi = next((lo, hi) for top, lo, hi in NA_BY_PIXEL if pixel < top)
    na = float(rng.uniform(lo, hi))
    wavelength = _uniform(rng, "wavelength")
    inner = _uniform(rng, "annulus_inner")
    annulus = (inner, min(inner + _uniform(rng, "annulus_width"), 0.95))
    # a quarter-wave ring made for green light shifts other colours by less or more
    ring = (
        math.pi / 2 * 0.55 / wavelength,
        _uniform(rng, "ring_transmission"),
        _uniform(rng, "ring_extra_na"),
    )
    spread = None
    if rng.uniform() < SPREAD_SHARE:  # cells that do not fill the field
        spread = (
            _uniform(rng, "coverage"),
            _uniform(rng, "elongation"),
            _uniform(rng, "drop"),
        )
    index = {
        "cytoplasm": _uniform(rng, "cytoplasm_dn"),
        "nucleoplasm": _uniform(rng, "nucleoplasm_dn"),
        "chromatin_texture": _uniform(rng, "chromatin_texture_dn"),
        "nucleolus": _uniform(rng, "nucleolus_dn"),
    }
    photons = _log_uniform(rng, "photons")
    bits = int(rng.choice(list(BIT_DEPTHS), p=list(BIT_DEPTHS.values())))
    full = 2.0**bits - 1
    fill, offset_fraction = _uniform(rng, "fill"), _uniform(rng, "offset_fraction")
    offset = offset_fraction * full
    gain = (fill - offset_fraction) * full / photons  # the background lands at `fill`
    settings = FieldSettings(
        modality=modality,
        pixel_um=pixel,
        z_step_um=_uniform(rng, "z_step_um"),
        wavelength=wavelength,
        na_detection=na,
        na_illumination=na * _uniform(rng, "coherence"),
        phase_annulus=annulus,
        phase_ring=ring,
        focus_offset_um=_uniform(rng, "focus_offset_um"),
        spherical_waves=_uniform(rng, "spherical_waves"),
        cell_diameter=_log_uniform(rng, "cell_diameter"),
        cell_height=_uniform(rng, "cell_height"),
        mitotic_fraction=_uniform(rng, "mitotic_fraction"),
        spread=spread,
        index=index,
        chromatin_period_um=_uniform(rng, "chromatin_period_um"),
        debris_per_100um2=_uniform(rng, "debris_per_100um2"),
        illumination_tilt=_uniform(rng, "illumination_tilt"),
        vignetting=_uniform(rng, "vignetting"),
        dust_per_1000um2=_uniform(rng, "dust_per_1000um2"),
        dust_contrast=_uniform(rng, "dust_contrast"),
        photons=photons,
        read_noise=_uniform(rng, "read_noise"),
        gain=gain,
        offset=offset,
        bit_depth=bits,
    )
    # drawn last, so that the factors above keep their values for a seed
    if spread is not None and rng.uniform() < 0.5:  # half the spread fields: clumped cells
        spread = (*spread, _uniform(rng, "cluster_diameters"))
    fibres = _uniform(rng, "fibres_per_100um2") if rng.uniform() < 0.5 else 0.0
    return replace(settings, spread=spread, fibres_per_100um2=fibres)


def supersampling(s: FieldSettings) -> int:
    """How many finer simulation pixels one camera pixel is made of, for the optics' Nyquist."""
    na_ill = (
        s.phase_annulus[1] * s.na_detection if s.modality == "phase-contrast" else s.na_illumination
    )
    nyquist = s.wavelength / (2 * (na_ill + s.na_detection))
    return max(1, math.ceil(s.pixel_um / nyquist - 1e-9))


def _bin(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k lateral blocks of (..., Y, X)."""
    if k == 1:
        return a
    *lead, y, x = a.shape
    return a.reshape(*lead, y // k, k, x // k, k).mean(axis=(-3, -1))


def illumination_field(
    s: FieldSettings, shape_yx: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Relative illumination (Y, X): a tilt in a random direction, vignetting, dust shadows."""
    ny, nx = shape_yx
    y = (np.arange(ny) + 0.5) / ny - 0.5
    x = (np.arange(nx) + 0.5) / nx - 0.5
    yy, xx = np.meshgrid(y, x, indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    out = 1 + s.illumination_tilt * (np.cos(angle) * yy + np.sin(angle) * xx)
    cy, cx = rng.uniform(-0.3, 0.3, 2)  # the optical axis is rarely the field's centre
    out *= 1 - s.vignetting * ((yy - cy) ** 2 + (xx - cx) ** 2) / 0.5
    # out-of-focus dust on a window or the camera: soft shadows with a bright rim, 3-20 um
    area = ny * nx * s.pixel_um**2
    for _ in range(int(rng.poisson(s.dust_per_1000um2 * area / 1000.0))):
        r = rng.uniform(3.0, 20.0) / s.pixel_um
        py, px = rng.uniform(0, ny), rng.uniform(0, nx)
        d = np.hypot(np.arange(ny)[:, None] - py, np.arange(nx)[None, :] - px) / r
        out *= 1 - s.dust_contrast * (np.exp(-(d**2)) - 0.4 * np.exp(-((d - 1.1) ** 2) / 0.05))
    return np.clip(out, 0.05, None).astype(np.float32)


def camera_counts(photons: np.ndarray, s: FieldSettings, rng: np.random.Generator) -> np.ndarray:
    """Poisson shot noise, read noise, gain, offset and quantisation to the bit depth."""
    electrons = rng.poisson(np.clip(photons, 0, None)).astype(np.float32)
    electrons += rng.normal(0, s.read_noise, photons.shape).astype(np.float32)
    counts = s.gain * electrons + s.offset
    if s.bit_depth is not None:
        counts = np.clip(np.round(counts), 0, 2.0**s.bit_depth - 1)
    return counts.astype(np.float32)


def render_field(
    settings: FieldSettings,
    seed: int,
    extent_um: tuple[float, float, float] | None = None,
    structures: Sequence[str] = ("dna",),
    max_sim_pixels: int = MAX_SIM_PIXELS,
):
    """Image one field with ``settings``: a :class:`~napari_labelfree.core.synth.SimulatedImage`.

    Parameters
    ----------
    settings
        From :func:`random_settings` or :func:`clean_settings`.
    seed
        The specimen's and the noise's seed.
    extent_um
        Z, Y, X size of the field in um; None: Z covers the cells plus 2-8 um (drawn), YX 40 um.
        The lateral size is capped so that the finest grid stays within ``max_sim_pixels``.
    structures
        Fluorescence channels to produce.

    Returns
    -------
    SimulatedImage
        At the camera's voxel size (z-step, pixel, pixel); ``settings`` holds what made it.
    """
    from . import SimulatedImage, simulate

    s = settings
    k = supersampling(s)
    sim_px = s.pixel_um / k
    rng = np.random.default_rng([int(seed), 25])
    if extent_um is None:
        depth = s.cell_height + abs(s.focus_offset_um) + rng.uniform(2.0, 8.0)
        extent_um = (depth, 40.0, 40.0)
    nz = int(np.clip(round(extent_um[0] / s.z_step_um), 8, 64))
    ny, nx = (max(k, min(max_sim_pixels, int(round(e / sim_px))) // k * k) for e in extent_um[1:])
    clean = simulate(
        shape=(nz, ny, nx),
        voxel_size=(s.z_step_um, sim_px, sim_px),
        structures=structures,
        seed=seed,
        modality=s.modality,
        bf_photons=1.0,
        camera_offset=0.0,
        noise=False,
        wavelength=s.wavelength,
        na_illumination=s.na_illumination,
        na_detection=s.na_detection,
        cell_diameter=s.cell_diameter,
        cell_height=s.cell_height,
        mitotic_fraction=s.mitotic_fraction,
        focus_offset_um=s.focus_offset_um,
        spherical_waves=s.spherical_waves,
        phase_annulus=tuple(s.phase_annulus),
        phase_ring=tuple(s.phase_ring),
        index=s.index or None,
        chromatin_period_um=s.chromatin_period_um,
        spread=s.spread,
        debris_per_100um2=s.debris_per_100um2,
        fibres_per_100um2=s.fibres_per_100um2,
    )
    frame = _bin(clean.data[0], k)  # C, Z, Y, X at the camera pixel
    out = np.empty(frame.shape, np.float32)
    light = frame[0] * illumination_field(s, frame.shape[-2:], rng)[None]
    out[0] = camera_counts(light * s.photons, s, rng)
    fluor = replace(clean_settings(), bit_depth=None)  # the target keeps the preset's camera
    for c in range(1, frame.shape[0]):
        out[c] = camera_counts(frame[c], fluor, rng)
    return SimulatedImage(
        data=out[None],
        channel_names=clean.channel_names,
        voxel_size=(s.z_step_um, s.pixel_um, s.pixel_um),
        masks={},
        settings=s.as_dict(),
    )
