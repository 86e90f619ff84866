"""napari sample data (File > Open Sample > Label-free prediction): simulated fields of cells.

Both samples are generated on the fly by ``core.synth.simulate`` (about a second on a laptop CPU)
and cached for the session, so no data files ship with the package. Each opens the transmitted
light (visible) and the true fluorescence of every structure (hidden, additive blending, one
colour per structure), all with their physical scale in um.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .core.structures import TRANSMITTED_COLORMAP, colormap_for
from .core.synth import STRUCTURES, SimulatedImage, simulate

ZSTACK = {"shape": (32, 192, 192), "voxel_size": (0.29, 0.108, 0.108), "seed": 0}
# the paper's time-lapse was taken at another magnification (0.065 um/px) than its training data
TIMELAPSE = {
    "shape": (24, 160, 160),
    "voxel_size": (0.29, 0.065, 0.065),
    "seed": 3,
    "timepoints": 8,
    "cell_height": 5.5,  # a flatter colony edge so the whole cells fit in a 7 um stack
}

LayerData = tuple[np.ndarray, dict[str, Any], str]


@functools.lru_cache(maxsize=2)
def _simulated(kind: str) -> SimulatedImage:
    params = ZSTACK if kind == "zstack" else TIMELAPSE
    return simulate(structures=STRUCTURES, **params)


def _layers(im: SimulatedImage, what: str) -> list[LayerData]:
    scale = tuple(im.voxel_size)
    timelapse = im.data.shape[0] > 1
    if timelapse:
        scale = (1.0, *scale)

    def volume(c: int) -> np.ndarray:
        return im.data[:, c] if timelapse else im.data[0, c]

    def limits(a: np.ndarray, lo: float, hi: float) -> list[float]:
        p0, p1 = np.percentile(a[::2, ::2, ::2] if a.ndim == 3 else a[:, ::2, ::4, ::4], [lo, hi])
        return [float(p0), float(max(p1, p0 + 1))]

    bf = volume(0)
    layers: list[LayerData] = [
        (
            bf,
            {
                "name": im.channel_names[0],
                "scale": scale,
                "colormap": TRANSMITTED_COLORMAP,
                "contrast_limits": limits(bf, 0.5, 99.5),
                "metadata": {"simulated": what, "voxel_size_um": im.voxel_size},
            },
            "image",
        )
    ]
    for c, name in enumerate(im.channel_names[1:], start=1):
        a = volume(c)
        layers.append(
            (
                a,
                {
                    "name": f"{name} (true)",
                    "scale": scale,
                    "colormap": colormap_for(name, TRANSMITTED_COLORMAP),
                    "blending": "additive",
                    "visible": False,
                    "contrast_limits": limits(a, 1.0, 99.8),
                    "metadata": {"simulated": what, "structure": name},
                },
                "image",
            )
        )
    return layers


def simulated_zstack() -> list[LayerData]:
    """Bright-field z-stack (32x192x192 at 0.29, 0.108, 0.108 um) and the six true fluorescences."""
    return _layers(_simulated("zstack"), "z-stack")


def simulated_timelapse() -> list[LayerData]:
    """Bright-field time-lapse (8 frames of 24x160x160 at 0.29, 0.065, 0.065 um) with a division."""
    return _layers(_simulated("timelapse"), "time-lapse")
