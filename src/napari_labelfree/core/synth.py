"""Simulated paired transmitted-light / fluorescence z-stacks and time-lapses.

A field of hiPS-like cells is built as geometry in micrometres (a Voronoi monolayer with a height
profile, nuclei, nucleoli, nuclear envelope, mitochondria, ER, plasma membranes, a few mitotic
cells, unlabeled lipid droplets and cytoplasmic granularity). Each structure contributes

* a refractive-index increment and a weak absorption over the medium, which together make the
  specimen that the bright-field (or DIC) forward model images, and
* a label density, which the fluorescence forward model images.

Bright-field: the 3D weak-object transfer functions of a partially coherent bright-field
microscope (first Born approximation; Streibl 1985, Soto et al. 2017), computed exactly as
``waveorder.models.phase_thick_3d.calculate_transfer_function`` does, but with numpy FFTs. DIC is
the same calculation with the detection pupil multiplied by the Nomarski shear/bias factor.
Fluorescence: label density through a Gaussian approximation of the confocal PSF (Zhang et al.
2007), plus background, Poisson shot noise and Gaussian read noise.

No Qt or napari here; numpy and scipy only. See docs/simulation.md for the physics and figures.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
from scipy.special import expit

from .errors import LabelFreeError

STRUCTURES = ("dna", "lamin-b1", "fibrillarin", "tom20", "sec61b", "cellmask")
MODALITIES = ("bright-field", "dic")

# Emission wavelengths (um): Hoechst for DNA, mEGFP for the tagged proteins, CellMask Deep Red.
EMISSION_UM = {
    "dna": 0.46,
    "lamin-b1": 0.51,
    "fibrillarin": 0.51,
    "tom20": 0.51,
    "sec61b": 0.51,
    "cellmask": 0.67,
}
# Relative labeling brightness (peak photons = fluor_photons * this), as in typical hiPS lines.
BRIGHTNESS = {
    "dna": 1.0,
    "lamin-b1": 0.8,
    "fibrillarin": 0.9,
    "tom20": 0.8,
    "sec61b": 0.7,
    "cellmask": 0.9,
}

Vec3 = tuple[float, float, float]


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
    """

    data: np.ndarray
    channel_names: list[str]
    voxel_size: tuple[float, float, float]
    masks: dict[str, np.ndarray] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Optics: bright-field / DIC weak-object transfer functions (numpy port of waveorder's physics)
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def weak_object_transfer_functions(
    shape_zyx: tuple[int, int, int],
    voxel_size: Vec3,
    wavelength: float = 0.532,
    n_medium: float = 1.337,
    na_illumination: float = 0.55,
    na_detection: float = 1.2,
    dic_shear: Vec3 | None = None,
    dic_bias: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """3D transfer functions of the real (phase) and imaginary (absorption) scattering potential.

    Same discretisation as ``waveorder.models.phase_thick_3d.calculate_transfer_function`` (zero
    tilt, no Nyquist upsampling, no padding): object in cycles per voxel (``dn * dz / lambda_m``),
    image ``I / I0 = 1 + ifftn(H_re * fftn(V_re) - H_im * fftn(V_im))`` for a scattering
    potential ``V`` in 1/um^2 (see ``transmitted_light``).

    Parameters
    ----------
    shape_zyx
        Shape of the (already z-padded) volume.
    voxel_size
        um, Z, Y, X.
    wavelength
        Illumination wavelength in vacuum (um).
    n_medium
        Refractive index of the immersion/culture medium.
    na_illumination, na_detection
        Condenser and objective numerical apertures; NA_ill < NA_det is partially coherent.
    dic_shear
        For DIC: the Nomarski shear vector (um, only Y and X used); None for bright-field.
    dic_bias
        DIC bias retardance (radians) between the two sheared beams.

    Returns
    -------
    (H_re, H_im)
        complex64 arrays of ``shape_zyx`` in numpy FFT order.
    """
    nz, ny, nx = shape_zyx
    dz, dy, dx = voxel_size
    lam_m = wavelength / n_medium
    fy = sfft.fftfreq(ny, dy)[:, None]
    fx = sfft.fftfreq(nx, dx)[None, :]
    fr = np.sqrt(fy**2 + fx**2)
    detection = expit(1e4 * (na_detection / wavelength - fr))  # waveorder.optics.generate_pupil
    # waveorder.optics.generate_tilted_pupil at zero tilt: a cap of the Ewald sphere, soft edge
    k = n_medium / wavelength
    fz_sq = k**2 - fr**2
    fz = np.sqrt(np.clip(fz_sq, 0.0, None))
    df = abs(fx[0, 1] - fx[0, 0]) if nx > 1 else 1.0 / dx
    cos_max = np.sqrt(max(1.0 - (na_illumination / n_medium) ** 2, 0.0))
    illumination = expit(4.0 / df * (fz - k * cos_max)) * (fz_sq >= 0)

    z = sfft.ifftshift((np.arange(nz) - nz // 2) * dz)[:, None, None]
    oblique = np.sqrt(np.clip(1.0 - lam_m**2 * fr**2, 0.0, None)) / lam_m
    phase = np.exp(2j * np.pi * z * oblique[None]).astype(np.complex64)
    propagation = detection[None] * phase
    green = (
        -1j / (4 * np.pi) * detection[None] * phase / (oblique + (1 - detection) + 1e-15)[None]
    ).astype(np.complex64)

    pupil = detection.astype(np.complex128)
    if dic_shear is not None:
        # Nomarski: amplitude PSF h(r - s/2) e^{i b/2} - h(r + s/2) e^{-i b/2}, i.e. the pupil
        # times -2i sin(pi f.s - b/2); the constant cancels in the normalisation below.
        pupil = pupil * np.sin(np.pi * (fy * dic_shear[1] + fx * dic_shear[2]) - dic_bias / 2)
    sphz = (illumination * pupil)[None] * propagation
    pg = pupil[None] * green

    sphz_hat = sfft.fft2(sphz, axes=(-2, -1), workers=-1)
    pg_hat = sfft.fft2(pg, axes=(-2, -1), workers=-1)
    window = sfft.ifftshift(np.hanning(nz))[:, None, None].astype(np.float32)
    h1 = sfft.fft(
        sfft.ifft2(np.conj(sphz_hat) * pg_hat, axes=(-2, -1), workers=-1) * window, axis=0
    )
    h2 = sfft.fft(
        sfft.ifft2(sphz_hat * np.conj(pg_hat), axes=(-2, -1), workers=-1) * window, axis=0
    )
    direct = np.sum(illumination * np.abs(pupil) ** 2)
    h_re = (h1 + h2) / direct * dz
    h_im = 1j * (h1 - h2) / direct * dz
    return h_re.astype(np.complex64), h_im.astype(np.complex64)


def transmitted_light(
    delta_n: np.ndarray,
    absorption: np.ndarray,
    voxel_size: Vec3,
    wavelength: float = 0.532,
    n_medium: float = 1.337,
    na_illumination: float = 0.55,
    na_detection: float = 1.2,
    modality: str = "bright-field",
    dic_shear_um: float = 0.15,
    dic_bias: float = np.pi / 2,
    z_padding_um: float = 3.0,
) -> np.ndarray:
    """Noise-free transmitted-light z-stack ``I / I0`` (ZYX) of a thick weak object.

    Parameters
    ----------
    delta_n, absorption
        ZYX refractive-index increment over the medium and imaginary index (extinction).
    voxel_size
        um, Z, Y, X.
    modality
        "bright-field" or "dic" (Nomarski shear along the image diagonal).
    z_padding_um
        Medium added above and below so that defocus blur does not wrap around in z.
    """
    pad = int(np.ceil(z_padding_um / voxel_size[0]))
    # Scattering potential V = k0^2 (n^2 - n_m^2) ~ 2 k0^2 n_m (dn + i kappa), in 1/um^2. With the
    # transfer functions' dz factor this is waveorder's "cycles per voxel" object times
    # 2 (2 pi)^2 / (lambda0 dz); checked on a thin absorbing grating, whose in-focus contrast must
    # be -2 alpha with alpha = 2 pi kappa dz / lambda0 (Beer-Lambert for a weak absorber).
    k0 = 2 * np.pi / wavelength
    to_potential = 2 * k0**2 * n_medium
    phase = np.pad(delta_n * to_potential, ((pad, pad), (0, 0), (0, 0)))
    absorb = np.pad(absorption * to_potential, ((pad, pad), (0, 0), (0, 0)))
    shear = None
    if modality == "dic":
        s = dic_shear_um / np.sqrt(2)
        shear = (0.0, s, s)
    h_re, h_im = weak_object_transfer_functions(
        phase.shape,
        tuple(float(v) for v in voxel_size),
        wavelength,
        n_medium,
        na_illumination,
        na_detection,
        shear,
        dic_bias if modality == "dic" else 0.0,
    )
    spectrum = sfft.fftn(phase.astype(np.float32), workers=-1) * h_re
    # minus: with waveorder's sign of H_im a positive imaginary potential would brighten the
    # image; an absorber must darken it (checked on a thin grating, see docs/simulation.md)
    spectrum -= sfft.fftn(absorb.astype(np.float32), workers=-1) * h_im
    image = 1.0 + sfft.ifftn(spectrum, workers=-1).real
    return image[pad : pad + delta_n.shape[0]].astype(np.float32)


def fluorescence_otf(
    shape_zyx: tuple[int, int, int],
    voxel_size: Vec3,
    emission: float,
    na: float = 1.25,
    n_immersion: float = 1.33,
    confocal: bool = True,
) -> np.ndarray:
    """Real-FFT-shaped OTF of a Gaussian approximation of the PSF (Zhang, Zerubia, Olivo-Marin 2007).

    Widefield paraxial fit: sigma_xy = 0.21 lambda / NA, sigma_z = 0.66 lambda n / NA^2; a
    spinning-disk pinhole narrows both by about sqrt(2) but aberrations in thick cells widen them
    back, so the confocal case keeps 0.85 of the widefield widths.
    """
    scale = 0.85 if confocal else 1.0
    s_xy = scale * 0.21 * emission / na
    s_z = scale * 0.66 * emission * n_immersion / na**2
    fz = sfft.fftfreq(shape_zyx[0], voxel_size[0])[:, None, None]
    fy = sfft.fftfreq(shape_zyx[1], voxel_size[1])[None, :, None]
    fx = sfft.rfftfreq(shape_zyx[2], voxel_size[2])[None, None, :]
    two_pi2 = 2 * np.pi**2
    return (
        np.exp(-two_pi2 * s_z**2 * fz**2)
        * np.exp(-two_pi2 * s_xy**2 * fy**2)
        * np.exp(-two_pi2 * s_xy**2 * fx**2)
    ).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Scene
# ----------------------------------------------------------------------------------------------


@dataclass
class _Cell:
    """One cell; positions in um (y, x), heights in um above the coverslip."""

    center: np.ndarray
    height: float
    nucleus_offset: np.ndarray
    nucleus_rxy: float
    nucleus_rz_frac: float
    harmonics: np.ndarray  # (a2, phi2, a3, phi3): irregular nuclear outline
    nucleoli: list[tuple[np.ndarray, float]]  # (offset in nucleus-normalised coords, radius um)
    mitosis: float | None = None  # progress 0..1 (prophase -> anaphase), None in interphase
    axis: float = 0.0  # division axis angle in the YX plane (radians)
    reform: float = 1.0  # <1 for a daughter cell re-forming its nucleus after division
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    mito_seed: int = 0


def _new_cell(
    rng: np.random.Generator, center: np.ndarray, height: float, diameter: float
) -> _Cell:
    k = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.25, 0.15]))
    nucleoli = []
    for _ in range(k):
        u = rng.normal(size=3)
        u *= rng.uniform(0.0, 0.5) / np.linalg.norm(u)
        nucleoli.append((u, float(rng.uniform(0.75, 1.2) / k**0.25)))
    return _Cell(
        center=np.asarray(center, float),
        height=float(height),
        nucleus_offset=rng.normal(0, 0.04 * diameter, 2),
        nucleus_rxy=float(rng.uniform(0.30, 0.35) * diameter),
        nucleus_rz_frac=float(rng.uniform(0.26, 0.32)),
        harmonics=np.array(
            [rng.uniform(0.03, 0.1), rng.uniform(0, np.pi), rng.uniform(0, 0.05), rng.uniform(0, 6)]
        ),
        nucleoli=nucleoli,
        axis=float(rng.uniform(0, np.pi)),
        velocity=rng.normal(0, 0.15, 2),
        mito_seed=int(rng.integers(2**31)),
    )


def _make_cells(
    rng: np.random.Generator,
    extent_yx: tuple[float, float],
    diameter: float,
    height: float,
    mitotic_fraction: float,
) -> list[_Cell]:
    """Jittered hexagonal packing covering the field plus a margin (cells cut by the border)."""
    ly, lx = extent_yx
    row = diameter * np.sqrt(3) / 2
    cells = []
    for i, y in enumerate(np.arange(-row, ly + row, row)):
        for x in np.arange(-diameter + (i % 2) * diameter / 2, lx + diameter, diameter):
            c = np.array([y, x]) + rng.normal(0, 0.12 * diameter, 2)
            # colony height profile: taller towards the colony centre (here the field centre)
            r = np.hypot((c[0] - ly / 2) / max(ly, 1), (c[1] - lx / 2) / max(lx, 1))
            h = height * (1.12 - 0.35 * r**2) * rng.uniform(0.92, 1.08)
            cells.append(_new_cell(rng, c, h, diameter))
    inside = [
        i
        for i, c in enumerate(cells)
        if 0.1 * ly < c.center[0] < 0.9 * ly and 0.1 * lx < c.center[1] < 0.9 * lx
    ]
    n_mitotic = int(round(mitotic_fraction * len(inside)))
    if mitotic_fraction > 0 and inside:
        n_mitotic = max(n_mitotic, 1)
    for i in rng.permutation(inside)[:n_mitotic] if inside else []:
        cells[i].mitosis = float(rng.uniform(0.3, 0.6))
    return cells


def _band_noise(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    voxel: Vec3,
    period: float,
    width: float = 0.5,
) -> np.ndarray:
    """Gaussian random field with isotropic (physical) spectrum peaked at 1/period, unit std."""
    fz = sfft.fftfreq(shape[0], voxel[0])[:, None, None]
    fy = sfft.fftfreq(shape[1], voxel[1])[None, :, None]
    fx = sfft.rfftfreq(shape[2], voxel[2])[None, None, :]
    f = np.sqrt(fz**2 + fy**2 + fx**2)
    f0 = 1.0 / period
    amp = np.exp(-0.5 * (np.log((f + 1e-6) / f0) / width) ** 2).astype(np.float32)
    spec = rng.standard_normal(amp.shape, dtype=np.float32) + 1j * rng.standard_normal(
        amp.shape, dtype=np.float32
    )
    out = sfft.irfftn(spec * amp, s=shape, workers=-1).astype(np.float32)
    out /= out.std() + 1e-12
    return out


@dataclass
class _Scene:
    density: dict[str, np.ndarray]  # label densities (~1 at a structure)
    masks: dict[str, np.ndarray]
    delta_n: np.ndarray
    absorption: np.ndarray


def _render(
    cells: list[_Cell],
    shape: tuple[int, int, int],
    voxel: Vec3,
    noise: dict[str, np.ndarray],
    z0: float,
    diameter: float,
) -> _Scene:
    """Turn the cell list into label densities, masks and refractive-index / absorption maps."""
    nz, ny, nx = shape
    dz, dy, dx = voxel
    zc = ((np.arange(nz) + 0.5) * dz)[:, None, None].astype(np.float32)
    yy, xx = np.meshgrid((np.arange(ny) + 0.5) * dy, (np.arange(nx) + 0.5) * dx, indexing="ij")
    pts = np.stack([yy.ravel(), xx.ravel()], 1)

    # --- 2D tiling: Voronoi regions; the telophase furrow comes from splitting a seed in two
    centers = np.array([c.center for c in cells])
    tree = cKDTree(centers)
    d, idx = tree.query(pts, k=2)
    lab = idx[:, 0].reshape(ny, nx)
    sep = np.linalg.norm(centers[idx[:, 0]] - centers[idx[:, 1]], axis=1)
    # exact distance to the bisector between the two nearest seeds
    border = ((d[:, 1] ** 2 - d[:, 0] ** 2) / (2 * sep + 1e-9)).reshape(ny, nx).astype(np.float32)

    height = np.array([c.height for c in cells], np.float32)[lab]
    mitotic = np.array([c.mitosis is not None for c in cells])[lab]
    r_cell = np.hypot(yy - centers[lab, 0], xx - centers[lab, 1]).astype(np.float32)
    # apical surface: gently domed per cell, dipping at junctions; mitotic cells round up
    dome = 0.78 + 0.22 * np.sqrt(np.clip(border / (0.35 * diameter), 0, 1))
    round_up = 1.15 * np.sqrt(np.clip(1 - (r_cell / (0.5 * diameter)) ** 2, 0.05, 1))
    top = z0 + height * np.where(mitotic, round_up, dome)
    inside = (zc >= z0) & (zc <= top[None])

    # --- plasma membrane: distance to the nearest cell surface (lateral, apical, basal)
    dist_mem = np.minimum(np.minimum(border[None], top[None] - zc), zc - z0)
    membrane = np.where(inside, np.exp(-((dist_mem / 0.12) ** 2)), 0.0).astype(np.float32)
    mask_mem = inside & (dist_mem < 0.2)

    # --- nuclei: irregular ellipsoids (normalised radius rho), one per interphase cell
    nuc_c = np.array([c.center + c.nucleus_offset for c in cells])
    ny_, nx_ = yy - nuc_c[lab, 0], xx - nuc_c[lab, 1]
    r_n = np.hypot(ny_, nx_)
    theta = np.arctan2(ny_, nx_)
    harm = np.array([c.harmonics for c in cells])[lab]
    scale_n = np.array([0.6 + 0.4 * c.reform for c in cells], np.float32)[lab]
    rxy = (
        np.array([c.nucleus_rxy for c in cells])[lab]
        * scale_n
        * (
            1
            + harm[..., 0] * np.cos(2 * (theta - harm[..., 1]))
            + harm[..., 2] * np.cos(3 * theta - harm[..., 3])
        )
    ).astype(np.float32)
    rz = np.array([c.nucleus_rz_frac * c.height for c in cells], np.float32)[lab] * scale_n
    cz = z0 + 0.48 * height
    rho = np.sqrt(((zc - cz[None]) / rz[None]) ** 2 + (r_n / rxy)[None] ** 2).astype(np.float32)
    rho = np.where(mitotic[None], 9.0, rho)  # no interphase nucleus in mitosis
    # stay inside the cell (a nucleus never touches the membrane)
    rho = np.where((border[None] > 0.5) & (zc < top[None] - 0.4) & (zc > z0 + 0.3), rho, 9.0)
    mean_r = (0.5 * (rxy + rz))[None]
    nucleus_soft = expit((1 - rho) * mean_r / 0.08).astype(np.float32)
    mask_nuc = rho < 1

    # envelope (lamin-b1): thin shell; re-forming daughters have a fainter lamina
    reform = np.array([c.reform for c in cells], np.float32)[lab]
    shell_dist = (rho - 1) * mean_r
    lamina = (np.exp(-((shell_dist / 0.1) ** 2)) * reform[None]).astype(np.float32)
    lamina *= 0.75 + 0.25 * np.clip(noise["fine"], -1, 3)
    mask_lam = (np.abs(shell_dist) < 0.15) & (reform[None] > 0.3)

    # --- nucleoli: 1-4 lumpy spheres inside each nucleus
    nucleolus = np.zeros(shape, np.float32)
    for ci, c in enumerate(cells):
        if c.mitosis is not None or c.reform < 0.5:
            continue
        for u, rad in c.nucleoli:
            ncz = z0 + 0.48 * c.height + u[0] * c.nucleus_rz_frac * c.height
            ncy, ncx = nuc_c[ci] + u[1:] * c.nucleus_rxy
            rad = rad * (c.reform - 0.4) / 0.6
            lobe_rng = np.random.default_rng(c.mito_seed + int(1000 * rad))
            for lobe in range(3):
                off = lobe_rng.normal(0, 0.35 * rad, 3) if lobe else np.zeros(3)
                rr = rad * (1.0 if lobe == 0 else lobe_rng.uniform(0.5, 0.8))
                _blob(nucleolus, (ncz + off[0], ncy + off[1], ncx + off[2]), rr, voxel, sharp=0.08)
    nucleolus = np.minimum(nucleolus, 1.0) * (rho < 0.95)
    mask_nucleolus = nucleolus > 0.5

    # --- chromatin: textured nucleoplasm, denser at the periphery and around nucleoli
    tex = noise["dna"]
    chromatin = nucleus_soft * (
        0.55 + 0.25 * np.tanh(tex) + 0.35 * np.exp(-((shell_dist / 0.35) ** 2))
    )
    chromatin *= 1 - 0.85 * nucleolus
    chromatin += (
        0.4
        * gaussian_filter(nucleolus, (0.3 / dz, 0.3 / dy, 0.3 / dx))
        * (rho < 1)
        * (1 - nucleolus)
    )
    mask_dna = mask_nuc & ~mask_nucleolus
    # mitotic chromatin: condensed chromosomes (prophase) or metaphase plate / anaphase plates
    fibrillarin_diffuse = np.zeros(shape, np.float32)
    for ci, c in enumerate(cells):
        if c.mitosis is None:
            continue
        cond = _mitotic_chromatin(c, ci, lab, zc, yy, xx, z0, voxel, noise["fine"])
        chromatin = np.maximum(chromatin, cond)
        mask_dna |= cond > 0.5
        # nucleoli disassemble: fibrillarin coats the chromosomes and spreads through the cell
        fibrillarin_diffuse += 0.05 * (cond > 0.3) + 0.03 * (inside & (lab == ci)[None])

    # --- cytoplasm and its organelles
    cyto = inside & ~(rho < 1.15) & (dist_mem > 0.15)
    if any(c.mitosis is not None for c in cells):
        cyto &= ~(chromatin > 0.3)
    perinuclear = np.exp(-np.clip(rho - 1, 0, None) * mean_r / 2.0)

    # ER: intersections of two zero-level sets of random fields = a 3D tubular network, denser
    # near the nucleus, continuous with the outer nuclear membrane (sec61b labels the envelope)
    tubes = np.exp(-(noise["er1"] ** 2 + noise["er2"] ** 2) / (2 * 0.3**2))
    er = (tubes * cyto * (0.45 + 0.55 * perinuclear)).astype(np.float32)
    er_ne = (
        0.6 * np.exp(-((((rho - 1) * mean_r - 0.05) / 0.12) ** 2)) * reform[None] * ~mitotic[None]
    )
    er = np.maximum(er, er_ne.astype(np.float32))
    mask_er = (tubes > 0.5) & cyto | (er_ne > 0.35)

    # mitochondria: persistent random-walk tubules confined to the cytoplasm
    mito = _mitochondria(cells, lab, cyto, shape, voxel, z0, diameter)
    mask_mito = mito > 0.35

    # unlabeled scatterers: lipid droplets and cytoplasmic granularity (visible in bright-field only)
    droplets = np.zeros(shape, np.float32)
    for c in cells:
        lrng = np.random.default_rng(c.mito_seed + 7)
        for _ in range(lrng.integers(1, 4)):
            ang, frac = lrng.uniform(0, 2 * np.pi), lrng.uniform(0.55, 0.8)
            p = c.center + frac * 0.5 * diameter * np.array([np.sin(ang), np.cos(ang)])
            _blob(
                droplets,
                (z0 + lrng.uniform(0.2, 0.6) * c.height, p[0], p[1]),
                lrng.uniform(0.2, 0.35),
                voxel,
                0.05,
            )
    droplets *= cyto
    granular = np.clip(noise["fine"], 0, None) * cyto

    density = {
        "dna": chromatin.astype(np.float32),
        "lamin-b1": (lamina + 0.04 * nucleus_soft).astype(np.float32),
        "fibrillarin": (
            nucleolus * (0.6 + 0.4 * np.clip(noise["fine"], -1, 2))
            + fibrillarin_diffuse
            + 0.015 * nucleus_soft
        ).astype(np.float32),
        "tom20": (mito + 0.02 * inside).astype(np.float32),
        "sec61b": (er + 0.03 * inside).astype(np.float32),
        "cellmask": (membrane + 0.03 * inside).astype(np.float32),
    }
    masks = {
        "dna": mask_dna,
        "lamin-b1": mask_lam,
        "fibrillarin": mask_nucleolus,
        "tom20": mask_mito,
        "sec61b": mask_er,
        "cellmask": mask_mem,
    }
    # Refractive index increments over the medium (n = 1.337): cytoplasm ~1.360, nucleoplasm lower
    # than cytoplasm, nucleoli and mitochondria dense, lipid droplets much higher (Schuermann 2016).
    delta_n = 0.022 * inside * (1 - nucleus_soft)
    delta_n += nucleus_soft * (0.012 + 0.006 * np.tanh(tex))
    delta_n += 0.030 * nucleolus + 0.012 * np.clip(chromatin - 0.8, 0, None) * mitotic[None]
    delta_n += 0.020 * mito + 0.006 * er + 0.006 * membrane + 0.10 * droplets + 0.008 * granular
    # extinction coefficients: cells are nearly transparent (~1% absorbed through a cell)
    absorption = 5e-5 * inside + 2e-4 * mito + 1e-3 * droplets + 1e-4 * nucleolus
    return _Scene(density, masks, delta_n.astype(np.float32), absorption.astype(np.float32))


def _blob(vol: np.ndarray, center: Vec3, radius: float, voxel: Vec3, sharp: float) -> None:
    """Max-in a soft sphere (um) into ``vol`` within its bounding box."""
    lo = [max(int((c - radius - 3 * sharp) / v), 0) for c, v in zip(center, voxel, strict=True)]
    hi = [
        min(int((c + radius + 3 * sharp) / v) + 2, s)
        for c, v, s in zip(center, voxel, vol.shape, strict=True)
    ]
    if any(h <= low for h, low in zip(hi, lo, strict=True)):
        return
    g = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    r2 = sum(((gi + 0.5) * v - c) ** 2 for gi, v, c in zip(g, voxel, center, strict=True))
    val = expit((radius - np.sqrt(r2)) / sharp).astype(np.float32)
    sub = vol[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    np.maximum(sub, val, out=sub)


def _mitotic_chromatin(
    c: _Cell,
    ci: int,
    lab: np.ndarray,
    zc: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    z0: float,
    voxel: Vec3,
    fine: np.ndarray,
) -> np.ndarray:
    """Condensed chromatin of a mitotic cell: prophase ball, metaphase plate or anaphase plates."""
    p = float(c.mitosis)
    ax = np.array([np.sin(c.axis), np.cos(c.axis)])
    u = (yy - c.center[0]) * ax[0] + (xx - c.center[1]) * ax[1]  # along the spindle
    v = -(yy - c.center[0]) * ax[1] + (xx - c.center[1]) * ax[0]
    zc_cell = z0 + 0.5 * c.height
    w = zc - zc_cell
    own = (lab == ci)[None]
    # chromosome arms: thresholded fine-scale noise gives rod-like condensed texture
    arms = expit((fine - 0.2) / 0.25)
    if p < 0.25:  # prophase / prometaphase: condensing threads in a nucleus-sized ball
        r = np.sqrt(
            (u**2 + v**2)[None] / (0.8 * c.nucleus_rxy) ** 2 + w**2 / (0.25 * c.height) ** 2
        )
        body = expit((1 - r) / 0.05)
        return (1.6 * body * arms * own).astype(np.float32)
    sep = 0.0 if p < 0.5 else 0.3 + 2.8 * (p - 0.5) / 0.25  # anaphase: plates move apart
    out = np.zeros(np.broadcast_shapes(w.shape, u[None].shape), np.float32)
    for sgn in (0.0,) if sep == 0 else (-1.0, 1.0):
        du = (u - sgn * sep)[None] / 0.55
        r = np.sqrt(du**2 + ((v**2)[None] + (w * 1.2) ** 2) / (0.38 * c.nucleus_rxy * 2) ** 2)
        out = np.maximum(out, (2.0 * expit((1 - r) / 0.08) * (0.5 + 0.5 * arms)).astype(np.float32))
    return out * own


def _mitochondria(
    cells: list[_Cell],
    lab: np.ndarray,
    cyto: np.ndarray,
    shape: tuple[int, int, int],
    voxel: Vec3,
    z0: float,
    diameter: float,
) -> np.ndarray:
    """Tubules ~0.3 um thick, 1-4 um long, from persistent random walks inside the cytoplasm.

    Each cell's walks are seeded by the cell and drawn in the cell's own frame, so they move with
    the cell between time points; the small per-frame jitter of the frame (``velocity``) makes them
    wriggle as mitochondria do.
    """
    dz, dy, dx = voxel
    starts, dirs, lengths = [], [], []
    for ci, c in enumerate(cells):
        # candidate starts in the cell's own frame; keep those that fall in its cytoplasm
        mrng = np.random.default_rng(c.mito_seed)
        m = 400
        ang = mrng.uniform(0, 2 * np.pi, m)
        rad = mrng.uniform(0.0, 0.55, m) * diameter
        cand = np.stack(
            [
                z0 + c.height * mrng.uniform(0.05, 1.0, m),
                c.center[0] + rad * np.sin(ang),
                c.center[1] + rad * np.cos(ang),
            ],
            1,
        )
        idx = np.floor(cand / np.array(voxel)).astype(int)
        ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
        ok[ok] = cyto[idx[ok, 0], idx[ok, 1], idx[ok, 2]] & (lab[idx[ok, 1], idx[ok, 2]] == ci)
        n = 40 if c.mitosis is None else 50
        cand = cand[ok][:n]
        starts.append(cand)
        d = mrng.normal(size=(len(cand), 3)) * np.array([0.3, 1, 1])
        dirs.append(d / np.linalg.norm(d, axis=1, keepdims=True))
        lengths.append(mrng.uniform(0.8, 4.0, len(cand)))
    pos = np.concatenate(starts)
    direction = np.concatenate(dirs)
    length = np.concatenate(lengths)
    step = 0.06
    walk_rng = np.random.default_rng(len(pos))
    alive = np.ones(len(pos), bool)
    pts = []
    for i in range(int(4.0 / step)):
        alive &= i * step < length
        if not alive.any():
            break
        pts.append(pos[alive])
        # persistence length ~1.5 um; mostly parallel to the coverslip
        direction += walk_rng.normal(0, 0.25, direction.shape) * np.array([0.3, 1, 1])
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        new = pos + step * direction
        idx = np.floor(new / np.array(voxel)).astype(int)
        ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
        ok[ok] = cyto[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        # a tubule meeting the nucleus or the membrane turns back along it instead of crossing
        pos = np.where(ok[:, None], new, pos)
        direction = np.where(
            ok[:, None], direction, -direction + walk_rng.normal(0, 0.5, direction.shape)
        )
    vol = np.zeros(shape, np.float32)
    if not pts:
        return vol
    p = np.concatenate(pts)
    # linear deposit along z (the coarse axis), nearest in y and x; then a 3D Gaussian tube profile
    fz = p[:, 0] / dz - 0.5
    z_lo = np.floor(fz).astype(int)
    wz = fz - z_lo
    iy = np.clip((p[:, 1] / dy).astype(int), 0, shape[1] - 1)
    ix = np.clip((p[:, 2] / dx).astype(int), 0, shape[2] - 1)
    flat = vol.reshape(-1)
    for zi, wi in ((z_lo, 1 - wz), (z_lo + 1, wz)):
        ok = (zi >= 0) & (zi < shape[0])
        lin = np.ravel_multi_index((zi[ok], iy[ok], ix[ok]), shape)
        flat += np.bincount(lin, weights=wi[ok], minlength=flat.size).astype(np.float32)
    sigma = 0.13
    vol = gaussian_filter(vol, (sigma / dz, sigma / dy, sigma / dx), truncate=3.0)
    # centre-line value of a Gaussian-blurred line of points: density * dz dy dx / (2 pi sigma^2)
    vol *= 2 * np.pi * sigma**2 / ((1 / step) * dz * dy * dx)
    return np.minimum(vol, 1.5)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


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
        raise LabelFreeError(f"unknown modality {modality!r}; choose bright-field or dic")
    if timepoints < 1:
        raise LabelFreeError(f"timepoints must be at least 1, got {timepoints}")

    rng = np.random.default_rng(seed)
    extent = (shape[1] * voxel[1], shape[2] * voxel[2])
    cells = _make_cells(rng, extent, cell_diameter, cell_height, mitotic_fraction)
    z0 = float(np.clip(0.5 * (shape[0] * voxel[0] - cell_height * 1.1), 0.6, None))
    noise_rng = np.random.default_rng([seed, 1])
    fields = {
        "dna": _band_noise(noise_rng, shape, voxel, 1.2),
        "fine": _band_noise(noise_rng, shape, voxel, 0.5),
        "er1": _band_noise(noise_rng, shape, voxel, 2.0, 0.35),
        "er2": _band_noise(noise_rng, shape, voxel, 2.0, 0.35),
    }
    # the division: the non-mitotic cell nearest the field centre goes through mitosis
    divider = None
    if timepoints > 1:
        mid = np.array(extent) / 2
        divider = int(np.argmin([np.linalg.norm(c.center - mid) for c in cells]))
    otfs = {s: fluorescence_otf(shape, voxel, EMISSION_UM[s], na_fluorescence) for s in structures}

    names = [modality, *structures]
    data = np.empty((timepoints, len(names), *shape), np.float32)
    cam_rng = np.random.default_rng([seed, 2])
    masks: dict[str, np.ndarray] = {}
    for t in range(timepoints):
        frame_cells = _cells_at(cells, t, timepoints, divider, cell_diameter)
        scene = _render(frame_cells, shape, voxel, fields, z0, cell_diameter)
        if t == 0:
            masks = {s: scene.masks[s] for s in structures}
        bf = transmitted_light(
            scene.delta_n,
            scene.absorption,
            voxel,
            wavelength,
            n_medium,
            na_illumination,
            na_detection,
            modality,
        )
        data[t, 0] = _camera(bf * bf_photons, cam_rng, read_noise, camera_offset, noise)
        for ci, s in enumerate(structures, start=1):
            blurred = sfft.irfftn(
                sfft.rfftn(scene.density[s], workers=-1) * otfs[s], s=shape, workers=-1
            )
            photons = fluor_photons * BRIGHTNESS[s] * np.clip(blurred, 0, None) + fluor_background
            data[t, ci] = _camera(photons, cam_rng, read_noise, camera_offset, noise)
    return SimulatedImage(data=data, channel_names=names, voxel_size=voxel, masks=masks)


def _camera(
    photons: np.ndarray, rng: np.random.Generator, read_noise: float, offset: float, noise: bool
) -> np.ndarray:
    """sCMOS-like camera: Poisson shot noise, Gaussian read noise, offset (gain 1 count/e-)."""
    if not noise:
        return (photons + offset).astype(np.float32)
    counts = rng.poisson(np.clip(photons, 0, None)).astype(np.float32)
    counts += rng.normal(0, read_noise, photons.shape).astype(np.float32)
    return counts + offset


def _cells_at(
    cells: list[_Cell], t: int, n_t: int, divider: int | None, diameter: float
) -> list[_Cell]:
    """Cell list at frame t: migration, and mitosis then cytokinesis of ``divider``."""
    if n_t == 1:
        return cells
    out = []
    for i, c in enumerate(cells):
        moved = replace(c, center=c.center + t * c.velocity)
        if i != divider:
            out.append(moved)
            continue
        # progress over the time-lapse: mitosis in the first ~60% of frames, then two daughters
        prog = (t + 0.5) / n_t
        split = 0.6
        if prog < split:
            moved.mitosis = 0.15 + 0.6 * prog / split
            out.append(moved)
            continue
        q = (prog - split) / (1 - split)  # 0..1 through cytokinesis and nuclear re-formation
        ax = np.array([np.sin(c.axis), np.cos(c.axis)])
        offset = (0.2 + 0.22 * q) * diameter * ax
        drng = np.random.default_rng(c.mito_seed + 99)
        for sgn in (-1, 1):
            daughter = _new_cell(drng, moved.center + sgn * offset, c.height * 0.95, diameter)
            daughter.reform = 0.35 + 0.65 * q
            # daughters are half the volume: smaller nuclei that fit their narrower territories
            daughter.nucleus_rxy *= 0.72
            daughter.nucleoli = [(u, r * 0.7) for u, r in daughter.nucleoli]
            daughter.velocity = c.velocity
            out.append(daughter)
    return out
