"""A 2D time-lapse on a Dask cluster with a 2D model: the single-process output, frame for frame;
blocks refused for a projection model."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from napari_labelfree.core.bundle import init_bundle  # noqa: E402
from napari_labelfree.core.config import Architecture, ModelSpec, TilingConfig  # noqa: E402
from napari_labelfree.core.errors import LabelFreeError  # noqa: E402
from napari_labelfree.core.events import FrameDone  # noqa: E402
from napari_labelfree.core.io import from_array, open_image, write_ome_tiff  # noqa: E402
from napari_labelfree.core.predict.blocks import check_blocks  # noqa: E402
from napari_labelfree.core.predict.distributed import (  # noqa: E402
    predict_distributed,
    start_local_cluster,
)
from napari_labelfree.core.predict.plan import plan_prediction  # noqa: E402

PIXEL = (0.5, 0.5)
TILING = TilingConfig(tile_shape=(1, 16, 16), overlap=0.25, precision="fp32")


def _model(tmp_path, name, kind="unet2d", planes=1, projection=""):
    arch = Architecture(name=kind, depth=2, width=8, in_planes=planes)
    spec = ModelSpec(
        name, voxel_size_um=(1.0, *PIXEL), architecture=arch, target_projection=projection
    )
    return init_bundle(tmp_path / name, spec, seed=3)


def test_2d_timelapse_on_two_workers_equals_one_process(tmp_path):
    import torch

    movie = np.random.default_rng(3).normal(size=(4, 1, 1, 24, 28)).astype(np.float32)
    path = write_ome_tiff(tmp_path / "movie.ome.tif", movie, physical_sizes=(None, *PIXEL))
    bundle = _model(tmp_path, "dna")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker: bit-identical results
    try:
        plan = plan_prediction(open_image(path), bundle, None, None, TILING, "cpu")
        reference = [e.arrays["dna"] for e in plan.iter_frames() if isinstance(e, FrameDone)]
    finally:
        torch.set_num_threads(threads)
    cluster, _ = start_local_cluster(2, torch_threads=1)
    with cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        (store,) = predict_distributed(
            [path],
            [str(bundle.path)],
            [tmp_path / "out.ome.zarr"],
            client,
            tiling=TILING,
            device="cpu",
        )
    out = open_image(store)
    assert (out.n_timepoints, out.shape_zyx) == (4, (1, 24, 28))
    for t in range(4):
        np.testing.assert_array_equal(out.frame(t, 0), reference[t])


def test_projection_models_are_not_cut_into_blocks(tmp_path):
    stack = from_array(np.ones((5, 16, 16), np.float32), "ZYX", physical_sizes=(1.0, *PIXEL))
    plan = plan_prediction(stack, _model(tmp_path, "p", "unet2.5d", 3, "max"), device="cpu")
    with pytest.raises(LabelFreeError, match="blocks"):
        check_blocks(plan)
