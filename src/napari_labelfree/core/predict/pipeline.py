"""Tiles cut on the host and sent to a GPU double-buffered: tile n+1 is prepared while n computes.

For a volume that stays on the host (a frame predicted block by block, a caller's numpy array),
each tile is cut, copied into one of two page-locked buffers and uploaded on a side CUDA stream;
the compute stream waits for that upload on the device (an event), never the host. The host cuts
tile n+1 after handing tile n over, that is while the GPU computes n, and its upload overlaps that
compute. A buffer is refilled only after its previous upload has finished (its event).

On the CPU, or for any other device, tiles are cut and moved one after the other: the plain path,
and the one the double-buffered path must equal exactly (tests/core/test_pipeline.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch


class Staging(Protocol):
    """How host buffers reach the device: page-locked memory, a side stream, events."""

    def pinned(self, like: torch.Tensor) -> torch.Tensor: ...

    def upload(self, host: torch.Tensor) -> tuple[torch.Tensor, Any]: ...

    def hand_over(self, tensor: torch.Tensor, ready: Any) -> None: ...


class CudaStaging:
    """Uploads on a side stream of ``device``; the current stream waits on each upload's event."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def pinned(self, like: torch.Tensor) -> torch.Tensor:
        return torch.empty(like.shape, dtype=like.dtype, pin_memory=True)

    def upload(self, host: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event]:
        with torch.cuda.stream(self.stream):
            tensor = host.to(self.device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return tensor, ready

    def hand_over(self, tensor: torch.Tensor, ready: torch.cuda.Event) -> None:
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(ready)  # a wait on the device: the host goes on
        # allocated on the side stream, used on the compute stream: the allocator must know
        tensor.record_stream(compute)


def staging_for(device: torch.device) -> Staging | None:
    """The double-buffering staging for ``device``, or None for the plain path."""
    return CudaStaging(device) if device.type == "cuda" else None


def iter_device_tiles(
    cut: Callable[[int], np.ndarray],
    n: int,
    device: torch.device,
    staging: Staging | None = None,
) -> Iterator[torch.Tensor]:
    """``cut(0)``, ..., ``cut(n - 1)`` (host arrays) as tensors on ``device``, in order.

    With ``staging`` (a GPU) item n+1 is cut and its upload started when item n has been handed
    over, so host work and upload overlap the compute of item n; without it, the plain path.
    A tensor handed over may share memory with a staging buffer until the next item is asked
    for: use it before asking (as a tile loop does).
    """
    if staging is None:
        for i in range(n):
            yield torch.from_numpy(np.ascontiguousarray(cut(i))).to(device)
        return
    buffers: list[torch.Tensor | None] = [None, None]
    uploads: list[Any] = [None, None]

    def start(i: int) -> tuple[torch.Tensor, Any]:
        src = torch.from_numpy(np.ascontiguousarray(cut(i)))
        k = i % 2
        if uploads[k] is not None:
            uploads[k].synchronize()  # this buffer's last upload has left it
        buf = buffers[k]
        if buf is None or buf.shape != src.shape or buf.dtype != src.dtype:
            buf = buffers[k] = staging.pinned(src)
        buf.copy_(src)
        tensor, ready = staging.upload(buf)
        uploads[k] = ready
        return tensor, ready

    pending = start(0) if n else None
    for i in range(n):
        tensor, ready = pending
        staging.hand_over(tensor, ready)
        yield tensor
        del tensor
        if i + 1 < n:
            pending = start(i + 1)
