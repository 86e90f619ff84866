"""Optics of the simulator: bright-field / DIC / phase-contrast transfer functions, fluorescence OTF.

Bright-field: the 3D weak-object transfer functions of a partially coherent bright-field
microscope (first Born approximation; Streibl 1985, Soto et al. 2017), computed exactly as
``waveorder.models.phase_thick_3d.calculate_transfer_function`` does, but with numpy FFTs. DIC is
the same calculation with the detection pupil multiplied by the Nomarski shear/bias factor; Zernike
phase contrast is the same with an annular condenser and a phase ring (a complex pupil) over the
annulus's image (Zernike 1942; the partially coherent WOTF of such pupils as in Streibl 1985).
Fluorescence: a Gaussian approximation of the confocal PSF (Zhang et al. 2007).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sfft
from scipy.special import expit

Vec3 = tuple[float, float, float]


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
    na_illumination_inner: float = 0.0,
    phase_ring: tuple[float, float, float] | None = None,
    spherical_waves: float = 0.0,
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
    na_illumination_inner
        Inner NA of an annular condenser (Zernike phase contrast); 0 for a full disc.
    phase_ring
        Zernike phase contrast: (phase shift in radians, amplitude transmission, extra NA width)
        of the objective's phase ring, which covers the image of the condenser annulus widened by
        the extra width on each side; None for none. A finite ring width is what makes the halo.
    spherical_waves
        Primary spherical aberration: the pupil's Zernike Z(4,0) = sqrt(5)(6 rho^4 - 6 rho^2 + 1)
        coefficient in waves rms (a mismatched coverslip or immersion); 0 for none.

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
    if na_illumination_inner > 0:  # annular condenser: the inner disc is dark
        cos_min = np.sqrt(max(1.0 - (na_illumination_inner / n_medium) ** 2, 0.0))
        illumination = illumination * expit(4.0 / df * (k * cos_min - fz))

    z = sfft.ifftshift((np.arange(nz) - nz // 2) * dz)[:, None, None]
    oblique = np.sqrt(np.clip(1.0 - lam_m**2 * fr**2, 0.0, None)) / lam_m
    phase = np.exp(2j * np.pi * z * oblique[None]).astype(np.complex64)
    propagation = detection[None] * phase
    green = (
        -1j / (4 * np.pi) * detection[None] * phase / (oblique + (1 - detection) + 1e-15)[None]
    ).astype(np.complex64)

    pupil = detection.astype(np.complex128)
    if spherical_waves:
        rho = np.clip(fr * wavelength / na_detection, 0.0, 1.0)
        z40 = np.sqrt(5.0) * (6 * rho**4 - 6 * rho**2 + 1)
        pupil = pupil * np.exp(2j * np.pi * spherical_waves * z40)
    if phase_ring is not None:
        # the ring sits where the undiffracted light of the annulus crosses the back focal plane
        shift, transmission, extra = phase_ring
        f_in = max(na_illumination_inner - extra, 0.0) / wavelength
        f_out = (na_illumination + extra) / wavelength
        ring = expit(4.0 / df * (fr - f_in)) * expit(4.0 / df * (f_out - fr))
        pupil = pupil * (1 + ring * (transmission * np.exp(1j * shift) - 1))
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
    spherical_waves: float = 0.0,
    phase_annulus: tuple[float, float] = (0.7, 0.85),
    phase_ring: tuple[float, float, float] = (np.pi / 2, 0.25, 0.03),
) -> np.ndarray:
    """Noise-free transmitted-light z-stack ``I / I0`` (ZYX) of a thick weak object.

    Parameters
    ----------
    delta_n, absorption
        ZYX refractive-index increment over the medium and imaginary index (extinction).
    voxel_size
        um, Z, Y, X.
    modality
        "bright-field", "dic" (Nomarski shear along the image diagonal) or "phase-contrast"
        (Zernike: an annular condenser and a phase ring in the objective).
    z_padding_um
        Medium added above and below so that defocus blur does not wrap around in z.
    spherical_waves
        Primary spherical aberration in waves rms (see ``weak_object_transfer_functions``).
    phase_annulus
        Phase contrast: the condenser annulus as (inner, outer) fractions of ``na_detection``
        (Ph1-Ph3 annuli sit at 0.6-0.9 of the objective's NA).
    phase_ring
        Phase contrast: the ring's (phase shift, amplitude transmission, extra NA width); a
        +pi/2 shift of the undiffracted light gives positive (dark-object) contrast.
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
    inner, ring = 0.0, None
    if modality == "phase-contrast":
        inner = phase_annulus[0] * na_detection
        na_illumination = phase_annulus[1] * na_detection
        ring = tuple(float(v) for v in phase_ring)
    h_re, h_im = weak_object_transfer_functions(
        phase.shape,
        tuple(float(v) for v in voxel_size),
        wavelength,
        n_medium,
        na_illumination,
        na_detection,
        shear,
        dic_bias if modality == "dic" else 0.0,
        inner,
        ring,
        float(spherical_waves),
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
