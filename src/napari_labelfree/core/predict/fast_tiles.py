"""The network on tiles of fixed shapes, as fast as the device allows, else exactly as before.

A prediction plan cuts every frame into tiles of a few fixed shapes, which is what three
accelerations need, each tried once per shape and dropped with one line when it fails:

* **cuDNN autotuning** (CUDA): ``cudnn.benchmark`` picks the fastest kernels per input shape, paid
  once per tile shape;
* **torch.compile** (opt-in, :class:`~.compile_cache.Acceleration`): the inference twin compiled
  per tile shape (``dynamic=False``), its artifacts loaded from and saved to the per-machine
  :class:`~.compile_cache.CompileCache`; a compile that fails (no compiler, no Triton, an
  unsupported op) falls back to eager for good;
* **CUDA graphs** (opt-in, CUDA only): the whole forward pass of one tile shape captured once and
  replayed, so 60-odd kernel launches per tile cost one; a capture that fails falls back to the
  compiled or eager forward.

An out-of-memory error is never swallowed: it reaches the volume engine, which shrinks the tile.
With nothing to do (the CPU, every option off) :func:`accelerated` returns the network itself.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..device import is_out_of_memory
from .compile_cache import Acceleration, CompileCache, cache_key, device_name, model_hash

Forward = Callable[[torch.Tensor], torch.Tensor]
ShapeKey = tuple[tuple[int, ...], torch.dtype]


def capture_graph(fn: Forward, example: torch.Tensor, warmup: int = 2) -> Forward:
    """``fn`` on ``example``'s shape captured as a CUDA graph; returns a replaying forward.

    Warm-up runs on a side stream (as PyTorch's CUDA-graph guide asks: autotuning and lazy
    initialization must not be captured). The replay copies its input into the captured buffer
    and returns a copy of the captured output, which the next replay overwrites.
    """
    dev = example.device
    static_in = example.clone()
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn(static_in)
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn(static_in)

    def replay(x: torch.Tensor) -> torch.Tensor:
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    return replay


def compile_network(net: nn.Module, settings: Acceleration) -> Forward:
    """``torch.compile`` of ``net`` for static shapes (recompiled per new tile shape).

    ``fullgraph``: the inference twin traces as one graph; a graph break would split the fusion
    that compiling is for, so it fails loudly and the runner falls back to eager.
    """
    if settings.compile_backend != "inductor":
        return torch.compile(net, backend=settings.compile_backend, fullgraph=True, dynamic=False)
    return torch.compile(net, mode=settings.compile_mode, fullgraph=True, dynamic=False)


class FixedShapeRunner:
    """One inference network run per fixed tile shape with the accelerations of ``settings``.

    Lines for the user (a fallback, an ignored cache) collect in :attr:`notices`; the volume
    engine yields them as :class:`~napari_labelfree.core.events.Notice` s
    (:meth:`take_notices`).
    """

    def __init__(
        self,
        net: nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        settings: Acceleration,
        cache_folder: Any = None,
    ) -> None:
        self.net = net
        self.device = torch.device(device)
        self.dtype = dtype
        self.settings = settings
        self.cache_folder = cache_folder
        self.use_compile = settings.compile
        self.use_graphs = settings.cuda_graphs and self.device.type == "cuda"
        self._compiled: Forward | None = None
        self._model_hash: str | None = None
        self._forwards: dict[ShapeKey, Forward] = {}
        self.notices: list[str] = []

    def take_notices(self) -> list[str]:
        out, self.notices = self.notices, []
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype)
        forward = self._forwards.get(key)
        if forward is not None:
            return forward(x)
        if self.device.type == "cuda":
            # every tile of a shape alike: cuDNN's autotuning is paid once per shape, then pays
            torch.backends.cudnn.benchmark = self.settings.cudnn_benchmark
        out, forward = self._first_run(x)
        self._forwards[key] = forward
        return out

    def _first_run(self, x: torch.Tensor) -> tuple[torch.Tensor, Forward]:
        """The output for the first tile of a shape, and the forward to use for the others."""
        forward: Forward = self.net
        out: torch.Tensor | None = None
        if self.use_compile:
            out, forward = self._compiled_first_run(x)
        if self.use_graphs:
            try:
                forward = capture_graph(forward, x)
            except Exception as e:  # noqa: BLE001 - any capture failure: run without the graph
                self.use_graphs = False
                self.notices.append(
                    f"CUDA graph capture failed for tiles of {tuple(x.shape[2:])} voxels "
                    f"({_one_line(e)}); running without CUDA graphs"
                )
            else:
                out = forward(x)
        return (forward(x) if out is None else out), forward

    def _compiled_first_run(self, x: torch.Tensor) -> tuple[torch.Tensor | None, Forward]:
        cache = None
        try:
            if self.settings.compile_cache:
                if self._model_hash is None:
                    self._model_hash = model_hash(self.net)
                key = cache_key(
                    torch.__version__,
                    device_name(self.device),
                    self._model_hash,
                    tuple(x.shape),
                    x.dtype,
                )
                cache = CompileCache(key, self.cache_folder, say=self.notices.append)
                cache.load()
            if self._compiled is None:
                self._compiled = compile_network(self.net, self.settings)
            out = self._compiled(x)
        except Exception as e:  # noqa: BLE001 - a compile that fails costs its time, not the run
            if is_out_of_memory(e):
                raise
            self.use_compile = False
            self.notices.append(f"torch.compile failed ({_one_line(e)}); running eager PyTorch")
            return None, self.net
        if cache is not None and not cache.loaded:
            cache.save()
        return out, self._compiled


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


_RUNNERS: weakref.WeakKeyDictionary[nn.Module, FixedShapeRunner] = weakref.WeakKeyDictionary()


def wants_runner(device: torch.device, settings: Acceleration) -> bool:
    """Whether anything beyond the plain network applies (CUDA autotuning, an opt-in option)."""
    return device.type == "cuda" or settings.compile or settings.cuda_graphs


def accelerated(
    net: nn.Module,
    device: torch.device,
    dtype: torch.dtype,
    settings: Acceleration | None = None,
) -> nn.Module | FixedShapeRunner:
    """The forward to run ``net`` with: a cached :class:`FixedShapeRunner`, or ``net`` itself.

    The runner lives as long as the network (the weights cache's inference twin), so a second
    prediction with the same model reuses what the first one tuned, compiled and captured.
    """
    settings = settings or Acceleration.from_env()
    device = torch.device(device)
    if not wants_runner(device, settings):
        return net
    runner = _RUNNERS.get(net)
    if runner is None or runner.settings != settings or runner.dtype != dtype:
        runner = _RUNNERS[net] = FixedShapeRunner(net, device, dtype, settings)
    return runner
