"""Training that fits the machine: defaults per device and a measured time per iteration.

The paper's network and patches (depth 4, width 32, batch 24, 32x64x64) take about a minute and a
half per iteration on a laptop CPU; a CPU gets a smaller network and patch that run a few
iterations per second. Before a run starts, :func:`seconds_per_iteration` measures a couple of
training steps of the chosen network on random data, so the front end can say how long it will
take. Imports torch only when measuring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .config import ModelSpec
from .train.config import TrainConfig


@dataclass(frozen=True)
class TrainDefaults:
    """Network and patch sizes suggested for a device."""

    depth: int
    width: int
    batch_size: int
    patch_shape: tuple[int, int, int]


#: The paper's sizes, for a GPU.
GPU_DEFAULTS = TrainDefaults(depth=4, width=32, batch_size=24, patch_shape=(32, 64, 64))
#: Sizes a laptop CPU trains at a few iterations per second (benchmarks/train_speed.py).
CPU_DEFAULTS = TrainDefaults(depth=3, width=16, batch_size=4, patch_shape=(16, 64, 64))


def format_duration(seconds: float) -> str:
    """3 -> '3 s', 200 -> '3 min', 8000 -> '2.2 h'."""
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def defaults_for(device: str) -> TrainDefaults:
    """The defaults for a device name ("cpu", "cuda:0", "mps"); resolve "auto" first (anything
    but a CPU name gets the GPU's sizes)."""
    return CPU_DEFAULTS if device.startswith("cpu") else GPU_DEFAULTS


def seconds_per_iteration(
    spec: ModelSpec, config: TrainConfig, device: str = "auto", steps: int = 3
) -> float:
    """Measured seconds per training step of ``spec``'s network at ``config``'s batch and patch.

    One warm-up step (allocation, kernel choice) is not counted; of the others the median, so
    one step slowed by something else on the machine (a window opening) does not set the
    estimate. Random data: the time does not depend on the values. The Train widget calls it in
    a worker thread, as it trains (torch's thread settings are per thread).
    """
    import torch

    from .device import resolve_device
    from .train.engine import Engine

    dev = resolve_device(device)
    engine = Engine.build(spec, config, dev)
    shape = (config.batch_size, 1, *config.patch_shape)
    x = engine.layout(torch.randn(shape, device=dev))
    y = torch.randn(shape, device=dev)
    engine.step(x, y)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    times = []
    for _ in range(max(1, steps)):
        start = time.perf_counter()
        engine.step(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - start)
    return float(sorted(times)[len(times) // 2])
