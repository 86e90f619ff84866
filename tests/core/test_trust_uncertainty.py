"""Uncertainty outputs: the spread over test-time variants, named "<structure> (uncertainty)"."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_labelfree.cli import main
from napari_labelfree.core.config import TilingConfig
from napari_labelfree.core.events import FrameDone, drain
from napari_labelfree.core.io import open_image, write_ome_tiff
from napari_labelfree.core.predict.blocks import block_regions, predict_block
from napari_labelfree.core.predict.plan import plan_prediction
from napari_labelfree.core.predict.tta import spread_predictor, tta_predictor

VOX = (0.29, 0.29, 0.29)
TILING = TilingConfig(tile_shape=(8, 16, 16), overlap=0.25, precision="fp32")


def test_the_spread_is_zero_for_a_symmetric_predictor_and_not_for_a_directional_one():
    x = torch.randn(1, 1, 4, 8, 8)
    mean_std = spread_predictor(lambda t: 2 * t, "none")(x)  # "none" still uses the 8 variants
    assert mean_std.shape == (1, 2, 4, 8, 8)
    torch.testing.assert_close(mean_std[:, :1], 2 * x)
    assert float(mean_std[:, 1:].abs().max()) < 1e-5

    ramp = torch.arange(8.0).expand(1, 1, 4, 8, 8)  # an output that depends on the orientation
    mean_std = spread_predictor(lambda t: t + ramp, "yx")(x)
    torch.testing.assert_close(mean_std[:, :1], tta_predictor(lambda t: t + ramp, "yx")(x))
    assert float(mean_std[:, 1:].min()) > 0.4


@pytest.fixture
def movie(tmp_path):
    data = np.random.default_rng(3).normal(100, 10, size=(2, 1, 8, 24, 20)).astype(np.float32)
    return write_ome_tiff(tmp_path / "movie.ome.tif", data, None, ["bright"], VOX), data


def test_a_plan_with_uncertainty_yields_one_more_output_per_model(movie, make_tiny_model):
    path, data = movie
    bundles = [make_tiny_model("dna", "blue"), make_tiny_model("tom20", "green", seed=1)]
    tiling = TilingConfig(tile_shape=(8, 16, 16), overlap=0.25, precision="fp32", uncertainty=True)
    plan = plan_prediction(open_image(path), bundles, None, None, tiling, "cpu")
    assert plan.output_names == ("dna", "tom20", "dna (uncertainty)", "tom20 (uncertainty)")
    assert plan.output_colours[2:] == ("magma", "magma")
    frames = [e for e in drain_events(plan.iter_frames()) if isinstance(e, FrameDone)]
    assert len(frames) == 2
    plain = plan_prediction(
        open_image(path), bundles, None, None, TilingConfig(**{**vars(TILING), "tta": "yx"}), "cpu"
    )
    reference = drain(plain.predict_volume(data[0, 0]))
    for name in ("dna", "tom20"):
        u = frames[0].arrays[f"{name} (uncertainty)"]
        assert u.shape == data.shape[2:] and u.dtype == np.float32
        assert (u >= 0).all() and u.max() > 0  # untrained networks are not rotation-invariant
        # the prediction itself is the mean over the same variants as --tta
        np.testing.assert_allclose(frames[0].arrays[name], reference[name], atol=1e-5)


def drain_events(gen):
    out = []
    while True:
        try:
            out.append(next(gen))
        except StopIteration:
            return out


def test_blocks_give_the_uncertainty_of_the_whole_frame(tmp_path, make_tiny_model):
    volume = np.random.default_rng(5).normal(size=(10, 24, 20)).astype(np.float32)
    src = open_image(write_ome_tiff(tmp_path / "v.ome.tif", volume[None, None], physical_sizes=VOX))
    tiling = TilingConfig(tile_shape=(8, 16, 16), overlap=0.25, precision="fp32", uncertainty=True)
    plan = plan_prediction(src, [make_tiny_model()], None, None, tiling, "cpu")
    whole = drain(plan.predict_volume(volume))
    assembled = {n: np.full(volume.shape, np.nan, np.float32) for n in plan.output_names}
    for region in block_regions(volume.shape, (5, 13, 11)):
        for name, arr in predict_block(plan, volume, region).items():
            assembled[name][tuple(slice(a, b) for a, b in region)] = arr
    for name in plan.output_names:
        np.testing.assert_allclose(assembled[name], whole[name], atol=1e-5)


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_cli_uncertainty_channel_reopens_with_its_name(
    tmp_path, movie, make_tiny_model, suffix, capsys
):
    path, data = movie
    model = make_tiny_model("dna", "blue")
    out = tmp_path / f"pred{suffix}"
    args = ["predict", str(path), "-m", str(model.path), "-o", str(out), "--device", "cpu"]
    assert main([*args, "--uncertainty", "--tile", "8,16,16"]) == 0
    src = open_image(out)
    assert src.channel_names == ["dna", "dna (uncertainty)"]
    assert src.shape_tczyx == (2, 2, *data.shape[2:])
    assert (src.frame(1, 1) >= 0).all() and src.frame(1, 1).max() > 0
    err = capsys.readouterr().err
    # a model without training statistics: one warning line that says it cannot check
    lines = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "dna" in lines[0] and "cannot check" in lines[0]


def test_cli_uncertainty_on_a_dask_cluster(tmp_path, movie, make_tiny_model, capsys):
    pytest.importorskip("distributed")
    path, data = movie
    model = make_tiny_model("dna", "blue")
    out = tmp_path / "pred.ome.zarr"
    args = ["predict", str(path), "-m", str(model.path), "-o", str(out), "--device", "cpu"]
    assert main([*args, "--uncertainty", "--tile", "8,16,16", "--workers", "1"]) == 0
    src = open_image(out)
    assert src.channel_names == ["dna", "dna (uncertainty)"]
    assert (src.frame(0, 1) >= 0).all() and src.frame(0, 1).max() > 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "dna" in lines[0] and "cannot check" in lines[0]


def test_models_of_one_structure_share_their_joint_spread(movie, make_tiny_model):
    path, data = movie
    a, b = make_tiny_model("dna", seed=0), make_tiny_model("dna", seed=1)
    tiling = TilingConfig(tile_shape=(8, 16, 16), overlap=0.25, precision="fp32", uncertainty=True)
    volume = data[0, 0]

    def run(bundles):
        plan = plan_prediction(open_image(path), bundles, None, None, tiling, "cpu")
        return plan.output_names, drain(plan.predict_volume(volume))

    names, both = run([a, b])
    assert names == (
        "dna (dna-0)",
        "dna (dna-1)",
        "dna (dna-0) (uncertainty)",
        "dna (dna-1) (uncertainty)",
    )
    alone = [run([m])[1] for m in (a, b)]
    means = np.stack([r["dna"] for r in alone])
    spreads = np.stack([r["dna (uncertainty)"] for r in alone])
    expected = np.sqrt((spreads**2).mean(axis=0) + means.var(axis=0))
    for name in names[2:]:
        np.testing.assert_allclose(both[name], expected, rtol=1e-4, atol=1e-5)
    # two differently seeded models disagree: the joint spread exceeds their own almost everywhere
    assert (both[names[2]] > np.sqrt((spreads**2).mean(axis=0)) + 1e-6).mean() > 0.9


def test_a_25d_model_is_never_flipped_in_z_with_uncertainty_or_in_blocks(tmp_path):
    """A 2.5D network reads its window of planes in one z-order, so "yxz" means "yx" for it:
    with uncertainty (whose spread must not mix in z-reversed windows) and cut into blocks alike."""
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.unet import randomize_batchnorm
    from napari_labelfree.core.weights import load_network

    arch = Architecture(name="unet2.5d", depth=2, width=8, in_planes=3)
    bundle = init_bundle(tmp_path / "w", ModelSpec("dna", voxel_size_um=VOX, architecture=arch))
    randomize_batchnorm(load_network(bundle), 0)
    volume = np.random.default_rng(7).normal(size=(6, 24, 20)).astype(np.float32)
    src = open_image(write_ome_tiff(tmp_path / "v.ome.tif", volume[None, None], physical_sizes=VOX))

    def predicted(tta, uncertainty, blocks=False):
        tiling = TilingConfig(**{**vars(TILING), "tta": tta, "uncertainty": uncertainty})
        plan = plan_prediction(src, [bundle], None, None, tiling, "cpu")
        if not blocks:
            return drain(plan.predict_volume(volume))
        out = {n: np.full(volume.shape, np.nan, np.float32) for n in plan.output_names}
        for region in block_regions(volume.shape, (3, 13, 11)):
            for name, arr in predict_block(plan, volume, region).items():
                out[name][tuple(slice(a, b) for a, b in region)] = arr
        return out

    for uncertainty, blocks in ((True, False), (False, True), (True, True)):
        asked, yx = predicted("yxz", uncertainty, blocks), predicted("yx", uncertainty, blocks)
        for name in asked:
            np.testing.assert_allclose(asked[name], yx[name], atol=1e-5, err_msg=name)
    # and the whole-frame "yxz" prediction is what the blocks give
    whole, cut = predicted("yxz", False), predicted("yxz", False, blocks=True)
    np.testing.assert_allclose(cut["dna"], whole["dna"], atol=1e-5)
