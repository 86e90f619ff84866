"""Make the figures of docs/simulation.md: orthogonal slices of every simulated channel.

Run from the repository root::

    .venv/bin/python docs/make_simulation_figures.py

Writes docs/images/sim_*.png.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from napari_labelfree.core import synth  # noqa: E402
from napari_labelfree.core.structures import colormap_for, rgb_for  # noqa: E402

OUT = Path(__file__).resolve().parent / "images"
COLORS = {s: rgb_for(colormap_for(s)) for s in synth.STRUCTURES}  # the package's one table


def _norm(a: np.ndarray, lo: float = 0.5, hi: float = 99.7) -> np.ndarray:
    p0, p1 = np.percentile(a, [lo, hi])
    return np.clip((a - p0) / (p1 - p0 + 1e-9), 0, 1)


def orthoslices(im: synth.SimulatedImage, path: Path, z: int, y: int, t: int = 0) -> None:
    """One column per channel: XY at plane z (top) and XZ at row y (bottom), to physical scale."""
    dz, dy, dx = im.voxel_size
    vol = im.data[t]
    nz, ny, nx = vol.shape[1:]
    n = len(im.channel_names) + 1
    fig = plt.figure(figsize=(2.4 * n, 2.4 * (1 + nz * dz / (ny * dy)) + 0.4), dpi=110)
    gs = fig.add_gridspec(2, n, height_ratios=[ny * dy, nz * dz], hspace=0.05, wspace=0.05)
    comp_xy = np.zeros((ny, nx, 3))
    comp_xz = np.zeros((nz, nx, 3))
    for i, name in enumerate(im.channel_names):
        a = vol[i]
        if i == 0:
            # transmitted light: show contrast around the background level of this stack
            xy, xz = _norm(a[z], 0.5, 99.5), _norm(a[:, y], 0.5, 99.5)
            cmap = "gray"
        else:
            xy, xz = _norm(a[z]), _norm(a[:, y])
            cmap = "gray"
            color = np.array(COLORS[name])
            comp_xy += xy[..., None] * color
            comp_xz += xz[..., None] * color
        ax = fig.add_subplot(gs[0, i])
        ax.imshow(xy, cmap=cmap, extent=(0, nx * dx, ny * dy, 0), interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axhline((y + 0.5) * dy, color="y", lw=0.5, alpha=0.6)
        ax.axis("off")
        ax = fig.add_subplot(gs[1, i])
        ax.imshow(xz, cmap=cmap, extent=(0, nx * dx, 0, nz * dz), origin="lower", aspect="equal")
        ax.axhline((z + 0.5) * dz, color="y", lw=0.5, alpha=0.6)
        ax.axis("off")
    ax = fig.add_subplot(gs[0, n - 1])
    ax.imshow(np.clip(comp_xy, 0, 1), extent=(0, nx * dx, ny * dy, 0))
    ax.set_title("composite", fontsize=10)
    ax.plot([1, 6], [ny * dy - 1] * 2, color="w", lw=2)  # 5 um scale bar
    ax.axis("off")
    ax = fig.add_subplot(gs[1, n - 1])
    ax.imshow(np.clip(comp_xz, 0, 1), extent=(0, nx * dx, 0, nz * dz), origin="lower")
    ax.axis("off")
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    plt.close(fig)


def through_focus(im: synth.SimulatedImage, path: Path, y0: int) -> None:
    """Bright-field planes below, at and above the cells' mid-plane: contrast inverts through focus."""
    dz, dy, dx = im.voxel_size
    bf = im.data[0, 0]
    nz = bf.shape[0]
    planes = np.linspace(0.15 * nz, 0.85 * nz, 6).astype(int)
    lo, hi = np.percentile(bf, [0.5, 99.5])
    fig, axes = plt.subplots(1, len(planes), figsize=(2.3 * len(planes), 2.6), dpi=110)
    for ax, z in zip(axes, planes, strict=True):
        ax.imshow(bf[z], cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(f"z = {z * dz:.1f} um", fontsize=9)
        ax.axis("off")
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    plt.close(fig)


def transfer_function(path: Path) -> None:
    """kz-kx sections of the bright-field phase and absorption transfer functions."""
    shape, vox = (64, 128, 128), (0.29, 0.108, 0.108)
    h_re, h_im = synth.weak_object_transfer_functions(shape, vox)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.2), dpi=110)
    fz = np.fft.fftshift(np.fft.fftfreq(shape[0], vox[0]))
    fx = np.fft.fftshift(np.fft.fftfreq(shape[2], vox[2]))
    for ax, h, title in (
        (axes[0], h_re, "phase TF (real part)"),
        (axes[1], h_im, "absorption TF (real part)"),
    ):
        sec = np.fft.fftshift(h[:, 0, :].real)
        m = np.abs(sec).max()
        ax.imshow(
            sec,
            cmap="RdBu_r",
            vmin=-m,
            vmax=m,
            aspect="auto",
            extent=(fx[0], fx[-1], fz[-1], fz[0]),
        )
        ax.set_xlabel("kx (1/um)")
        ax.set_ylabel("kz (1/um)")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, facecolor="white")
    plt.close(fig)


def timelapse(path: Path) -> None:
    """Composite (DNA, lamin-b1, membrane) over the frames of a 0.065 um/px time-lapse."""
    im = synth.simulate(
        (28, 200, 200), (0.29, 0.065, 0.065), ("dna", "lamin-b1", "cellmask"), seed=3, timepoints=8
    )
    nt = im.data.shape[0]
    fig, axes = plt.subplots(2, nt, figsize=(2.0 * nt, 4.2), dpi=110)
    z = int(0.45 * im.data.shape[2])
    for t in range(nt):
        rgb = np.zeros((*im.data.shape[3:], 3))
        for c, name in enumerate(im.channel_names[1:], start=1):
            rgb += _norm(im.data[t, c, z])[..., None] * np.array(COLORS[name])
        axes[0, t].imshow(_norm(im.data[t, 0, z - 3]), cmap="gray")
        axes[1, t].imshow(np.clip(rgb, 0, 1))
        axes[0, t].set_title(f"t = {t}", fontsize=9)
        axes[0, t].axis("off")
        axes[1, t].axis("off")
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    plt.close(fig)


def randomized(path: Path, seeds: tuple[int, ...] = (1, 3, 5, 7, 9, 11)) -> None:
    """Domain-randomized fields: transmitted light (middle plane) over the dna target (max proj.)."""
    from napari_labelfree.core.synth.randomize import random_settings, render_field

    fig, axes = plt.subplots(2, len(seeds), figsize=(2.6 * len(seeds), 5.6))
    for col, seed in zip(axes.T, seeds, strict=True):
        s = random_settings(seed)
        d = render_field(s, seed).data[0]
        col[0].imshow(_norm(d[0, d.shape[1] // 2]), cmap="gray")
        col[0].set_title(
            f"{s.modality}\n{s.pixel_um:.2f} um px, NA {s.na_detection:.2f}", fontsize=8
        )
        col[1].imshow(_norm(d[1].max(0)), cmap="magma")
        for ax in col:
            ax.set_axis_off()
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    plt.close(fig)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    im = synth.simulate((48, 256, 256), seed=0)
    z = int(np.argmax(im.masks["fibrillarin"].sum((1, 2)))) if im.masks["fibrillarin"].any() else 20
    y = (
        int(np.argmax(im.masks["fibrillarin"].sum((0, 2))))
        if im.masks["fibrillarin"].any()
        else 128
    )
    orthoslices(im, OUT / "sim_channels.png", z, y)
    through_focus(im, OUT / "sim_brightfield_focus.png", y)
    dic = synth.simulate((48, 256, 256), seed=0, structures=(), modality="dic")
    through_focus(dic, OUT / "sim_dic_focus.png", y)
    transfer_function(OUT / "sim_transfer_function.png")
    timelapse(OUT / "sim_timelapse.png")
    randomized(OUT / "sim_randomized.png")
    print("wrote", sorted(p.name for p in OUT.glob("sim_*.png")))


if __name__ == "__main__":
    main()
