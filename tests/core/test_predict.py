import numpy as np
import pytest
import torch

from napari_labelfree.core.bundle import open_bundle
from napari_labelfree.core.config import TilingConfig
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import FrameDone, FrameStarted, Notice, TileDone, drain
from napari_labelfree.core.io import from_array
from napari_labelfree.core.predict.plan import plan_prediction
from napari_labelfree.core.predict.run import iter_predict, iter_predict_volume
from napari_labelfree.core.preprocess import zscore
from napari_labelfree.core.unet import randomize_batchnorm
from napari_labelfree.core.weights import network_on_device

VOX = (0.29, 0.29, 0.29)


def _whole_and_tiled(b, vol, tiling):
    net = network_on_device(b, torch.device("cpu"))
    randomize_batchnorm(net)
    tiled = drain(iter_predict_volume(vol, [b], VOX, tiling, "cpu"))["dna"]
    with torch.no_grad():
        whole = net(torch.from_numpy(zscore(vol))[None, None])[0, 0].numpy()
    return tiled, whole


def test_tiled_prediction_equals_whole_volume_where_it_fits(make_tiny_model, rng):
    b = make_tiny_model(depth=2, width=8)
    vol = rng.normal(size=(16, 96, 80)).astype(np.float32)
    tiled, whole = _whole_and_tiled(
        b, vol, TilingConfig(tile_shape=(32, 128, 128), precision="fp32")
    )
    rel = np.abs(tiled - whole).max() / np.abs(whole).max()
    assert rel < 1e-4


def test_overlapping_tiles_agree_with_whole_volume(make_tiny_model, rng):
    # tiles see less context at their borders; the blending window keeps the seams negligible
    b = make_tiny_model(depth=2, width=8)
    vol = rng.normal(size=(16, 96, 80)).astype(np.float32)
    tiled, whole = _whole_and_tiled(
        b, vol, TilingConfig(tile_shape=(16, 48, 48), overlap=0.5, precision="fp32")
    )
    assert np.corrcoef(tiled.ravel(), whole.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("shape", [(2, 5, 7), (13, 33, 47), (17, 16, 16), (3, 70, 9)])
def test_any_shape_comes_back_at_the_input_shape(make_tiny_model, shape, rng):
    b = make_tiny_model()
    vol = rng.normal(size=shape).astype(np.float32)
    out = drain(iter_predict_volume(vol, [b], VOX, TilingConfig(tile_shape=(16, 32, 32)), "cpu"))
    assert out["dna"].shape == shape and np.isfinite(out["dna"]).all()


def test_input_is_resampled_to_the_model_voxel_size_and_back(make_tiny_model, rng):
    b = make_tiny_model()
    seen = []
    net = network_on_device(b, torch.device("cpu"))
    hook = net.register_forward_pre_hook(lambda m, inp: seen.append(tuple(inp[0].shape[2:])))
    try:
        vol = rng.normal(size=(8, 128, 128)).astype(np.float32)
        out = drain(
            iter_predict_volume(
                vol, [b], (0.29, 0.0725, 0.0725), TilingConfig(tile_shape=(16, 64, 64)), "cpu"
            )
        )
    finally:
        hook.remove()
    # 128 px at 0.0725 um is 32 px at 0.29 um: the network sees the model's grid
    assert seen and all(s[1] <= 32 and s[2] <= 32 for s in seen)
    assert out["dna"].shape == (8, 128, 128)


def test_two_models_share_each_input_tile(make_tiny_model, rng, monkeypatch):
    import napari_labelfree.core.predict.tiling as tiling

    a = make_tiny_model("dna", seed=1)
    b = make_tiny_model("tom20", seed=2)
    moved = []
    real = torch.Tensor.to

    def counting_to(self, *args, **kwargs):
        # transfers to a device (not casts of the weights to a compute dtype)
        to_device = args and isinstance(args[0], (torch.device, str))
        if self.dim() == 5 and (to_device or "device" in kwargs):
            moved.append(self.shape)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    vol = rng.normal(size=(16, 64, 64)).astype(np.float32)
    gen = iter_predict_volume(
        vol, [a, b], VOX, TilingConfig(tile_shape=(16, 32, 32), overlap=0), "cpu"
    )
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            out = stop.value
            break
    n_tiles = tiling.plan_tiles(vol.shape, (16, 32, 32), 0, multiple=4).n_tiles
    assert sum(isinstance(e, TileDone) for e in events) == n_tiles
    assert len(moved) == n_tiles  # one transfer per tile, not per model
    assert set(out) == {"dna", "tom20"}
    assert not np.allclose(out["dna"], out["tom20"])


def test_time_lapse_events_and_channel_by_name(make_tiny_model, rng):
    b = make_tiny_model()
    data = rng.normal(size=(3, 2, 8, 32, 32)).astype(np.float32)
    src = from_array(data, "TCZYX", ["gfp", "Bright"], (0.29, 0.29, 0.29))
    gen = iter_predict(
        src, [b], channel="bright", tiling=TilingConfig(tile_shape=(16, 32, 32)), device="cpu"
    )
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert [e.frame for e in events if isinstance(e, FrameStarted)] == [0, 1, 2]
    assert [e.frame for e in events if isinstance(e, FrameDone)] == [0, 1, 2]
    assert result["dna"].shape == (3, 8, 32, 32)


def test_missing_voxel_size_is_assumed_with_a_notice(make_tiny_model, rng):
    b = make_tiny_model()
    src = from_array(rng.normal(size=(4, 16, 16)).astype(np.float32), "ZYX")
    events = []
    gen = iter_predict(src, [b], tiling=TilingConfig(tile_shape=(16, 16, 16)), device="cpu")
    drain_events = list(gen)
    events = [e for e in drain_events if isinstance(e, Notice)]
    assert events and "assuming" in events[0].text


def test_cancelling_between_tiles_stops_the_work(make_tiny_model, rng):
    b = make_tiny_model()
    vol = rng.normal(size=(16, 128, 128)).astype(np.float32)
    gen = iter_predict_volume(
        vol, [b], VOX, TilingConfig(tile_shape=(16, 32, 32), overlap=0), "cpu"
    )
    first = next(gen)
    while not isinstance(first, TileDone):  # stage events (normalizing, ...) come first
        first = next(gen)
    assert first.total == 16 and first.index < first.total
    gen.close()  # what worker.quit() amounts to
    with pytest.raises(StopIteration):
        next(gen)


def test_user_errors(make_tiny_model, rng):
    b = make_tiny_model()
    flat = from_array(rng.normal(size=(1, 32, 32)).astype(np.float32), "ZYX")
    with pytest.raises(LabelFreeError, match="2D"):
        drain(iter_predict(flat, [b], device="cpu"))
    two = from_array(rng.normal(size=(2, 4, 16, 16)).astype(np.float32), "CZYX", ["a", "b"])
    with pytest.raises(LabelFreeError, match="choose the transmitted-light"):
        drain(iter_predict(two, [b], device="cpu"))
    with pytest.raises(LabelFreeError, match="no channel named"):
        drain(iter_predict(two, [b], channel="dic", device="cpu"))
    with pytest.raises(LabelFreeError, match="CUDA"):
        drain(
            iter_predict(
                two, [b], channel=0, device="cuda:7" if not torch.cuda.is_available() else "cuda:99"
            )
        )


def test_out_of_memory_retries_with_smaller_tiles(make_tiny_model, rng, monkeypatch):
    import napari_labelfree.core.predict.volume as predict_mod

    b = make_tiny_model(depth=2, width=4)
    vol = rng.normal(size=(16, 64, 64)).astype(np.float32)
    tiling = TilingConfig(tile_shape=(16, 64, 64), overlap=0.5, precision="fp32")
    expected = drain(iter_predict_volume(vol, [b], VOX, tiling, "cpu"))["dna"]
    real_make_predictor = predict_mod.make_predictor

    def predictor_with_memory_limit(voxels):
        def make(*args, **kwargs):
            real = real_make_predictor(*args, **kwargs)

            def predict(batch):
                if batch[0, 0].numel() > voxels:  # what a GPU says when a tile does not fit
                    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
                return real(batch)

            return predict

        return make

    monkeypatch.setattr(predict_mod, "make_predictor", predictor_with_memory_limit(16 * 32 * 64))
    gen = iter_predict_volume(vol, [b], VOX, tiling, "cpu")
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            out = stop.value["dna"]
            break
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert notices and all("out of memory" in n and "retrying" in n for n in notices)
    assert out.shape == vol.shape
    assert np.corrcoef(out.ravel(), expected.ravel())[0, 1] > 0.99  # only tile seams differ

    # memory that no tile fits: a clear error after a bounded number of retries
    monkeypatch.setattr(predict_mod, "make_predictor", predictor_with_memory_limit(0))
    with pytest.raises(LabelFreeError, match="out of memory .* even with tiles"):
        drain(iter_predict_volume(vol, [b], VOX, tiling, "cpu"))


def test_models_sharing_structure_and_folder_name_keep_apart(tmp_path, rng):
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.predict.plan import output_names

    spec = ModelSpec("dna", voxel_size_um=VOX, architecture=Architecture(depth=2, width=4))
    a = init_bundle(tmp_path / "run1" / "model", spec, seed=1)
    b = init_bundle(tmp_path / "run2" / "model", spec, seed=2)
    names = output_names([a, b])
    assert len(set(names)) == 2
    vol = rng.normal(size=(8, 32, 32)).astype(np.float32)
    tiling = TilingConfig(tile_shape=(8, 32, 32), precision="fp32")
    out = drain(iter_predict_volume(vol, [a, b], VOX, tiling, "cpu"))
    alone = drain(iter_predict_volume(vol, [a], VOX, tiling, "cpu"))["dna"]
    np.testing.assert_allclose(out[names[0]], alone, rtol=1e-5, atol=1e-5)  # a's output is a's
    assert not np.allclose(out[names[0]], out[names[1]])


def test_plan_resolves_everything_once(make_tiny_model, rng):
    a = make_tiny_model("dna", seed=1)
    b = make_tiny_model("tom20", voxel_size=(0.29, 0.145, 0.145), seed=2)
    data = rng.normal(size=(2, 2, 8, 32, 32)).astype(np.float32)
    src = from_array(data, "TCZYX", ["gfp", "Bright"], (0.29, 0.29, 0.29))
    tiling = TilingConfig(tile_shape=(16, 32, 32), precision="fp32")
    plan = plan_prediction(src, [a, str(b.path)], "bright", tiling=tiling, device="cpu")
    assert plan.names == ("dna", "tom20") and plan.channel == 1
    assert plan.bundles[1].path == b.path  # a folder is resolved into its bundle
    assert plan.voxel_size == (0.29, 0.29, 0.29) and plan.voxel_size_assumed == (False,) * 3
    assert plan.output_physical_sizes == (0.29, 0.29, 0.29)
    assert plan.device == torch.device("cpu") and plan.dtype == torch.float32
    # two voxel sizes: two groups, the second on a grid twice as fine in Y and X
    assert [g.indices for g in plan.groups] == [(0,), (1,)]
    assert [g.grid_shape for g in plan.groups] == [(8, 32, 32), (8, 64, 64)]
    assert not plan.groups[0].resample and plan.groups[1].resample
    g = plan.groups[0]
    assert all(t % m == 0 for t, m in zip(plan.tile_shapes[0], g.multiple, strict=True))


def test_plan_predicts_any_iterable_of_frames(make_tiny_model, rng):
    b = make_tiny_model()
    data = rng.normal(size=(4, 8, 32, 32)).astype(np.float32)
    src = from_array(data, "TZYX", physical_sizes=VOX)
    plan = plan_prediction(src, b, tiling=TilingConfig((8, 32, 32), precision="fp32"), device="cpu")
    events = list(plan.iter_frames([3, 1]))
    assert [e.frame for e in events if isinstance(e, FrameStarted)] == [3, 1]
    done = [e for e in events if isinstance(e, FrameDone)]
    assert [e.n_frames for e in done] == [2, 2]
    again = drain(plan.predict_volume(data[1], frame=1))["dna"]
    np.testing.assert_array_equal(done[1].arrays["dna"], again)
    with pytest.raises(LabelFreeError, match="time point 4 does not exist"):
        next(plan.iter_frames([0, 4]))  # checked before any work


def test_networks_are_fetched_once_per_plan_not_per_frame(make_tiny_model, rng, monkeypatch):
    import napari_labelfree.core.predict.volume as engine

    calls = []
    real = engine.inference_network
    monkeypatch.setattr(engine, "inference_network", lambda *a: calls.append(a) or real(*a))
    b = make_tiny_model()
    src = from_array(rng.normal(size=(3, 8, 16, 16)).astype(np.float32), "TZYX", None, VOX)
    drain(iter_predict(src, [b], tiling=TilingConfig((8, 16, 16)), device="cpu"))
    assert len(calls) == 1


def test_missing_voxel_size_is_assumed_and_marked(make_tiny_model, rng):
    b = make_tiny_model()
    src = from_array(rng.normal(size=(4, 16, 16)).astype(np.float32), "ZYX", None, (None, 0.2, 0.2))
    plan = plan_prediction(src, [b], device="cpu")
    assert plan.voxel_size == (0.29, 0.2, 0.2)
    assert plan.voxel_size_assumed == (True, False, False)
    assert plan.output_physical_sizes == (None, 0.2, 0.2)  # not recorded as if measured
    (notice,) = plan.notices
    assert notice.field == "voxel_size" and "assuming" in notice.text and "--" not in notice.text


@pytest.mark.parametrize(
    ("voxel_size", "message"),
    [
        ((float("nan"), 0.29, 0.29), "three positive numbers"),
        ((0.29, float("inf"), 0.29), "three positive numbers"),
        ((0.29, 0.29, 0.0), "three positive numbers"),
        ((100.0, 100.0, 100.0), "Z 345x, Y 345x, X 345x"),  # um taken for nm, say
        ((1e-9, 0.29, 0.29), "Z 3.45e-09x, Y 1x, X 1x"),
        ((0.29, 6.0, 0.29), "Y 20.7x"),  # one axis alone
        ((1.2, 1.2, 1.2), "70.9x the voxels"),  # 4.1x per axis
    ],
)
def test_absurd_voxel_sizes_are_refused(make_tiny_model, rng, voxel_size, message):
    b = make_tiny_model()
    src = from_array(rng.normal(size=(4, 16, 16)).astype(np.float32), "ZYX")
    with pytest.raises(LabelFreeError, match=message) as err:
        plan_prediction(src, [b], voxel_size=voxel_size, device="cpu")
    assert "voxel_size" in err.value.fields and "--" not in str(err.value)


def test_sane_resampling_is_accepted(make_tiny_model, rng):
    b = make_tiny_model()
    src = from_array(rng.normal(size=(4, 16, 16)).astype(np.float32), "ZYX")
    for vox in [(1.16, 1.16, 1.16), (0.29, 0.065, 0.065), (0.29, 5.8, 0.29)]:  # 64x, 1/20
        plan = plan_prediction(src, [b], voxel_size=vox, device="cpu")
        assert plan.voxel_size == vox


def test_force_goes_ahead_with_a_large_resampling(make_tiny_model, rng):
    b = make_tiny_model()
    src = from_array(rng.normal(size=(4, 8, 8)).astype(np.float32), "ZYX", None, (1.45,) * 3)
    with pytest.raises(LabelFreeError, match="confirm") as err:
        plan_prediction(src, [b], device="cpu")
    assert set(err.value.fields) == {"voxel_size", "force"}
    plan = plan_prediction(src, [b], device="cpu", force=True)
    assert plan.groups[0].grid_shape == (20, 40, 40)  # 5x per axis


def test_resampling_beyond_the_machines_memory_is_refused(make_tiny_model, rng, monkeypatch):
    import napari_labelfree.core.predict.plan as predict_mod

    monkeypatch.setattr(predict_mod, "physical_memory", lambda: 2**16)  # a 64 KiB machine
    b = make_tiny_model()
    src = from_array(rng.normal(size=(16, 64, 64)).astype(np.float32), "ZYX", None, VOX)
    with pytest.raises(LabelFreeError, match="more than this machine's"):
        plan_prediction(src, [b], device="cpu")


def test_complex_input_is_refused(make_tiny_model):
    src = from_array(np.ones((4, 16, 16), np.complex64), "ZYX", None, VOX)
    with pytest.raises(LabelFreeError, match="complex"):
        plan_prediction(src, [make_tiny_model()], device="cpu")


def test_nan_in_a_prediction_is_an_error(make_tiny_model, rng):
    from napari_labelfree.core.bundle import save_bundle
    from napari_labelfree.core.weights import load_network

    b = make_tiny_model()
    state = {k: v.clone() for k, v in load_network(b).state_dict().items()}
    state["head.bias"].fill_(float("nan"))
    broken = save_bundle(b.path.with_name("broken"), b.spec, state)
    vol = rng.normal(size=(8, 16, 16)).astype(np.float32)
    with pytest.raises(LabelFreeError, match="NaN or infinite"):
        drain(
            iter_predict_volume(vol, [open_bundle(broken)], VOX, TilingConfig((8, 16, 16)), "cpu")
        )
