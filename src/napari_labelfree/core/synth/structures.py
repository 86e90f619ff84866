"""What each structure looks like: its labeled component, optics of its label, and the specimen.

:class:`Components` draws every part of a frame once, on demand (membrane, lamina, nucleoli,
chromatin, cytoplasm, ER, mitochondria, and the unlabeled lipid droplets and granules). The table
:data:`TABLE` says, per labeled structure, which component its label marks, how much diffuse label
it has, its emission wavelength and brightness. :func:`specimen` turns the components into the
refractive index and absorption that transmitted light sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.ndimage import gaussian_filter

from .organelles import lipid_droplets, mitochondria, mitotic_chromatin, nucleoli
from .scene import Cell, Geometry

Vec3 = tuple[float, float, float]


class Components:
    """The parts of one frame as ZYX density maps (about 1 at the part), each drawn once when asked."""

    def __init__(
        self,
        cells: list[Cell],
        geo: Geometry,
        noise: dict[str, np.ndarray],
        voxel: Vec3,
        z0: float,
        diameter: float,
    ) -> None:
        self.cells, self.geo, self.noise = cells, geo, noise
        self.voxel, self.z0, self.diameter = voxel, z0, diameter
        self.shape = geo.rho.shape

    # --- plasma membrane: within ~0.1 um of the nearest cell surface
    @cached_property
    def membrane(self) -> np.ndarray:
        g = self.geo
        return np.where(g.inside, np.exp(-((g.dist_mem / 0.12) ** 2)), 0.0).astype(np.float32)

    @cached_property
    def membrane_mask(self) -> np.ndarray:
        return self.geo.inside & (self.geo.dist_mem < 0.2)

    # --- nuclear envelope (lamin-b1): thin shell; re-forming daughters have a fainter lamina
    @cached_property
    def lamina(self) -> np.ndarray:
        g = self.geo
        lamina = (np.exp(-((g.shell_dist / 0.1) ** 2)) * g.reform[None]).astype(np.float32)
        lamina *= 0.75 + 0.25 * np.clip(self.noise["fine"], -1, 3)
        return lamina

    @cached_property
    def lamina_mask(self) -> np.ndarray:
        return (np.abs(self.geo.shell_dist) < 0.15) & (self.geo.reform[None] > 0.3)

    # --- nucleoli
    @cached_property
    def nucleolus(self) -> np.ndarray:
        return nucleoli(self.cells, self.geo, self.shape, self.voxel, self.z0)

    @cached_property
    def nucleolus_mask(self) -> np.ndarray:
        return self.nucleolus > 0.5

    @cached_property
    def fibrillarin(self) -> np.ndarray:
        """Nucleoli, textured, plus the fibrillarin that coats chromosomes in mitosis."""
        return self.nucleolus * (0.6 + 0.4 * np.clip(self.noise["fine"], -1, 2)) + self._dna[2]

    # --- chromatin
    @cached_property
    def _dna(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chromatin, its mask, and the fibrillarin that mitosis spreads (drawn together)."""
        g, nucleolus = self.geo, self.nucleolus
        dz, dy, dx = self.voxel
        # textured nucleoplasm, denser at the periphery and around nucleoli
        chromatin = g.nucleus_soft * (
            0.55 + 0.25 * np.tanh(self.noise["dna"]) + 0.35 * np.exp(-((g.shell_dist / 0.35) ** 2))
        )
        chromatin *= 1 - 0.85 * nucleolus
        chromatin += (
            0.4
            * gaussian_filter(nucleolus, (0.3 / dz, 0.3 / dy, 0.3 / dx))
            * (g.rho < 1)
            * (1 - nucleolus)
        )
        mask = (g.rho < 1) & ~self.nucleolus_mask
        # mitotic chromatin: condensed chromosomes (prophase) or metaphase plate / anaphase plates
        fibrillarin_diffuse = np.zeros(self.shape, np.float32)
        for ci, c in enumerate(self.cells):
            if c.mitosis is None:
                continue
            cond = mitotic_chromatin(c, ci, g, self.z0, self.noise["fine"])
            chromatin = np.maximum(chromatin, cond)
            mask |= cond > 0.5
            # nucleoli disassemble: fibrillarin coats the chromosomes and spreads through the cell
            fibrillarin_diffuse += 0.05 * (cond > 0.3) + 0.03 * (g.inside & (g.lab == ci)[None])
        return chromatin, mask, fibrillarin_diffuse

    @property
    def chromatin(self) -> np.ndarray:
        return self._dna[0]

    @property
    def dna_mask(self) -> np.ndarray:
        return self._dna[1]

    # --- cytoplasm and its organelles
    @cached_property
    def cyto(self) -> np.ndarray:
        g = self.geo
        cyto = g.inside & ~(g.rho < 1.15) & (g.dist_mem > 0.15)
        if any(c.mitosis is not None for c in self.cells):
            cyto &= ~(self.chromatin > 0.3)
        return cyto

    @cached_property
    def _er(self) -> tuple[np.ndarray, np.ndarray]:
        """ER and its mask: intersections of two zero-level sets of random fields = a 3D tubular
        network, denser near the nucleus, continuous with the outer nuclear membrane (sec61b
        labels the envelope)."""
        g, cyto = self.geo, self.cyto
        perinuclear = np.exp(-np.clip(g.rho - 1, 0, None) * g.mean_r / 2.0)
        tubes = np.exp(-(self.noise["er1"] ** 2 + self.noise["er2"] ** 2) / (2 * 0.3**2))
        er = (tubes * cyto * (0.45 + 0.55 * perinuclear)).astype(np.float32)
        er_ne = (
            0.6 * np.exp(-(((g.shell_dist - 0.05) / 0.12) ** 2)) * g.reform[None] * ~g.mitotic[None]
        )
        er = np.maximum(er, er_ne.astype(np.float32))
        return er, (tubes > 0.5) & cyto | (er_ne > 0.35)

    @property
    def er(self) -> np.ndarray:
        return self._er[0]

    @property
    def er_mask(self) -> np.ndarray:
        return self._er[1]

    @cached_property
    def mito(self) -> np.ndarray:
        """Persistent random-walk tubules confined to the cytoplasm."""
        g = self.geo
        return mitochondria(
            self.cells, g.lab, self.cyto, self.shape, self.voxel, self.z0, self.diameter
        )

    @cached_property
    def mito_mask(self) -> np.ndarray:
        return self.mito > 0.35

    # --- unlabeled scatterers (visible in bright-field only)
    @cached_property
    def droplets(self) -> np.ndarray:
        return lipid_droplets(self.cells, self.cyto, self.voxel, self.z0, self.diameter)

    @cached_property
    def granular(self) -> np.ndarray:
        return np.clip(self.noise["fine"], 0, None) * self.cyto


@dataclass(frozen=True)
class SimStructure:
    """How one labeled structure is simulated.

    Attributes
    ----------
    name
        Channel name, as in :data:`napari_labelfree.core.structures.TABLE`.
    component, mask
        The :class:`Components` attributes its label marks, and its ground-truth mask.
    background, background_in
        Diffuse label (unbound dye, unassembled protein) added over a :class:`Geometry` field,
        "inside" (the cell) or "nucleus_soft" (the nucleus); 0 for none.
    emission_um
        Emission wavelength (um): Hoechst for DNA, mEGFP for the tagged proteins, CellMask Deep Red.
    brightness
        Relative labeling brightness (peak photons = fluor_photons * this), as in typical hiPS lines.
    """

    name: str
    component: str
    mask: str
    emission_um: float
    brightness: float
    background: float = 0.0
    background_in: str = "inside"

    def density(self, parts: Components) -> np.ndarray:
        """Label density (float32 ZYX) of this structure in a frame."""
        signal = getattr(parts, self.component)
        if self.background:
            signal = signal + self.background * getattr(parts.geo, self.background_in)
        return signal.astype(np.float32)

    def mask_of(self, parts: Components) -> np.ndarray:
        """Ground-truth geometry (bool ZYX): no blur, no noise."""
        return getattr(parts, self.mask)


TABLE: dict[str, SimStructure] = {
    s.name: s
    for s in (
        SimStructure("dna", "chromatin", "dna_mask", 0.46, 1.0),
        SimStructure("lamin-b1", "lamina", "lamina_mask", 0.51, 0.8, 0.04, "nucleus_soft"),
        SimStructure(
            "fibrillarin", "fibrillarin", "nucleolus_mask", 0.51, 0.9, 0.015, "nucleus_soft"
        ),
        SimStructure("tom20", "mito", "mito_mask", 0.51, 0.8, 0.02),
        SimStructure("sec61b", "er", "er_mask", 0.51, 0.7, 0.03),
        SimStructure("cellmask", "membrane", "membrane_mask", 0.67, 0.9, 0.03),
    )
}


# Refractive-index increments over the medium (see specimen); domain randomization varies them
INDEX = {"cytoplasm": 0.022, "nucleoplasm": 0.012, "chromatin_texture": 0.006, "nucleolus": 0.030}


def specimen(
    parts: Components, index: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Refractive-index increment over the medium and extinction (float32 ZYX) of a frame.

    Refractive index (medium n = 1.337): cytoplasm ~1.360, nucleoplasm lower than cytoplasm,
    nucleoli and mitochondria dense, lipid droplets much higher (Schuermann 2016). Cells are nearly
    transparent (~1% absorbed through a cell). ``index`` overrides entries of :data:`INDEX`.
    """
    g, p = parts.geo, parts
    n = {**INDEX, **(index or {})}
    delta_n = n["cytoplasm"] * g.inside * (1 - g.nucleus_soft)
    delta_n += g.nucleus_soft * (
        n["nucleoplasm"] + n["chromatin_texture"] * np.tanh(p.noise["dna"])
    )
    delta_n += (
        n["nucleolus"] * p.nucleolus + 0.012 * np.clip(p.chromatin - 0.8, 0, None) * g.mitotic[None]
    )
    delta_n += (
        0.020 * p.mito + 0.006 * p.er + 0.006 * p.membrane + 0.10 * p.droplets + 0.008 * p.granular
    )
    absorption = 5e-5 * g.inside + 2e-4 * p.mito + 1e-3 * p.droplets + 1e-4 * p.nucleolus
    return delta_n.astype(np.float32), absorption.astype(np.float32)
