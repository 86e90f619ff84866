"""Inference rewrites (core.optimize) and reduced-precision prediction keep the network's output."""

import numpy as np
import pytest
import torch

from napari_labelfree.core import device as device_module
from napari_labelfree.core import optimize as optimize_module
from napari_labelfree.core.config import Architecture, TilingConfig
from napari_labelfree.core.device import compute_dtype, cpu_has_native_bf16, resolve_precision
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.optimize import (
    InferenceUNet,
    fold_batchnorm,
    fold_conv_bn,
    optimize_for_inference,
)
from napari_labelfree.core.predict.run import iter_predict_volume
from napari_labelfree.core.predict.tiling import fit_tile_shape, tile_starts
from napari_labelfree.core.predict.volume import make_predictor
from napari_labelfree.core.preprocess import zscore
from napari_labelfree.core.unet import UNet3D, randomize_batchnorm
from napari_labelfree.core.weights import inference_network, network_on_device

VOX = (0.29, 0.29, 0.29)


def _net(depth: int = 3, width: int = 8, seed: int = 0) -> UNet3D:
    torch.manual_seed(seed)
    return randomize_batchnorm(UNet3D(Architecture(depth=depth, width=width)), seed)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _pearson(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("transposed", [False, True])
def test_fold_conv_bn_equals_conv_then_bn(transposed):
    torch.manual_seed(1)
    conv = (torch.nn.ConvTranspose3d if transposed else torch.nn.Conv3d)(6, 5, 2, stride=2)
    bn = randomize_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm3d(5)))[0]
    x = torch.randn(2, 6, 4, 6, 8)
    w, b = fold_conv_bn(conv, bn)
    op = torch.nn.functional.conv_transpose3d if transposed else torch.nn.functional.conv3d
    with torch.no_grad():
        assert _rel(op(x, w, b, stride=2), bn(conv(x))) < 1e-5


def test_folded_network_equals_unfolded():
    net = _net()
    x = torch.randn(2, 1, 16, 24, 32)
    with torch.no_grad():
        ref = net(x)
        folded = fold_batchnorm(net)
        assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
        assert any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())  # untouched
        assert _rel(folded(x), ref) < 1e-4


@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_twin_equals_the_network(channels_last):
    net = _net(depth=3, width=8)
    x = torch.randn(1, 1, 16, 32, 24)
    with torch.inference_mode():
        twin = InferenceUNet(net, channels_last=channels_last)
        assert _rel(twin(x), net(x)) < 1e-4


def test_paper_network_twin_equals_the_network():
    # the depth-4 width-32 paper network, on the smallest volume it accepts at every level
    net = _net(depth=4, width=32)
    x = torch.randn(1, 1, 16, 32, 32)
    with torch.inference_mode():
        assert _rel(optimize_for_inference(net, "cpu")(x), net(x)) < 1e-4


@pytest.fixture(params=["onednn", "aten"])
def bf16_conv_path(request, monkeypatch):
    """Run bf16 convolutions through oneDNN (AVX-512 CPUs) or ATen (AVX2-only CPUs), on any CPU.

    The oneDNN branch is exercised through a stand-in for ``torch.mkldnn_convolution`` that
    records the call and computes with ATen, so it runs on CPUs where oneDNN refuses bf16; the
    ATen branch gets a stand-in that raises as oneDNN does on an AVX2-only CPU.
    """
    calls = []

    def fake_mkldnn(x, w, b, padding, stride, dilation, groups):
        if x.dtype == torch.bfloat16 and request.param == "aten":
            raise RuntimeError("mkldnn_convolution: bf16 path needs the cpu support avx512bw")
        calls.append(x.dtype)
        return torch.nn.functional.conv3d(x, w, b, stride=stride, padding=padding)

    monkeypatch.setattr(optimize_module, "cpu_runs_bf16", lambda: request.param == "onednn")
    monkeypatch.setattr(optimize_module.torch, "mkldnn_convolution", fake_mkldnn)
    return request.param, calls


@pytest.mark.parametrize("mode", ["cast", "autocast"])
def test_bf16_path_matches_fp32(mode, bf16_conv_path):
    # what the GPU path does (bf16), run on the CPU: close to fp32 in Pearson r, on every CPU
    path, calls = bf16_conv_path
    net = _net(depth=3, width=16)
    x = torch.randn(1, 1, 16, 48, 48)
    with torch.inference_mode():
        ref = net(x)
        twin = optimize_for_inference(net, "cpu")
        if mode == "cast":
            out = make_predictor([twin.to(torch.bfloat16)], torch.device("cpu"), torch.bfloat16)(x)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = twin(x).float()
    assert out.dtype == torch.float32
    assert _pearson(out, ref) > 0.999
    if mode == "cast":
        # oneDNN takes bf16 only where the CPU runs it; ATen takes it elsewhere
        assert (torch.bfloat16 in calls) == (path == "onednn")


def test_hooks_on_the_network_see_what_prediction_runs(make_tiny_model, rng):
    b = make_tiny_model()
    seen = []
    net = network_on_device(b, torch.device("cpu"))
    handle = net.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].shape))
    try:
        drain(
            iter_predict_volume(
                rng.normal(size=(8, 32, 32)).astype(np.float32),
                [b],
                VOX,
                TilingConfig(tile_shape=(16, 32, 32)),
                "cpu",
            )
        )
    finally:
        handle.remove()
    assert seen


def test_the_twin_is_rebuilt_when_the_weights_change(make_tiny_model):
    b = make_tiny_model()
    cpu = torch.device("cpu")
    first = inference_network(b, cpu)
    assert inference_network(b, cpu) is first  # cached
    randomize_batchnorm(network_on_device(b, cpu), seed=3)
    assert inference_network(b, cpu) is not first


def test_prediction_in_bf16_is_close_and_in_fp32_exact(
    make_tiny_model, rng, bf16_conv_path, monkeypatch
):
    # bf16 granted (as on a CPU that runs it), through either convolution path
    monkeypatch.setattr(device_module, "cpu_runs_bf16", lambda: True)
    b = make_tiny_model(depth=2, width=8)
    net = randomize_batchnorm(network_on_device(b, torch.device("cpu")))
    vol = rng.normal(size=(16, 64, 48)).astype(np.float32)
    with torch.no_grad():
        whole = net(torch.from_numpy(zscore(vol))[None, None])[0, 0].numpy()
    tile = (32, 64, 64)
    fp32 = drain(iter_predict_volume(vol, [b], VOX, TilingConfig(tile, precision="fp32"), "cpu"))
    bf16 = drain(iter_predict_volume(vol, [b], VOX, TilingConfig(tile, precision="bf16"), "cpu"))
    assert np.abs(fp32["dna"] - whole).max() / np.abs(whole).max() < 1e-4
    assert _pearson(bf16["dna"], whole) > 0.999
    assert not np.array_equal(bf16["dna"], fp32["dna"])  # it really computed in bf16


def test_bf16_on_a_cpu_without_it_falls_back_to_fp32(make_tiny_model, rng, monkeypatch):
    # an AVX2-only CPU: oneDNN would raise; the request becomes fp32 (exact), never an error
    monkeypatch.setattr(device_module, "cpu_runs_bf16", lambda: False)
    monkeypatch.setattr(optimize_module, "cpu_runs_bf16", lambda: False)
    b = make_tiny_model(depth=2, width=8)
    vol = rng.normal(size=(16, 32, 32)).astype(np.float32)
    tiling = {p: TilingConfig((16, 32, 32), precision=p) for p in ("fp32", "bf16")}
    fp32 = drain(iter_predict_volume(vol, [b], VOX, tiling["fp32"], "cpu"))
    bf16 = drain(iter_predict_volume(vol, [b], VOX, tiling["bf16"], "cpu"))
    np.testing.assert_array_equal(bf16["dna"], fp32["dna"])


@pytest.mark.parametrize(
    ("runs_bf16", "native_bf16", "runs_fp16"),
    [(False, False, False), (True, False, False), (True, True, True)],
    ids=["avx2-only", "avx512", "avx512-bf16"],
)
def test_precision_choices_on_each_kind_of_cpu(monkeypatch, runs_bf16, native_bf16, runs_fp16):
    monkeypatch.setattr(device_module, "cpu_runs_bf16", lambda: runs_bf16)
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(device_module, "cpu_runs_fp16", lambda: runs_fp16)
    cpu = torch.device("cpu")
    # auto takes bf16 only where the CPU computes it natively (faster); elsewhere fp32
    assert resolve_precision(cpu, "auto") == (torch.bfloat16 if native_bf16 else torch.float32, "")
    assert resolve_precision(cpu, "fp32") == (torch.float32, "")
    dtype, notice = resolve_precision(cpu, "bf16")
    assert dtype == (torch.bfloat16 if runs_bf16 else torch.float32)
    assert ("fp32" in notice) == (not runs_bf16)
    dtype, notice = resolve_precision(cpu, "fp16")
    assert dtype == (torch.float16 if runs_fp16 else torch.float32)
    assert compute_dtype(cpu, "fp32") == torch.float32
    with pytest.raises(LabelFreeError, match="precision must be"):
        resolve_precision(cpu, "fp8")


@pytest.mark.parametrize(
    ("runs", "flags", "amx", "native"),
    [
        (False, {"avx2"}, False, False),  # AVX2-only: oneDNN cannot run bf16
        (True, {"avx512bw"}, False, False),  # AVX-512 without bf16 dot products: emulated
        (True, {"avx512_bf16"}, False, True),  # AVX512-BF16 (AMD EPYC Genoa, Intel Cooper Lake)
        (True, set(), True, True),  # no /proc/cpuinfo (macOS, Windows): AMX asked through torch
        (True, set(), False, False),
    ],
)
def test_native_bf16_decision(monkeypatch, runs, flags, amx, native):
    monkeypatch.setattr(device_module, "cpu_runs_bf16", lambda: runs)
    monkeypatch.setattr(device_module, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(device_module, "_cpu_has_amx", lambda: amx)
    # the function itself (the suite's fixture stands in for it elsewhere), uncached
    assert cpu_has_native_bf16.__wrapped__() is native


def test_cpu_capability_checks_answer_on_this_machine():
    # PyTorch's own CPU check answers everywhere (no /proc/cpuinfo needed), as booleans
    assert device_module.cpu_runs_bf16.__wrapped__() in (True, False)
    assert device_module.cpu_runs_fp16.__wrapped__() in (True, False)


def test_fit_tile_shape_keeps_tiles_large_and_work_small():
    # 64x256x256 in one tile; 512 in two tiles overlapping by 32, not three
    assert fit_tile_shape((64, 256, 256), (64, 272, 272), 0.1, 16) == (64, 256, 256)
    assert fit_tile_shape((64, 512, 512), (64, 272, 272), 0.1, 16) == (64, 272, 272)
    assert len(tile_starts(512, 272, 0.1)) == 2
    # a 256 maximum over 512 voxels: three 192-voxel tiles rather than three of 256
    assert fit_tile_shape((64, 512, 512), (64, 256, 256), 0.1, 16)[1:] == (192, 192)
    # never larger than asked, always a multiple
    for shape in [(13, 70, 300), (100, 700, 900), (5, 5, 5)]:
        tile = fit_tile_shape(shape, (32, 128, 96), 0.25, 16)
        assert all(t <= m and t % 16 == 0 for t, m in zip(tile, (32, 128, 96), strict=True))
