"""The simulated scene: cells as geometry in micrometres, their motion and division, and the shared
shape fields (cell territories, surfaces, nuclei) that every structure is drawn from.

A field of hiPS-like cells: a Voronoi monolayer (jittered hexagonal packing) with a colony height
profile, irregular ellipsoidal nuclei, a few mitotic cells; in a time-lapse cells migrate and the
cell nearest the centre divides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import fft as sfft
from scipy.spatial import cKDTree
from scipy.special import expit

Vec3 = tuple[float, float, float]


@dataclass
class Cell:
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
    # spread shape (domain randomization; the defaults are the confluent hiPS monolayer):
    # footprint radius (um; inf: the cell fills its Voronoi territory), elongation (long / short
    # axis of footprint and, by its square root, of the nucleus) and the long axis's angle
    footprint: float = np.inf
    elongation: float = 1.0
    orientation: float = 0.0


def new_cell(rng: np.random.Generator, center: np.ndarray, height: float, diameter: float) -> Cell:
    k = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.25, 0.15]))
    nucleoli = []
    for _ in range(k):
        u = rng.normal(size=3)
        u *= rng.uniform(0.0, 0.5) / np.linalg.norm(u)
        nucleoli.append((u, float(rng.uniform(0.75, 1.2) / k**0.25)))
    return Cell(
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


def make_cells(
    rng: np.random.Generator,
    extent_yx: tuple[float, float],
    diameter: float,
    height: float,
    mitotic_fraction: float,
) -> list[Cell]:
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
            cells.append(new_cell(rng, c, h, diameter))
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


def spread_cells(
    cells: list[Cell],
    rng: np.random.Generator,
    diameter: float,
    coverage: float,
    elongation: float,
    drop: float,
    cluster: float = 0.0,
) -> list[Cell]:
    """Cells that do not fill the field: footprints, elongation and gaps (other cell types).

    ``coverage``: footprint radius as a fraction of the diameter (about 0.5: cells just touch;
    lower leaves medium between them); ``elongation``: the largest long/short axis ratio (each
    cell draws its own between 1 and this, with its own orientation); ``drop``: the fraction of
    cells removed (a sparser culture); ``cluster`` > 0: the cells clump within that many
    diameters of one cell (neuronal somata, colonies) and nearly all others are removed (empty
    medium). The preset (confluent hiPS) calls none of this.
    """
    centre = None
    if cluster > 0:  # somewhere in the middle 60 % of the field (the cells cover it plus a margin)
        pts = np.array([c.center for c in cells])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre = (lo + hi) / 2 + rng.uniform(-0.3, 0.3, 2) * (hi - lo)
    out = []
    for c in cells:
        p = drop
        if centre is not None and np.linalg.norm(c.center - centre) > cluster * diameter:
            p = max(drop, 0.95)
        keep = rng.uniform() >= p
        e = float(rng.uniform(1.0, max(elongation, 1.0)))
        radius = float(coverage * diameter * rng.uniform(0.85, 1.15))
        out.append(
            (
                keep,
                replace(
                    c, footprint=radius, elongation=e, orientation=float(rng.uniform(0, np.pi))
                ),
            )
        )
    kept = [c for k, c in out if k]
    # the territories need two cells at least: a dropped one may stand in (often off the field)
    return kept if len(kept) >= 2 else kept + [c for k, c in out if not k][: 2 - len(kept)]


def band_noise(
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


def cells_at(
    cells: list[Cell], t: int, n_t: int, divider: int | None, diameter: float
) -> list[Cell]:
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
            daughter = new_cell(drng, moved.center + sgn * offset, c.height * 0.95, diameter)
            daughter.reform = 0.35 + 0.65 * q
            # daughters are half the volume: smaller nuclei that fit their narrower territories
            daughter.nucleus_rxy *= 0.72
            daughter.nucleoli = [(u, r * 0.7) for u, r in daughter.nucleoli]
            daughter.velocity = c.velocity
            out.append(daughter)
    return out


@dataclass
class Geometry:
    """Shape fields of one frame, shared by every structure (um; ZYX, YX or Z11 arrays).

    Attributes
    ----------
    zc, yy, xx
        Voxel centres: z as a (Z, 1, 1) column, y and x as (Y, X) planes.
    lab, border
        (Y, X): index of the cell whose territory a pixel is in, and its distance to the
        territory's edge (the bisector to the nearest neighbour).
    mitotic, top
        (Y, X): whether the pixel's cell is in mitosis; height of the cell's apical surface.
    inside, dist_mem
        (Z, Y, X): inside a cell; distance to the nearest cell surface (lateral, apical, basal).
    nucleus_centres
        (n cells, 2): y, x of each nucleus.
    rho, mean_r, shell_dist
        Normalised radius of the nucleus (1 on the envelope, 9 where there is no nucleus), its mean
        radius (um) and the distance to the envelope (um).
    nucleus_soft, reform
        Soft nucleus indicator; per-pixel nuclear re-formation (< 1 in a daughter cell).
    """

    zc: np.ndarray
    yy: np.ndarray
    xx: np.ndarray
    lab: np.ndarray
    border: np.ndarray
    mitotic: np.ndarray
    top: np.ndarray
    inside: np.ndarray
    dist_mem: np.ndarray
    nucleus_centres: np.ndarray
    rho: np.ndarray
    mean_r: np.ndarray
    shell_dist: np.ndarray
    nucleus_soft: np.ndarray
    reform: np.ndarray


def geometry(
    cells: list[Cell], shape: tuple[int, int, int], voxel: Vec3, z0: float, diameter: float
) -> Geometry:
    """The shape fields of a frame's cells on the voxel grid (coverslip at height ``z0``)."""
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
    foot = np.array([c.footprint for c in cells], np.float32)
    if np.isfinite(foot).any():  # spread cells: an elliptical footprint inside the territory
        e = np.sqrt(np.array([c.elongation for c in cells], np.float32))[lab]
        ang = np.array([c.orientation for c in cells], np.float32)[lab]
        dy_, dx_ = yy - centers[lab, 0], xx - centers[lab, 1]
        u = (dy_ * np.sin(ang) + dx_ * np.cos(ang)) / e
        v = (dx_ * np.sin(ang) - dy_ * np.cos(ang)) * e
        edge = (foot[lab] - np.hypot(u, v)) / e  # about the distance to the ellipse's edge
        border = np.minimum(border, edge).astype(np.float32)
    # apical surface: gently domed per cell, dipping at junctions; mitotic cells round up
    dome = 0.78 + 0.22 * np.sqrt(np.clip(border / (0.35 * diameter), 0, 1))
    round_up = 1.15 * np.sqrt(np.clip(1 - (r_cell / (0.5 * diameter)) ** 2, 0.05, 1))
    top = z0 + height * np.where(mitotic, round_up, dome)
    inside = (zc >= z0) & (zc <= top[None])
    if np.isfinite(foot).any():
        inside &= (border > 0)[None]  # medium between spread cells
    dist_mem = np.minimum(np.minimum(border[None], top[None] - zc), zc - z0)

    # --- nuclei: irregular ellipsoids (normalised radius rho), one per interphase cell
    nuc_c = np.array([c.center + c.nucleus_offset for c in cells])
    ny_, nx_ = yy - nuc_c[lab, 0], xx - nuc_c[lab, 1]
    if np.isfinite(foot).any():  # the nucleus follows the cell's elongation, less strongly
        en = np.sqrt(np.sqrt(np.array([c.elongation for c in cells], np.float32)))[lab]
        ang = np.array([c.orientation for c in cells], np.float32)[lab]
        ny_, nx_ = (
            (ny_ * np.sin(ang) + nx_ * np.cos(ang)) / en,
            (nx_ * np.sin(ang) - ny_ * np.cos(ang)) * en,
        )
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
    reform = np.array([c.reform for c in cells], np.float32)[lab]
    shell_dist = (rho - 1) * mean_r
    return Geometry(
        zc=zc,
        yy=yy,
        xx=xx,
        lab=lab,
        border=border,
        mitotic=mitotic,
        top=top,
        inside=inside,
        dist_mem=dist_mem,
        nucleus_centres=nuc_c,
        rho=rho,
        mean_r=mean_r,
        shell_dist=shell_dist,
        nucleus_soft=nucleus_soft,
        reform=reform,
    )


def scatter_debris(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    voxel: Vec3,
    per_100um2: float,
    z0: float,
    cell_height: float,
    fibres_per_100um2: float = 0.0,
) -> np.ndarray:
    """Refractive-index increment (ZYX) of small unlabeled particles and fibres in the medium.

    Debris and dust settle on the coverslip or float just above the cells: soft spheres of
    0.3-1.0 um radius with an index 0.01-0.04 above the medium (dead-cell fragments to silica
    dust). Fibres (``fibres_per_100um2``: um of fibre per 100 um^2): neurites and other cells'
    processes lying on the glass, tubes of 0.2-0.8 um radius, index 0.015-0.04 above the
    medium, gently curving across the field (:func:`_fibres`). Only transmitted light sees them:
    no label marks them.
    """
    nz, ny, nx = shape
    dz, dy, dx = voxel
    area = ny * dy * nx * dx
    n = int(rng.poisson(per_100um2 * area / 100.0))
    out = np.zeros(shape, np.float32)
    zc = (np.arange(nz) + 0.5) * dz
    yc = (np.arange(ny) + 0.5) * dy
    xc = (np.arange(nx) + 0.5) * dx
    for _ in range(n):
        r = float(rng.uniform(0.3, 1.0))
        on_glass = rng.uniform() < 0.6
        cz = z0 + r if on_glass else z0 + cell_height * rng.uniform(0.8, 1.5)
        cy, cx = rng.uniform(0, ny * dy), rng.uniform(0, nx * dx)
        dn = float(rng.uniform(0.01, 0.04))
        sz = slice(*np.searchsorted(zc, [cz - 2 * r, cz + 2 * r]))
        sy = slice(*np.searchsorted(yc, [cy - 2 * r, cy + 2 * r]))
        sx = slice(*np.searchsorted(xc, [cx - 2 * r, cx + 2 * r]))
        d = np.sqrt(
            (zc[sz, None, None] - cz) ** 2
            + (yc[None, sy, None] - cy) ** 2
            + (xc[None, None, sx] - cx) ** 2
        )
        out[sz, sy, sx] = np.maximum(out[sz, sy, sx], dn * expit((r - d) / 0.1))
    if fibres_per_100um2 > 0:
        _fibres(rng, out, voxel, fibres_per_100um2 * area / 100.0, z0)
    return out


def _fibres(rng: np.random.Generator, out: np.ndarray, voxel: Vec3, length_um: float, z0: float):
    """Draw fibres of ``length_um`` in all into ``out`` (in place): random-walk paths on the glass."""
    from scipy import ndimage as ndi

    nz, ny, nx = out.shape
    dz, dy, dx = voxel
    zc = (np.arange(nz) + 0.5) * dz
    step = 0.5 * min(dy, dx, 0.5)  # um between path points: no gaps on the grid
    drawn = 0.0
    while drawn < length_um:
        r = float(rng.uniform(0.2, 0.8))
        dn = float(rng.uniform(0.015, 0.04))
        n = int(rng.uniform(20.0, 120.0) / step)
        turn = rng.normal(0, 0.03, n).cumsum() * step  # a gentle curve (radians per um)
        angle = rng.uniform(0, 2 * np.pi) + turn
        py = rng.uniform(0, ny * dy) + np.cumsum(np.sin(angle)) * step
        px = rng.uniform(0, nx * dx) + np.cumsum(np.cos(angle)) * step
        iy, ix = np.round(py / dy - 0.5).astype(int), np.round(px / dx - 0.5).astype(int)
        ok = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
        drawn += max(ok.sum() * step, 1.0)  # only what lies in the field counts
        if not ok.any():
            continue
        line = np.ones((ny, nx), bool)
        line[iy[ok], ix[ok]] = False
        d2 = ndi.distance_transform_edt(line, sampling=(dy, dx)).astype(np.float32)
        zf = z0 + r  # lying on the glass
        sz = slice(*np.searchsorted(zc, [zf - 2 * r, zf + 2 * r]))
        if sz.start >= sz.stop:
            continue
        d = np.sqrt(d2[None] ** 2 + ((zc[sz] - zf) ** 2)[:, None, None])
        out[sz] = np.maximum(out[sz], dn * expit((r - d) / 0.1))
