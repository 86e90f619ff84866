"""The Train widget's jobs, run in worker threads: measuring a step, and training."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from ..core.config import ModelSpec

Layer = tuple[Any, Any, str]  # (ImageSource, voxel size or None, layer name)


def estimate_job(spec: ModelSpec, config: Any, device: str) -> Generator[Any, None, float]:
    """Seconds per training step of this network (no events: the runner drains generators)."""
    from ..core.train_estimate import seconds_per_iteration

    if False:
        yield
    return seconds_per_iteration(spec, config, device)


def pairs_from_layers(signal: Layer, target: Layer) -> list:
    """One ImagePair per time point of two registered layers (ZYX, raw intensities)."""
    from ..core.errors import LabelFreeError
    from ..core.train import ImagePair

    (sig, vox, sig_name), (tgt, _, _) = signal, target
    if sig.shape_zyx != tgt.shape_zyx or sig.n_timepoints != tgt.n_timepoints:
        raise LabelFreeError(
            f"signal {sig.shape_tczyx} and target {tgt.shape_tczyx} (T, C, Z, Y, X) differ in "
            "shape; they must be registered images of the same field"
        )
    cs = 0 if sig.n_channels == 1 else sig.channel_index(None)
    ct = 0 if tgt.n_channels == 1 else tgt.channel_index(None)
    return [
        ImagePair(sig.frame(t, cs), tgt.frame(t, ct), vox, f"{sig_name} t={t}")
        for t in range(sig.n_timepoints)
    ]


def train_job(
    signal: Layer,
    target: Layer,
    spec: ModelSpec,
    out: Path,
    config: Any,
    device: str,
    init: str | None = None,
) -> Generator[Any, None, Any]:
    """Read the pairs, then train (the core checks the request); returns the bundle.

    ``init``: a model name to fine-tune from (its network and voxel size replace the form's).
    """
    from ..core.train import iter_train  # torch is imported when training starts

    pairs = pairs_from_layers(signal, target)
    return (yield from iter_train(pairs, spec, out, config, device=device, init=init))
