"""Organelles drawn as explicit objects: soft spheres (nucleoli, lipid droplets), mitotic
chromosomes, and mitochondria as random-walk tubules. Each cell seeds its own random streams, so an
organelle moves with its cell between time points.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import expit

from .scene import Cell, Geometry

Vec3 = tuple[float, float, float]


def blob(vol: np.ndarray, center: Vec3, radius: float, voxel: Vec3, sharp: float) -> None:
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


def nucleoli(
    cells: list[Cell], geo: Geometry, shape: tuple[int, int, int], voxel: Vec3, z0: float
) -> np.ndarray:
    """1-4 lumpy spheres inside each interphase nucleus (none in mitosis or early re-formation)."""
    nucleolus = np.zeros(shape, np.float32)
    for ci, c in enumerate(cells):
        if c.mitosis is not None or c.reform < 0.5:
            continue
        for u, rad in c.nucleoli:
            ncz = z0 + 0.48 * c.height + u[0] * c.nucleus_rz_frac * c.height
            ncy, ncx = geo.nucleus_centres[ci] + u[1:] * c.nucleus_rxy
            rad = rad * (c.reform - 0.4) / 0.6
            lobe_rng = np.random.default_rng(c.mito_seed + int(1000 * rad))
            for lobe in range(3):
                off = lobe_rng.normal(0, 0.35 * rad, 3) if lobe else np.zeros(3)
                rr = rad * (1.0 if lobe == 0 else lobe_rng.uniform(0.5, 0.8))
                blob(nucleolus, (ncz + off[0], ncy + off[1], ncx + off[2]), rr, voxel, sharp=0.08)
    return np.minimum(nucleolus, 1.0) * (geo.rho < 0.95)


def lipid_droplets(
    cells: list[Cell], cyto: np.ndarray, voxel: Vec3, z0: float, diameter: float
) -> np.ndarray:
    """1-3 unlabeled, strongly refractile droplets per cell (visible in bright-field only)."""
    droplets = np.zeros(cyto.shape, np.float32)
    for c in cells:
        lrng = np.random.default_rng(c.mito_seed + 7)
        for _ in range(lrng.integers(1, 4)):
            ang, frac = lrng.uniform(0, 2 * np.pi), lrng.uniform(0.55, 0.8)
            p = c.center + frac * 0.5 * diameter * np.array([np.sin(ang), np.cos(ang)])
            blob(
                droplets,
                (z0 + lrng.uniform(0.2, 0.6) * c.height, p[0], p[1]),
                lrng.uniform(0.2, 0.35),
                voxel,
                0.05,
            )
    droplets *= cyto
    return droplets


def mitotic_chromatin(c: Cell, ci: int, geo: Geometry, z0: float, fine: np.ndarray) -> np.ndarray:
    """Condensed chromatin of a mitotic cell: prophase ball, metaphase plate or anaphase plates."""
    lab, zc, yy, xx = geo.lab, geo.zc, geo.yy, geo.xx
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


def mitochondria(
    cells: list[Cell],
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
