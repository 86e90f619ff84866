import numpy as np
import pytest
import torch

from napari_labelfree.core.config import TilingConfig
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import FrameDone, FrameStarted, Notice, TileDone, drain
from napari_labelfree.core.io import from_array
from napari_labelfree.core.predict import iter_predict, iter_predict_volume, network_on_device
from napari_labelfree.core.preprocess import zscore
from napari_labelfree.core.unet import randomize_batchnorm

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
    import napari_labelfree.core.tiling as tiling

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
    assert isinstance(first, TileDone) and first.total == 16
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
    import napari_labelfree.core.predict_volume as predict_mod

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
    from napari_labelfree.core.predict import output_names

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
