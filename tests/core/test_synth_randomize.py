"""Domain randomization of the simulator: reproducible by seed, inside its ranges, every modality."""

from __future__ import annotations

import numpy as np
import pytest

from napari_labelfree.core.synth import MODALITIES, simulate
from napari_labelfree.core.synth.optics import transmitted_light
from napari_labelfree.core.synth.randomize import (
    BIT_DEPTHS,
    NA_BY_PIXEL,
    RANGES,
    FieldSettings,
    clean_settings,
    random_settings,
    render_field,
    supersampling,
)

SMALL = (4.0, 8.0, 8.0)  # um: a field small enough for a quick test


def test_same_seed_same_settings_and_field_other_seed_other_field():
    assert random_settings(5) == random_settings(5)
    assert random_settings(5) != random_settings(6)
    a = render_field(random_settings(5), 5, SMALL, max_sim_pixels=64)
    b = render_field(random_settings(5), 5, SMALL, max_sim_pixels=64)
    np.testing.assert_array_equal(a.data, b.data)
    c = render_field(random_settings(6), 6, SMALL, max_sim_pixels=64)
    assert a.data.shape != c.data.shape or not np.array_equal(a.data, c.data)


def test_every_drawn_factor_stays_inside_its_range():
    def inside(name: str, value: float) -> bool:
        lo, hi = RANGES[name]
        return lo - 1e-9 <= value <= hi + 1e-9

    seen = set()
    for seed in range(300):
        s = random_settings(seed)
        seen.add(s.modality)
        assert inside("pixel_um", s.pixel_um) and inside("z_step_um", s.z_step_um)
        assert inside("wavelength", s.wavelength)
        lo, hi = next((lo, hi) for top, lo, hi in NA_BY_PIXEL if s.pixel_um < top)
        assert lo <= s.na_detection <= hi
        assert inside("coherence", s.na_illumination / s.na_detection)
        assert inside("focus_offset_um", s.focus_offset_um)
        assert inside("spherical_waves", s.spherical_waves)
        assert inside("cell_diameter", s.cell_diameter) and inside("cell_height", s.cell_height)
        assert inside("mitotic_fraction", s.mitotic_fraction)
        assert inside("cytoplasm_dn", s.index["cytoplasm"])
        assert inside("nucleoplasm_dn", s.index["nucleoplasm"])
        assert inside("nucleolus_dn", s.index["nucleolus"])
        assert inside("chromatin_texture_dn", s.index["chromatin_texture"])
        assert inside("chromatin_period_um", s.chromatin_period_um)
        assert inside("photons", s.photons) and inside("read_noise", s.read_noise)
        assert inside("ring_transmission", s.phase_ring[1])
        assert inside("annulus_inner", s.phase_annulus[0])
        assert s.bit_depth in BIT_DEPTHS
        if s.spread is not None:
            assert inside("coverage", s.spread[0]) and inside("elongation", s.spread[1])
            assert inside("drop", s.spread[2])
            if len(s.spread) == 4:
                assert inside("cluster_diameters", s.spread[3])
                seen.add("clustered")
        if s.fibres_per_100um2 > 0:
            assert inside("fibres_per_100um2", s.fibres_per_100um2)
            seen.add("fibres")
        # the camera's background sits inside its range, under saturation
        full = 2.0**s.bit_depth - 1
        assert inside("fill", (s.gain * s.photons + s.offset) / full)
    assert seen == {*MODALITIES, "clustered", "fibres"}
    # both signs of nuclear-cytoplasmic index contrast are drawn
    diffs = [random_settings(k).index for k in range(100)]
    signs = {np.sign(d["nucleoplasm"] - d["cytoplasm"]) for d in diffs}
    assert signs == {-1.0, 1.0}


@pytest.mark.parametrize("modality", MODALITIES)
def test_each_modality_renders_a_finite_noisy_field_with_its_target(modality):
    s = random_settings(3, modality=modality)
    im = render_field(s, 3, SMALL, structures=("dna", "cellmask"), max_sim_pixels=64)
    assert im.channel_names == [modality, "dna", "cellmask"]
    assert im.voxel_size == (s.z_step_um, s.pixel_um, s.pixel_um)
    assert im.settings["modality"] == modality
    d = im.data
    assert d.ndim == 5 and d.shape[:2] == (1, 3) and np.isfinite(d).all()
    assert d[0, 0].std() > 0 and d[0, 1].max() > d[0, 1].min()
    if s.bit_depth is not None:  # quantised to whole counts within the camera's range
        assert d[0, 0].max() <= 2**s.bit_depth - 1 and np.array_equal(d[0, 0], np.round(d[0, 0]))


def test_clean_settings_are_the_simulators_defaults():
    s = clean_settings()
    assert s == FieldSettings()
    assert (s.modality, s.pixel_um, s.z_step_um, s.na_detection, s.na_illumination) == (
        "bright-field",
        0.108,
        0.29,
        1.2,
        0.55,
    )
    assert s.spread is None and s.index == {} and s.bit_depth is None


def test_supersampling_brings_coarse_pixels_under_the_optics_nyquist():
    s = FieldSettings(pixel_um=0.4, na_detection=0.8, na_illumination=0.6, wavelength=0.5)
    k = supersampling(s)
    assert s.pixel_um / k <= s.wavelength / (2 * (0.8 + 0.6)) + 1e-12
    assert supersampling(clean_settings()) == 1  # 0.108 um is fine enough for NA 1.2 + 0.55


def test_phase_contrast_shows_a_phase_object_in_focus_dark_with_a_bright_halo():
    shape, vox = (24, 64, 64), (0.25, 0.1, 0.1)
    zz, yy, xx = np.meshgrid(
        *(np.arange(n) * v for n, v in zip(shape, vox, strict=True)), indexing="ij"
    )
    c = [n * v / 2 for n, v in zip(shape, vox, strict=True)]
    r = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
    dn = (r < 1.0).astype(np.float32) * 0.01
    zero = np.zeros_like(dn)
    kw = {"na_illumination": 0.3, "na_detection": 0.9}
    pc = transmitted_light(dn, zero, vox, modality="phase-contrast", **kw)[12]
    bf = transmitted_light(dn, zero, vox, modality="bright-field", **kw)[12]
    centre = pc[32, 32] - 1
    assert centre < -0.1  # dark object (positive phase contrast)
    assert abs(bf[32, 32] - 1) < 0.2 * abs(centre)  # bright-field hardly shows it in focus
    assert pc[32, 32 + 15] > 1.0  # the halo around it is brighter than the background


def test_spherical_aberration_makes_focus_asymmetric():
    shape, vox = (32, 48, 48), (0.2, 0.1, 0.1)
    dn = np.zeros(shape, np.float32)
    dn[16, 24, 24] = 0.05
    zero = np.zeros_like(dn)
    plain = transmitted_light(dn, zero, vox)
    aberrated = transmitted_light(dn, zero, vox, spherical_waves=0.3)
    assert not np.allclose(plain, aberrated, atol=1e-4)


def test_fibres_show_in_transmitted_light_only():
    kw = {"shape": (12, 48, 48), "voxel_size": (0.5, 0.2, 0.2), "structures": ("dna",), "seed": 4}
    kw |= {"spread": (0.35, 1.0, 0.8), "noise": False, "modality": "phase-contrast"}
    plain = simulate(**kw).data[0]
    fibred = simulate(**kw, fibres_per_100um2=20.0).data[0]
    assert not np.allclose(plain[0], fibred[0], atol=1e-3)  # neurites are seen
    np.testing.assert_array_equal(plain[1], fibred[1])  # and not labeled


def test_clustered_sparse_cells_leave_empty_medium_and_keep_two_cells_at_least():
    kw = {"shape": (20, 80, 80), "voxel_size": (0.6, 0.5, 0.5), "structures": ("dna",), "seed": 1}
    kw["noise"] = False
    confluent = simulate(**kw).data[0, 1].max(axis=0)
    clustered = simulate(**kw, spread=(0.4, 1.0, 0.0, 1.0)).data[0, 1].max(axis=0)
    lonely = simulate(**kw, spread=(0.4, 1.0, 1.0, 1.0)).data[0, 1].max(axis=0)  # all dropped
    low, high = confluent.min(), confluent.max()
    covered = [(a > low + 0.3 * (high - low)).mean() for a in (confluent, clustered)]
    assert 0 < covered[1] < 0.5 * covered[0]  # one clump of nuclei, the rest empty
    assert np.isfinite(lonely).all()
