"""Tiles cut on the host and sent to a GPU double-buffered: tile n+1 is prepared while n computes.

For a volume that stays on the host (a frame predicted block by block, a caller's numpy array),
each tile is cut, copied into one of two page-locked buffers and uploaded on a side CUDA stream;
the compute stream waits for that upload on the device (an event), never the host. The host cuts
tile n+1 after handing tile n over, that is while the GPU computes n, and its upload overlaps that
compute. A buffer is refilled only after its previous upload has finished (its event).

Whole frames cross the same way, in Z-slabs (:func:`upload_slabs`, :func:`download_slabs`): on the
way up, slab k+1 is converted (uint16 to float32, say) into one page-locked buffer while slab k
crosses from the other; on the way down, slab k crosses while slab k-1 is copied out of its
buffer into the result. A frame then costs about one host pass instead of a staging copy, a
transfer and a second copy one after the other.

The GPU path is opt-in (``LABELFREE_GPU_PIPELINE=1``) until a GPU run has checked it.
On the CPU, or for any other device, tiles are cut and moved one after the other: the plain path,
and the one the double-buffered path must equal exactly (tests/core/test_pipeline.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch


class Staging(Protocol):
    """How host buffers reach the device: page-locked memory, a side stream, events."""

    def pinned(self, like: torch.Tensor) -> torch.Tensor: ...

    def upload(self, host: torch.Tensor) -> tuple[torch.Tensor, Any]: ...

    def hand_over(self, tensor: torch.Tensor, ready: Any) -> None: ...

    def copy_in(self, dst: torch.Tensor, host: torch.Tensor) -> Any: ...

    def copy_out(self, host: torch.Tensor, src: torch.Tensor) -> Any: ...

    def after_compute(self) -> None: ...

    def wait(self, ready: Any) -> None: ...


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

    def _copy(self, dst: torch.Tensor, src: torch.Tensor) -> torch.cuda.Event:
        with torch.cuda.stream(self.stream):
            dst.copy_(src, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        return done

    def copy_in(self, dst: torch.Tensor, host: torch.Tensor) -> torch.cuda.Event:
        return self._copy(dst, host)

    def copy_out(self, host: torch.Tensor, src: torch.Tensor) -> torch.cuda.Event:
        return self._copy(host, src)

    def after_compute(self) -> None:
        self.stream.wait_stream(torch.cuda.current_stream(self.device))

    def wait(self, ready: torch.cuda.Event) -> None:
        torch.cuda.current_stream(self.device).wait_event(ready)


# Opt-in until a GPU run of benchmarks/gpu_report.py has checked it against the plain path: the
# overlap is only exercised on the CPU with an emulated stream so far, and a race on a real stream
# would give silently wrong predictions.
PIPELINE_ENV = "LABELFREE_GPU_PIPELINE"


def staging_for(device: torch.device) -> Staging | None:
    """The double-buffering staging for ``device`` (a GPU, with ``LABELFREE_GPU_PIPELINE=1``),
    or None for the plain path."""
    if device.type != "cuda" or os.environ.get(PIPELINE_ENV, "0") != "1":
        return None
    return CudaStaging(device)


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


# 16 MiB: large enough for full bus speed per copy, small enough that a 64x1024x1024 frame
# crosses in 16 slabs (float32) and the host's part overlaps all but one of them
SLAB_BYTES = 16 << 20


def slabs(shape: tuple[int, ...], itemsize: int, slab_bytes: int = SLAB_BYTES) -> list[slice]:
    """Z ranges of about ``slab_bytes`` each (at least one plane) covering axis 0 of ``shape``."""
    plane = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    n = max(1, slab_bytes // plane)
    return [slice(z, min(z + n, shape[0])) for z in range(0, shape[0], n)]


def upload_slabs(
    volume: np.ndarray,
    dtype: torch.dtype,
    device: torch.device,
    staging: Staging,
    slab_bytes: int = SLAB_BYTES,
) -> torch.Tensor:
    """``volume`` as a new ``dtype`` tensor on ``device``, crossing in Z-slabs (double-buffered).

    Each slab is converted to ``dtype`` while it is copied into a page-locked buffer (no
    full-size converted copy on the host); the compute stream waits for the last slab on the
    device. The result never shares memory with ``volume``.
    """
    out = torch.empty(volume.shape, dtype=dtype, device=device)
    # ``out`` comes from the compute stream's memory, which work still queued there may be
    # releasing: the side stream writes into it only after that work
    staging.after_compute()
    parts = slabs(volume.shape, out.element_size(), slab_bytes)
    buffers: list[torch.Tensor | None] = [None, None]
    copies: list[Any] = [None, None]
    for k, z in enumerate(parts):
        i = k % 2
        if copies[i] is not None:
            copies[i].synchronize()  # this buffer's last slab has crossed
        if buffers[i] is None:
            first = volume[parts[0]]
            buffers[i] = staging.pinned(torch.empty(first.shape, dtype=dtype))
        buf = buffers[i][: z.stop - z.start]
        buf.numpy()[...] = volume[z]  # converted on the way into page-locked memory
        copies[i] = staging.copy_in(out[z], buf)
    if parts:
        # copies on one stream run in order: the last slab's event covers every slab
        staging.wait(copies[(len(parts) - 1) % 2])
    return out


def download_slabs(t: torch.Tensor, staging: Staging, slab_bytes: int = SLAB_BYTES) -> np.ndarray:
    """A device tensor as a new numpy array, crossing in Z-slabs: slab k crosses while slab k-1
    is copied out of its page-locked buffer into the result."""
    out = np.empty(tuple(t.shape), dtype=torch.empty(0, dtype=t.dtype).numpy().dtype)
    parts = slabs(tuple(t.shape), t.element_size(), slab_bytes)
    staging.after_compute()  # the copies start when the tensor is computed
    buffers: list[torch.Tensor | None] = [None, None]
    pending: tuple[Any, torch.Tensor, slice] | None = None
    for k, z in enumerate(parts):
        i = k % 2
        if buffers[i] is None:
            buffers[i] = staging.pinned(t[parts[0]])
        buf = buffers[i][: z.stop - z.start]
        done = staging.copy_out(buf, t[z])
        if pending is not None:  # slab k-1 leaves its buffer while slab k crosses
            p_done, p_buf, p_z = pending
            p_done.synchronize()
            out[p_z] = p_buf.numpy()
        pending = (done, buf, z)
    if pending is not None:
        p_done, p_buf, p_z = pending
        p_done.synchronize()
        out[p_z] = p_buf.numpy()
    return out
