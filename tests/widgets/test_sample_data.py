"""Both simulated samples open from File > Open Sample as named layers with physical scale."""

from __future__ import annotations

import time

import pytest

from napari_labelfree.core.synth import STRUCTURES


@pytest.mark.parametrize(
    ("key", "ndim", "scale"),
    [("zstack", 3, (0.29, 0.108, 0.108)), ("timelapse", 4, (1.0, 0.29, 0.065, 0.065))],
)
def test_sample_opens(make_napari_viewer, key, ndim, scale):
    viewer = make_napari_viewer()
    start = time.perf_counter()
    viewer.open_sample("napari-labelfree", key)
    elapsed = time.perf_counter() - start
    names = [layer.name for layer in viewer.layers]
    assert names == ["bright-field", *(f"{s} (true)" for s in STRUCTURES)]
    for layer in viewer.layers:
        assert layer.data.ndim == ndim
        assert tuple(layer.scale) == pytest.approx(scale)
    assert viewer.layers["bright-field"].visible
    assert viewer.layers["dna (true)"].blending == "additive"
    print(f"{key} opened in {elapsed:.1f} s")
