"""The fixed-shape tile runner: compile and CUDA-graph paths, and their fallbacks to eager.

On the CPU, CUDA-graph capture is replaced by fakes (a working one, a failing one) and the
compile by torch.compile's "eager" backend (a real trace of the inference twin, no compiler)
or by a failing stand-in; each path must give the eager network's output.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_labelfree.core.config import Architecture
from napari_labelfree.core.optimize import optimize_for_inference
from napari_labelfree.core.predict import fast_tiles as ft
from napari_labelfree.core.predict.compile_cache import Acceleration
from napari_labelfree.core.unet import build_network, randomize_batchnorm

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def twin():
    torch.manual_seed(0)
    net = randomize_batchnorm(build_network(Architecture(depth=2, width=8)).eval(), 0)
    return optimize_for_inference(net, CPU)


def _tiles(*shapes):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(1, 1, *s, generator=g) for s in shapes]


def _eager(net, x):
    with torch.inference_mode():
        return net(x)


def _run(runner, x):
    with torch.inference_mode():
        return runner(x)


@pytest.fixture
def no_cache_files(monkeypatch):
    # the cache points inductor's folder at the test's: put the environment back afterwards
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "recorded")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    saved: list[bytes] = []
    # raising=False: torch before 2.7 has no artifact calls (the floor); they are stood in for
    monkeypatch.setattr(
        torch.compiler, "save_cache_artifacts", lambda: (b"artifacts", None), raising=False
    )
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", saved.append, raising=False)
    return saved


def test_nothing_to_do_on_the_cpu_returns_the_network(twin):
    assert ft.accelerated(twin, CPU, torch.float32, Acceleration()) is twin
    runner = ft.accelerated(twin, CPU, torch.float32, Acceleration(compile=True))
    assert isinstance(runner, ft.FixedShapeRunner)
    # cached with the network: a second prediction reuses what the first compiled
    assert ft.accelerated(twin, CPU, torch.float32, Acceleration(compile=True)) is runner


def test_compiled_forward_equals_eager_and_fills_the_cache(twin, tmp_path, no_cache_files):
    settings = Acceleration(compile=True, compile_backend="eager")
    runner = ft.FixedShapeRunner(twin, CPU, torch.float32, settings, cache_folder=tmp_path)
    for x in _tiles((16, 32, 32), (16, 32, 32), (8, 16, 32)):
        torch.testing.assert_close(_run(runner, x), _eager(twin, x), rtol=0, atol=1e-6)
    assert runner.use_compile and runner.take_notices() == []
    assert len(list(tmp_path.glob("*.bin"))) == 2  # one file per tile shape
    # a new process (a new runner) loads them instead of writing them again
    again = ft.FixedShapeRunner(twin, CPU, torch.float32, settings, cache_folder=tmp_path)
    _run(again, _tiles((16, 32, 32))[0])
    assert no_cache_files == [b"artifacts"]


def test_a_failing_compile_falls_back_to_eager_with_one_line(twin, tmp_path, monkeypatch):
    calls = []

    def broken(net, settings):
        def forward(x):
            calls.append(x.shape)
            raise RuntimeError("InductorError: no working C++ compiler found\nlong trace")

        return forward

    monkeypatch.setattr(ft, "compile_network", broken)
    settings = Acceleration(compile=True, compile_cache=False)
    runner = ft.FixedShapeRunner(twin, CPU, torch.float32, settings, cache_folder=tmp_path)
    for x in _tiles((16, 32, 32), (8, 16, 32)):
        assert torch.equal(_run(runner, x), _eager(twin, x))
    assert len(calls) == 1  # tried once, then eager for every shape
    notices = runner.take_notices()
    assert len(notices) == 1 and "\n" not in notices[0]
    assert "torch.compile failed" in notices[0] and "C++ compiler" in notices[0]


def test_out_of_memory_while_compiling_reaches_the_tile_shrinking(twin, monkeypatch):
    def oom(net, settings):
        def forward(x):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return forward

    monkeypatch.setattr(ft, "compile_network", oom)
    runner = ft.FixedShapeRunner(twin, CPU, torch.float32, Acceleration(compile=True))
    with pytest.raises(RuntimeError, match="out of memory"):
        _run(runner, _tiles((16, 32, 32))[0])


def test_graph_capture_per_tile_shape_equals_eager(twin, monkeypatch):
    captured = []

    def fake_capture(fn, example, warmup=2):
        # what capture_graph does, without CUDA: a static input buffer, a copy of the output
        captured.append(tuple(example.shape))
        static_in = example.clone()

        def replay(x):
            static_in.copy_(x)
            return fn(static_in).clone()

        return replay

    monkeypatch.setattr(ft, "capture_graph", fake_capture)
    runner = ft.FixedShapeRunner(twin, CPU, torch.float32, Acceleration(cuda_graphs=True))
    assert not runner.use_graphs  # CUDA graphs are for CUDA devices only
    runner.use_graphs = True  # as on a GPU
    for x in _tiles((16, 32, 32), (16, 32, 32), (8, 16, 32), (16, 32, 32)):
        assert torch.equal(_run(runner, x), _eager(twin, x))
    assert captured == [(1, 1, 16, 32, 32), (1, 1, 8, 16, 32)]
    assert runner.take_notices() == []


def test_graph_capture_failing_falls_back_with_one_line(twin, monkeypatch):
    tries = []

    def unavailable(fn, example, warmup=2):
        tries.append(1)
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    monkeypatch.setattr(ft, "capture_graph", unavailable)
    runner = ft.FixedShapeRunner(twin, CPU, torch.float32, Acceleration(cuda_graphs=True))
    runner.use_graphs = True
    for x in _tiles((16, 32, 32), (8, 16, 32)):
        assert torch.equal(_run(runner, x), _eager(twin, x))
    assert tries == [1]
    notices = runner.take_notices()
    assert len(notices) == 1 and "CUDA graph capture failed" in notices[0]


def test_prediction_says_a_compile_fallback_once_and_predicts_the_same(
    make_tiny_model, rng, monkeypatch
):
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import Notice
    from napari_labelfree.core.predict.run import iter_predict_volume

    def broken(net, settings):
        def forward(x):
            raise RuntimeError("TritonMissing: no Triton for this card")

        return forward

    bundle = make_tiny_model()
    volume = rng.normal(size=(16, 40, 48)).astype(np.float32)
    tiling = TilingConfig(tile_shape=(16, 32, 32))

    def run():
        gen = iter_predict_volume(volume, [bundle], (0.29, 0.29, 0.29), tiling, "cpu")
        notices = []
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value["dna"], notices
            if isinstance(event, Notice):
                notices.append(event.text)

    monkeypatch.delenv("LABELFREE_COMPILE", raising=False)
    plain, none = run()
    monkeypatch.setattr(ft, "compile_network", broken)
    monkeypatch.setenv("LABELFREE_COMPILE", "1")
    monkeypatch.setenv("LABELFREE_COMPILE_CACHE", "0")
    fallback, notices = run()
    assert np.array_equal(fallback, plain)
    assert [n for n in notices if "torch.compile failed" in n] == [notices[-1]]
    assert "TritonMissing" in notices[-1] and not [n for n in none if "compile" in n]


def test_the_cuda_calls_used_exist_in_this_torch():
    # the CUDA paths cannot run here; at least every name they call must exist in torch's API
    for owner, names in [
        (torch.cuda, ["Stream", "Event", "CUDAGraph", "graph", "stream", "current_stream"]),
        (torch.cuda.Stream, ["wait_stream", "wait_event"]),
        (torch.cuda.Event, ["record", "synchronize"]),
        (torch.cuda.CUDAGraph, ["replay"]),
        (torch.Tensor, ["record_stream", "pin_memory"]),
        # save/load_cache_artifacts (torch 2.7+) are looked up first: compile_cache says when absent
        (torch.compiler, ["is_compiling"]),
        (torch.nn.Module, ["compile"]),
    ]:
        missing = [n for n in names if not hasattr(owner, n)]
        assert not missing, (owner, missing)
