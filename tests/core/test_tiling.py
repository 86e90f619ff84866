import numpy as np
import pytest
import torch

from napari_labelfree.core.predict.tiling import (
    effective_tile_shape,
    pad_tensor_to,
    pad_to,
    plan_tiles,
    sliding_window_inference,
    tile_starts,
)


def identity(batch: torch.Tensor) -> torch.Tensor:
    return batch.clone()


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 17), (40, 300, 250)])
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_identity_predictor_returns_the_input(shape, blend, rng):
    vol = rng.normal(size=shape).astype(np.float32)
    out = sliding_window_inference(
        vol, identity, (16, 64, 64), overlap=0.25, blend=blend, multiple=4
    )
    assert out.shape == (1, *shape)
    np.testing.assert_allclose(out[0].numpy(), vol, rtol=1e-6, atol=1e-6)


def test_multi_output_predictor_and_batches(rng):
    vol = rng.normal(size=(20, 50, 70)).astype(np.float32)

    def two(batch):
        return torch.cat([batch, 2 * batch], dim=1)

    out = sliding_window_inference(vol, two, (8, 32, 32), n_out=2, overlap=0.5, batch_size=3)
    np.testing.assert_allclose(out[0].numpy(), vol, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), 2 * vol, rtol=1e-6, atol=1e-6)


def test_tiles_cover_the_volume_and_respect_the_multiple():
    plan = plan_tiles((40, 300, 250), (32, 128, 100), overlap=0.25, multiple=16)
    assert plan.tile_shape == (32, 128, 96)
    for size, t, starts in zip(plan.padded_shape, plan.tile_shape, plan.starts, strict=True):
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s : s + t] = True
        assert covered.all() and starts[-1] + t == size


def test_small_volume_gets_a_small_tile():
    assert effective_tile_shape((13, 30, 500), (32, 256, 256), 16) == (16, 32, 256)


def test_tile_starts_with_no_overlap_needed():
    assert tile_starts(256, 256, 0.25) == [0]
    assert tile_starts(100, 40, 0.0) == [0, 40, 60]


def test_normalized_weights_sum_to_one():
    plan = plan_tiles((30, 90, 90), (16, 32, 32), overlap=0.3)
    total = np.zeros(plan.padded_shape)
    for iz, z in enumerate(plan.starts[0]):
        for iy, y in enumerate(plan.starts[1]):
            for ix, x in enumerate(plan.starts[2]):
                total[z : z + 16, y : y + 32, x : x + 32] += plan.tile_weight((iz, iy, ix))
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)


@pytest.mark.parametrize("target", [(5, 9, 4), (12, 9, 11), (31, 30, 9)])
def test_tensor_padding_mirrors_as_numpy_does(target, rng):
    # the device path pads on the device: it must pad exactly as np.pad "symmetric" (any size)
    vol = rng.normal(size=(5, 9, 4)).astype(np.float32)
    got = pad_tensor_to(torch.from_numpy(vol), target).numpy()
    np.testing.assert_array_equal(got, pad_to(vol, target))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_tensor_volume_is_tiled_where_it_lies(batch_size, rng):
    vol = rng.normal(size=(7, 45, 70)).astype(np.float32)
    from_numpy = sliding_window_inference(vol, identity, (8, 32, 32), overlap=0.25, multiple=4)
    from_tensor = sliding_window_inference(
        torch.from_numpy(vol), identity, (8, 32, 32), overlap=0.25, multiple=4,
        batch_size=batch_size,
    )  # fmt: skip
    np.testing.assert_allclose(from_tensor.numpy(), from_numpy.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(from_tensor[0].numpy(), vol, rtol=1e-6, atol=1e-6)


def test_cpu_fp32_caps_only_the_default_tile():
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.predict.tiling import CPU_FP32_MAX_TILE, max_tile_shape

    default = TilingConfig().tile_shape
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    capped = max_tile_shape(default, cpu, torch.float32)
    assert capped == tuple(min(a, b) for a, b in zip(default, CPU_FP32_MAX_TILE, strict=True))
    assert max_tile_shape(default, cpu, torch.bfloat16) == default  # bf16 halves the memory
    assert max_tile_shape(default, cuda, torch.float32) == default
    assert max_tile_shape((64, 512, 512), cpu, torch.float32) == (64, 512, 512)  # asked for


def test_cutting_a_cpu_frame_for_cancel_keeps_a_thin_stack_in_one_z_tile():
    """The widget cuts large CPU frames along Y and X only: a 13-plane stack (a depth-3 network:
    a multiple of 8) stays one z-tile of 16, as the command line predicts it, instead of two
    8-plane tiles with little context each; an uncut X of 60 keeps the plan's 64 likewise."""
    from napari_labelfree.core.predict.tile_advice import cpu_tile_shape
    from napari_labelfree.core.predict.tiling import fit_tile_shape, tile_starts

    grid, plan_tile = (13, 1024, 60), fit_tile_shape((13, 1024, 60), (64, 272, 272), 0.1, 8)
    assert plan_tile[0] == 16 and plan_tile[2] == 64
    tile = fit_tile_shape(grid, cpu_tile_shape(grid, plan_tile, 8, 0.1), 0.1, 8)
    assert tile[0] == 16 and len(tile_starts(16, tile[0], 0.1)) == 1
    assert tile[2] == 64
    assert tile[1] <= plan_tile[1]  # Y: cut into tiles, never above the plan's (memory) cap
