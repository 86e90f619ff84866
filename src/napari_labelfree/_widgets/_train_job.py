"""The Train widget's jobs, run in worker threads: measuring a step, and training."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from ..core.config import ModelSpec

Layer = tuple[Any, Any, str]  # (ImageSource, voxel size or None, layer name)
logger = logging.getLogger(__name__)


class _Discarded(Exception):
    """Thrown into the training generator so that it ends without writing a model."""


def estimate_job(spec: ModelSpec, config: Any, device: str) -> Generator[Any, None, float]:
    """Seconds per training step of this network (no events: the runner drains generators)."""
    from ..core.train_estimate import seconds_per_iteration

    if False:
        yield
    return seconds_per_iteration(spec, config, device)


def pairs_from_layers(signal: Layer, target: Layer) -> list:
    """One ImagePair per time point of two registered layers (ZYX, raw intensities)."""
    from ..core.data import pairs_up
    from ..core.errors import LabelFreeError
    from ..core.train import ImagePair

    (sig, vox, sig_name), (tgt, _, _) = signal, target
    if not pairs_up((sig.n_timepoints, *sig.shape_zyx), (tgt.n_timepoints, *tgt.shape_zyx)):
        raise LabelFreeError(
            f"signal {sig.shape_tczyx} and target {tgt.shape_tczyx} (T, C, Z, Y, X) differ in "
            "shape; they must be registered images of the same field (the target may be one "
            "plane, a projection of the stack)"
        )
    cs = 0 if sig.n_channels == 1 else sig.channel_index(None)
    ct = 0 if tgt.n_channels == 1 else tgt.channel_index(None)
    modality = sig.modality_of(cs)
    return [
        ImagePair(sig.frame(t, cs), tgt.frame(t, ct), vox, f"{sig_name} t={t}", modality)
        for t in range(sig.n_timepoints)
    ]


def train_job(
    layer_pairs: list[tuple[Layer, Layer]],
    spec: ModelSpec,
    out: Path,
    config: Any,
    device: str,
    init: str | None = None,
    discard: threading.Event | None = None,
) -> Generator[Any, None, Any]:
    """Read the pairs (signal and target layers, one or more fields: the scenes of a plate),
    then train (the core checks the request); returns the bundle.

    ``init``: a model name to fine-tune from (its network and voxel size replace the form's).
    ``discard``: when set before the job is closed (the window closed mid-training), the new
    folder ``out`` is removed instead of holding a model of a few iterations.
    """
    from ..core.train import iter_train  # torch is imported when training starts

    pairs = [p for signal, target in layer_pairs for p in pairs_from_layers(signal, target)]
    gen = iter_train(pairs, spec, out, config, device=device, init=init)
    if discard is None:
        return (yield from gen)
    return (yield from _discardable(gen, discard, out))


def _discardable(
    gen: Generator[Any, None, Any], discard: threading.Event, out: Path
) -> Generator[Any, None, Any]:
    """Forward ``gen``; closed with ``discard`` set, end it unsaved and remove ``out``.

    Closing the training generator normally writes the current weights as a model (Stop keeps
    them); a run the user did not stop, cut short by the window closing, must not leave one.
    """
    iteration = 0
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as done:
                return done.value
            if type(event).__name__ == "TrainStep":
                iteration = event.iteration
            yield event
    except GeneratorExit:
        if not discard.is_set():
            gen.close()  # Stop: the current weights become the model
            raise
        with contextlib.suppress(_Discarded, StopIteration):
            gen.throw(_Discarded())
        shutil.rmtree(out, ignore_errors=True)
        logger.warning(
            "napari-labelfree: training %r stopped at iteration %d because its window closed; "
            "the unfinished model was discarded (nothing was written)",
            out.name,
            iteration,
        )
        raise
