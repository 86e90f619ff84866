"""Simulated paired transmitted-light / fluorescence z-stacks and time-lapses.

A field of hiPS-like cells is built as geometry in micrometres (:mod:`.scene`: a Voronoi monolayer
with a height profile, nuclei, a few mitotic cells; :mod:`.organelles`: nucleoli, mitochondria,
mitotic chromosomes, lipid droplets). Each part contributes (:mod:`.structures`)

* a refractive-index increment and a weak absorption over the medium, which together make the
  specimen that the bright-field (or DIC) forward model images, and
* a label density, which the fluorescence forward model images.

Optics (:mod:`.optics`): the 3D weak-object transfer functions of a partially coherent bright-field
(or DIC) microscope, as in waveorder; a Gaussian approximation of the confocal PSF for
fluorescence; then background, Poisson shot noise and Gaussian read noise (:mod:`.camera`).

No Qt or napari here; numpy and scipy only. See docs/simulation.md for the physics and figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft

from ..errors import LabelFreeError
from .camera import camera
from .optics import fluorescence_otf, transmitted_light, weak_object_transfer_functions
from .scene import band_noise, cells_at, geometry, make_cells, scatter_debris, spread_cells
from .structures import TABLE, Components, SimStructure, specimen

STRUCTURES: tuple[str, ...] = tuple(TABLE)
MODALITIES = ("bright-field", "dic", "phase-contrast")

__all__ = [
    "MODALITIES",
    "STRUCTURES",
    "TABLE",
    "SimStructure",
    "SimulatedImage",
    "fluorescence_otf",
    "simulate",
    "transmitted_light",
    "weak_object_transfer_functions",
]


@dataclass
class SimulatedImage:
    """A simulated field: transmitted light plus the true fluorescence of each structure.

    Attributes
    ----------
    data
        TCZYX float32; channel 0 is "bright-field" (or "dic"), then one channel per structure.
    channel_names
        ``["bright-field", "dna", ...]``.
    voxel_size
        Physical voxel size in um, Z, Y, X.
    masks
        Structure name -> ZYX bool mask of its geometry at t=0 (ground truth, no blur, no noise).
    settings
        What a randomized field was imaged with (:mod:`.randomize`); empty for :func:`simulate`.
    """

    data: np.ndarray
    channel_names: list[str]
    voxel_size: tuple[float, float, float]
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def simulate(
    shape: Sequence[int] = (32, 128, 128),
    voxel_size: Sequence[float] = (0.29, 0.108, 0.108),
    structures: Sequence[str] = STRUCTURES,
    seed: int = 0,
    timepoints: int = 1,
    modality: str = "bright-field",
    *,
    bf_photons: float = 3000.0,
    fluor_photons: float = 400.0,
    fluor_background: float = 20.0,
    read_noise: float = 2.0,
    camera_offset: float = 100.0,
    wavelength: float = 0.532,
    n_medium: float = 1.337,
    na_illumination: float = 0.55,
    na_detection: float = 1.2,
    na_fluorescence: float = 1.25,
    cell_diameter: float = 10.0,
    cell_height: float = 7.0,
    mitotic_fraction: float = 0.1,
    noise: bool = True,
    focus_offset_um: float = 0.0,
    spherical_waves: float = 0.0,
    phase_annulus: tuple[float, float] = (0.7, 0.85),
    phase_ring: tuple[float, float, float] = (np.pi / 2, 0.25, 0.03),
    index: dict[str, float] | None = None,
    chromatin_period_um: float = 1.2,
    spread: tuple[float, float, float] | None = None,
    debris_per_100um2: float = 0.0,
    fibres_per_100um2: float = 0.0,
) -> SimulatedImage:
    """Simulate a field of hiPS-like cells in transmitted light and in fluorescence.

    Parameters
    ----------
    shape
        Z, Y, X in voxels.
    voxel_size
        um, Z, Y, X (default: the paper's 0.29, 0.108, 0.108).
    structures
        Which fluorescence channels to produce, any of ``STRUCTURES``.
    seed
        Same seed, same data.
    timepoints
        Number of frames; with 2 or more, cells migrate, mitochondria move and the cell nearest the
        centre divides (mitosis, then two daughter cells).
    modality
        "bright-field" or "dic" (channel 0 is named after it).
    bf_photons, fluor_photons
        Mean photons per pixel of the transmitted-light background / of a fully labeled voxel.
    fluor_background, read_noise, camera_offset
        Fluorescence background photons, camera read noise (electrons rms) and offset (counts).
    wavelength, n_medium, na_illumination, na_detection, na_fluorescence
        Optics of the transmitted-light and the fluorescence paths.
    cell_diameter, cell_height, mitotic_fraction
        Scene parameters (um; fraction of cells in mitosis).
    noise
        False for noise-free images (ground-truth optics only).
    focus_offset_um
        Moves the cells up (positive) or down relative to the stack: a stack not centred on them.
    spherical_waves, phase_annulus, phase_ring
        Spherical aberration (waves rms) and the phase-contrast annulus and ring
        (:func:`transmitted_light`).
    index
        Refractive-index increments overriding :data:`structures.INDEX` (cytoplasm, nucleoplasm,
        chromatin_texture, nucleolus).
    chromatin_period_um
        Typical size of the chromatin texture.
    spread
        (coverage, elongation, drop[, cluster]) for cells that do not fill the field
        (:func:`scene.spread_cells`); None: the confluent monolayer.
    debris_per_100um2
        Unlabeled refractile particles (dust, debris, dead-cell fragments) in the medium per
        100 um^2 of field: transmitted light sees them, fluorescence does not.
    fibres_per_100um2
        Unlabeled fibres (neurites, other cells' processes) on the glass: um of fibre per
        100 um^2 of field (:func:`scene.scatter_debris`).

    All defaults together are the clean preset (:func:`napari_labelfree.core.synth.randomize.
    clean_settings`); :mod:`.randomize` draws every factor per field within cited ranges.

    Returns
    -------
    SimulatedImage
        TCZYX float32 data, channel names, voxel size and the t=0 structure masks.
    """
    shape = tuple(int(s) for s in shape)
    voxel = tuple(float(v) for v in voxel_size)
    if len(shape) != 3 or min(shape) < 1:
        raise LabelFreeError(f"shape must be three positive sizes Z,Y,X, got {shape}")
    if len(voxel) != 3 or min(voxel) <= 0:
        raise LabelFreeError(f"voxel size must be three positive sizes in um Z,Y,X, got {voxel}")
    structures = list(structures)
    unknown = [s for s in structures if s not in STRUCTURES]
    if unknown:
        raise LabelFreeError(f"unknown structure(s) {unknown}; choose from {', '.join(STRUCTURES)}")
    if modality not in MODALITIES:
        raise LabelFreeError(
            f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}"
        )
    if timepoints < 1:
        raise LabelFreeError(f"timepoints must be at least 1, got {timepoints}")

    rng = np.random.default_rng(seed)
    extent = (shape[1] * voxel[1], shape[2] * voxel[2])
    cells = make_cells(rng, extent, cell_diameter, cell_height, mitotic_fraction)
    if spread is not None:  # drawn from their own stream: the preset's cells stay the same
        cells = spread_cells(cells, np.random.default_rng([seed, 3]), cell_diameter, *spread)
    z0 = float(np.clip(0.5 * (shape[0] * voxel[0] - cell_height * 1.1), 0.6, None))
    z0 += float(focus_offset_um)
    debris = None
    if debris_per_100um2 > 0 or fibres_per_100um2 > 0:
        debris = scatter_debris(
            np.random.default_rng([seed, 4]),
            shape,
            voxel,
            debris_per_100um2,
            z0,
            cell_height,
            fibres_per_100um2,
        )
    noise_rng = np.random.default_rng([seed, 1])
    fields = {
        "dna": band_noise(noise_rng, shape, voxel, chromatin_period_um),
        "fine": band_noise(noise_rng, shape, voxel, 0.5),
        "er1": band_noise(noise_rng, shape, voxel, 2.0, 0.35),
        "er2": band_noise(noise_rng, shape, voxel, 2.0, 0.35),
    }
    # the division: the non-mitotic cell nearest the field centre goes through mitosis
    divider = None
    if timepoints > 1:
        mid = np.array(extent) / 2
        divider = int(np.argmin([np.linalg.norm(c.center - mid) for c in cells]))
    chosen = [TABLE[s] for s in structures]
    otfs = [fluorescence_otf(shape, voxel, s.emission_um, na_fluorescence) for s in chosen]

    names = [modality, *structures]
    data = np.empty((timepoints, len(names), *shape), np.float32)
    cam_rng = np.random.default_rng([seed, 2])
    masks: dict[str, np.ndarray] = {}
    for t in range(timepoints):
        frame_cells = cells_at(cells, t, timepoints, divider, cell_diameter)
        geo = geometry(frame_cells, shape, voxel, z0, cell_diameter)
        parts = Components(frame_cells, geo, fields, voxel, z0, cell_diameter)
        if t == 0:
            masks = {s.name: s.mask_of(parts) for s in chosen}
        delta_n, absorption = specimen(parts, index)
        if debris is not None:
            delta_n = delta_n + debris * ~parts.geo.inside
            absorption = absorption + 2e-3 * debris * ~parts.geo.inside
        bf = transmitted_light(
            delta_n,
            absorption,
            voxel,
            wavelength,
            n_medium,
            na_illumination,
            na_detection,
            modality,
            spherical_waves=spherical_waves,
            phase_annulus=phase_annulus,
            phase_ring=phase_ring,
        )
        data[t, 0] = camera(bf * bf_photons, cam_rng, read_noise, camera_offset, noise)
        for ci, (s, otf) in enumerate(zip(chosen, otfs, strict=True), start=1):
            blurred = sfft.irfftn(
                sfft.rfftn(s.density(parts), workers=-1) * otf, s=shape, workers=-1
            )
            photons = fluor_photons * s.brightness * np.clip(blurred, 0, None) + fluor_background
            data[t, ci] = camera(photons, cam_rng, read_noise, camera_offset, noise)
    return SimulatedImage(data=data, channel_names=names, voxel_size=voxel, masks=masks)
