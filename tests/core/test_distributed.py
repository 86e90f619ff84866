"""Prediction on a Dask cluster of two worker processes: identical output, lost workers, resume."""

from __future__ import annotations

import os

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from napari_labelfree.core.config import TilingConfig  # noqa: E402
from napari_labelfree.core.errors import LabelFreeError  # noqa: E402
from napari_labelfree.core.events import FrameDone, drain  # noqa: E402
from napari_labelfree.core.io import open_image, open_prediction_output, write_ome_tiff  # noqa: E402
from napari_labelfree.core.predict.blocks import block_regions, predict_block  # noqa: E402
from napari_labelfree.core.predict.distributed import predict_distributed, start_local_cluster  # noqa: E402
from napari_labelfree.core.predict.plan import plan_prediction  # noqa: E402

VOX = (0.29, 0.29, 0.29)
TILING = TilingConfig(tile_shape=(8, 16, 16), overlap=0.25, precision="fp32")
N_T = 6


@pytest.fixture(scope="module")
def client():
    # one torch thread per worker, as the reference below: results are then bit-identical
    cluster, _ = start_local_cluster(2, torch_threads=1)
    with cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


@pytest.fixture
def case(tmp_path, make_tiny_model):
    rng = np.random.default_rng(7)
    data = rng.normal(size=(N_T, 2, 12, 20, 20)).astype(np.float32)
    path = write_ome_tiff(
        tmp_path / "movie.ome.tif", data, channel_names=["dna", "bright"], physical_sizes=VOX
    )
    bundles = [make_tiny_model("dna", "blue"), make_tiny_model("lamin-b1", "magenta", seed=1)]
    return path, bundles, data


def _reference(path, bundles, tiling=TILING):
    """The single-process prediction (the plan API, one torch thread as each worker)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plan = plan_prediction(open_image(path), bundles, "bright", None, tiling, "cpu")
        return [e.arrays for e in plan.iter_frames() if isinstance(e, FrameDone)]
    finally:
        torch.set_num_threads(threads)


def _assert_equal(store, reference):
    src = open_image(store)
    assert src.channel_names == ["dna", "lamin-b1"]
    assert src.physical_sizes == pytest.approx(VOX)
    for t, frame in enumerate(reference):
        for c, name in enumerate(src.channel_names):
            np.testing.assert_array_equal(src.frame(t, c), frame[name])


def _run(client, case, out, **kw):
    path, bundles, _ = case
    seen = []
    stores = predict_distributed(
        [path],
        [str(b.path) for b in bundles],
        [out],
        client,
        channel="bright",
        tiling=TILING,
        device="cpu",
        progress=lambda done, total: seen.append((done, total)),
        **kw,
    )
    return stores, seen


def _ran_on(tmp_path, client):
    """A plugin leaving one marker per worker process that finished a prediction task."""
    folder = tmp_path / "ran"
    folder.mkdir()

    class RanOn(distributed.WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            if str(key).startswith("labelfree-") and finish == "memory":
                (folder / str(os.getpid())).touch()

    client.register_plugin(RanOn(), name=f"ran-on-{tmp_path.name}")
    return folder


def test_two_workers_write_exactly_the_single_process_output(client, case, tmp_path):
    ran = _ran_on(tmp_path, client)
    out = tmp_path / "movie.ome.zarr"
    stores, seen = _run(client, case, out)
    assert stores == [out] and seen[-1] == (N_T, N_T)
    _assert_equal(out, _reference(case[0], case[1]))
    assert len(list(ran.iterdir())) == 2  # both workers ran tasks


def test_a_worker_killed_mid_run_still_gives_the_complete_identical_output(client, case, tmp_path):
    marker = tmp_path / "killed-once"

    class KillOnce(distributed.WorkerPlugin):
        """The worker that starts frame 2 first dies on the spot (a lost node)."""

        def transition(self, key, start, finish, **kwargs):
            frame_2 = str(key).startswith("labelfree-") and str(key).endswith("-2")
            if frame_2 and finish == "executing" and not marker.exists():
                marker.touch()
                os._exit(1)

    client.register_plugin(KillOnce(), name="kill-once")
    try:
        out = tmp_path / "movie.ome.zarr"
        _run(client, case, out)
    finally:
        client.unregister_worker_plugin("kill-once")
    assert marker.exists()  # a worker did die
    _assert_equal(out, _reference(case[0], case[1]))
    client.wait_for_workers(2)  # the nanny brought it back


def test_resume_sends_only_the_missing_frames(client, case, tmp_path):
    path, bundles, data = case
    reference = _reference(path, bundles)
    out = tmp_path / "movie.ome.zarr"
    first = open_prediction_output(
        out, ["dna", "lamin-b1"], ["blue", "magenta"], data.shape[2:], VOX, N_T
    )
    for t in (0, 3):
        first.write_frame(t, reference[t])  # an earlier run stopped after two frames
    first.close()  # and ended (a run still writing holds the partial store: resuming is refused)
    _, seen = _run(client, case, out, resume=True)
    assert seen[0] == (0, N_T - 2) and seen[-1] == (N_T - 2, N_T - 2)
    _assert_equal(out, reference)


def test_blocks_with_their_halo_add_up_to_the_whole_frame_bit_for_bit(tmp_path, make_tiny_model):
    """Blocks cut across tiles (not on their grid) still give exactly the single-process frame."""
    volume = np.random.default_rng(5).normal(size=(14, 40, 36)).astype(np.float32)
    src = open_image(
        write_ome_tiff(tmp_path / "big.ome.tif", volume[None, None], physical_sizes=VOX)
    )
    bundles = [make_tiny_model("dna", "blue"), make_tiny_model("lamin-b1", "magenta", seed=1)]
    plan = plan_prediction(src, bundles, None, None, TILING, "cpu")
    whole = drain(plan.predict_volume(volume))
    regions = block_regions(volume.shape, (5, 13, 17))
    assert len(regions) == 3 * 4 * 3
    assembled = {n: np.full(volume.shape, np.nan, np.float32) for n in plan.names}
    for region in regions:
        part = predict_block(plan, volume, region)
        for name, arr in part.items():
            assembled[name][tuple(slice(a, b) for a, b in region)] = arr
    for name in plan.names:
        np.testing.assert_array_equal(assembled[name], whole[name])


def test_blocks_refuse_an_image_that_needs_resampling(tmp_path, make_tiny_model):
    volume = np.random.default_rng(5).normal(size=(8, 16, 16)).astype(np.float32)
    src = open_image(
        write_ome_tiff(tmp_path / "x.ome.tif", volume[None, None], physical_sizes=(0.29, 0.2, 0.2))
    )
    plan = plan_prediction(src, [make_tiny_model()], None, None, TILING, "cpu")
    with pytest.raises(LabelFreeError, match="models' voxel size"):
        predict_block(plan, volume, block_regions(volume.shape, (8, 8, 8))[0])


def test_two_workers_predicting_blocks_write_the_single_process_output(client, case, tmp_path):
    out = tmp_path / "movie.ome.zarr"
    stores, seen = _run(client, case, out, block=(6, 12, 9))
    n_blocks = 2 * 2 * 3
    assert stores == [out] and seen[-1] == (N_T * n_blocks, N_T * n_blocks)
    _assert_equal(out, _reference(case[0], case[1]))


def test_workers_predict_the_scene_the_client_opened(
    client, tmp_path, make_tiny_model, write_positions
):
    path = tmp_path / "wells.ome.tif"
    write_positions(path, n=2, shape=(6, 16, 16))
    bundle = make_tiny_model("dna", "blue")
    (store,) = predict_distributed(
        [path], [str(bundle.path)], [tmp_path / "p2.ome.zarr"], client,
        channel="bright-field", tiling=TILING, device="cpu", scene="Position 2",
    )  # fmt: skip
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plan = plan_prediction(open_image(path, 1), [bundle], "bright-field", None, TILING, "cpu")
        (want,) = [e.arrays["dna"] for e in plan.iter_frames() if isinstance(e, FrameDone)]
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(open_image(store).frame(0, 0), want)
