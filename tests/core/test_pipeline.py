"""The double-buffered tile upload gives exactly what the plain, one-after-the-other path gives.

Without a GPU the CUDA staging is replaced by one on the CPU with the same contract: a "pinned"
buffer per slot, an upload that *aliases* that buffer (``.to("cpu")`` returns the tensor itself),
events that record order. Aliasing makes a refill of a buffer still in use visible in the output,
so the buffer rotation is checked for real; the tile loop checks the whole sliding window.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_labelfree.core.config import Architecture
from napari_labelfree.core.optimize import optimize_for_inference
from napari_labelfree.core.predict import pipeline, tiling
from napari_labelfree.core.unet import build_network, randomize_batchnorm


class FakeEvent:
    def __init__(self, log, i):
        self.log, self.i = log, i

    def synchronize(self):
        self.log.append(("wait", self.i))


class CpuStaging:
    """CudaStaging's contract on the CPU; counts buffers and records the order of events."""

    def __init__(self):
        self.log: list = []
        self.buffers = 0
        self.uploads = 0

    def pinned(self, like):
        self.buffers += 1
        return torch.empty(like.shape, dtype=like.dtype)

    def upload(self, host):
        self.uploads += 1
        self.log.append(("upload", self.uploads))
        return host.to("cpu", non_blocking=True), FakeEvent(self.log, self.uploads)

    def hand_over(self, tensor, ready):
        self.log.append(("hand over", ready.i))


def test_tiles_arrive_in_order_from_two_reused_buffers(rng):
    volume = rng.normal(size=(7, 5, 6)).astype(np.float32)
    staging = CpuStaging()
    got = [
        t.clone()
        for t in pipeline.iter_device_tiles(lambda i: volume[i], 7, torch.device("cpu"), staging)
    ]
    plain = list(pipeline.iter_device_tiles(lambda i: volume[i], 7, torch.device("cpu")))
    for a, b, ref in zip(got, plain, volume, strict=True):
        assert torch.equal(a, b) and np.array_equal(a.numpy(), ref)
    assert staging.buffers == 2 and staging.uploads == 7
    # tile n+1 is uploaded only after tile n was handed over (cut while n computes), and a buffer
    # is refilled only after waiting for its previous upload
    assert staging.log[:4] == [("upload", 1), ("hand over", 1), ("upload", 2), ("hand over", 2)]
    assert staging.log[4:7] == [("wait", 1), ("upload", 3), ("hand over", 3)]


def test_a_consumer_reading_late_would_see_the_refill(rng):
    # the contract's other side: a handed-over tile may be overwritten two tiles later, so the
    # tile loop must use each tile before asking for the next (it does: see below)
    volume = rng.normal(size=(4, 3, 3)).astype(np.float32)
    kept = list(
        pipeline.iter_device_tiles(lambda i: volume[i], 4, torch.device("cpu"), CpuStaging())
    )
    assert np.array_equal(kept[0].numpy(), volume[2])  # the first slot, refilled by tile 2


@pytest.fixture(scope="module")
def tiny_twin():
    torch.manual_seed(0)
    net = randomize_batchnorm(build_network(Architecture(depth=2, width=8)).eval(), 0)
    return optimize_for_inference(net, "cpu")


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("which", ["identity", "tiny net"])
def test_sliding_window_double_buffered_equals_sequential(
    monkeypatch, rng, tiny_twin, which, batch_size
):
    volume = rng.normal(size=(20, 44, 52)).astype(np.float32)

    def identity(x):
        return x.clone()

    def net(x):
        with torch.inference_mode():
            return tiny_twin(x)

    predictor = identity if which == "identity" else net
    kwargs = dict(n_out=1, overlap=0.25, batch_size=batch_size, multiple=4)
    sequential = tiling.sliding_window_inference(volume, predictor, (8, 16, 24), **kwargs)
    staging = CpuStaging()
    monkeypatch.setattr(tiling, "staging_for", lambda device: staging)
    buffered = tiling.sliding_window_inference(volume, predictor, (8, 16, 24), **kwargs)
    assert staging.uploads > 2  # the double-buffered path ran
    assert torch.equal(buffered, sequential)
    if which == "identity":
        # blending weights sum to one up to float rounding
        np.testing.assert_allclose(buffered[0].numpy(), volume, rtol=0, atol=1e-5)


class DeferredStaging:
    """A side stream emulated on the CPU: copies run only when an event is waited for, in order.

    A buffer refilled before its copy has run, or read before its copy has run, gives a wrong
    result here, as it would on a GPU.
    """

    def __init__(self):
        self.queue: list = []  # (event, copy) in stream order
        self.buffers = 0

    def pinned(self, like):
        self.buffers += 1
        return torch.empty(like.shape, dtype=like.dtype)

    def _run_until(self, event):
        while self.queue:
            ev, copy = self.queue.pop(0)
            copy()
            ev.done = True
            if ev is event:
                return

    def _enqueue(self, copy):
        staging = self

        class Event:
            done = False

            def synchronize(self):
                if not self.done:
                    staging._run_until(self)

        ev = Event()
        self.queue.append((ev, copy))
        return ev

    def copy_in(self, dst, host):
        return self._enqueue(lambda: dst.copy_(host))

    def copy_out(self, host, src):
        return self._enqueue(lambda: host.copy_(src))

    def after_compute(self):
        pass

    def wait(self, ready):
        ready.synchronize()  # what the compute stream's wait makes true before it reads


@pytest.mark.parametrize("slab_bytes", [1, 3 * 40 * 36 * 4, 1 << 30])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_frames_cross_in_slabs_exactly(rng, slab_bytes, dtype):
    volume = (1000 * rng.random(size=(11, 40, 36))).astype(dtype)
    staging = DeferredStaging()
    up = pipeline.upload_slabs(volume, torch.float32, torch.device("cpu"), staging, slab_bytes)
    assert not staging.queue  # every slab crossed before the frame was handed over
    assert np.array_equal(up.numpy(), volume.astype(np.float32))
    assert np.shares_memory(up.numpy(), volume) is False
    assert staging.buffers == (1 if len(pipeline.slabs(volume.shape, 4, slab_bytes)) == 1 else 2)
    down = pipeline.download_slabs(up * 2, staging, slab_bytes)
    assert down.dtype == np.float32 and np.array_equal(down, volume.astype(np.float32) * 2)


def test_slabs_cover_the_frame_in_order():
    parts = pipeline.slabs((10, 4, 4), 4, slab_bytes=3 * 64)
    assert [(p.start, p.stop) for p in parts] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert [(p.start, p.stop) for p in pipeline.slabs((2, 4, 4), 4, slab_bytes=1)] == [
        (0, 1),
        (1, 2),
    ]


def test_gpu_pipeline_is_opt_in(monkeypatch):
    # never run on a real GPU yet: the default path on CUDA is the plain one
    monkeypatch.delenv(pipeline.PIPELINE_ENV, raising=False)
    assert pipeline.staging_for(torch.device("cuda")) is None
    monkeypatch.setenv(pipeline.PIPELINE_ENV, "0")
    assert pipeline.staging_for(torch.device("cuda")) is None
    assert pipeline.staging_for(torch.device("cpu")) is None
