"""The output folder of a training run: what a request may write there, checked before any work.

Nothing is replaced without being asked: a folder holding a model or a run is refused unless the
run is resumed (from its checkpoint) or replacing it was confirmed; a folder holding a model but
no checkpoint cannot be resumed, so resuming there is refused too (it would overwrite the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..bundle import CONFIG_NAME, WEIGHTS_NAME
from ..config import ModelSpec
from ..data import ImagePair
from ..errors import LabelFreeError
from .checkpoint import CHECKPOINT_NAME
from .config import TrainConfig
from .log import LOG_NAME
from .recipe import BEST_NAME


def check_request(
    train: Sequence[ImagePair],
    spec: ModelSpec,
    config: TrainConfig,
    out: Path,
    resume: bool,
    overwrite: bool,
) -> None:
    """Refuse, before any work, a request that cannot train or would overwrite a run."""
    if not train:
        raise LabelFreeError("no training images given")
    multiple = spec.architecture.multiple
    if any(p % m for p, m in zip(config.patch_shape, spec.architecture.multiples, strict=True)):
        axes = "Y and X" if spec.architecture.flat else "every axis"
        raise LabelFreeError(
            f"patch shape {config.patch_shape} must be a multiple of {multiple} on {axes} for a "
            f"network of depth {spec.architecture.depth}"
        )
    if out.exists() and not out.is_dir():
        raise LabelFreeError(
            f"{out} is a file, not a folder; choose a new folder for the model", field="output"
        )
    if overwrite:
        return
    run_files = (CONFIG_NAME, WEIGHTS_NAME, CHECKPOINT_NAME, LOG_NAME, BEST_NAME)
    if not resume and any((out / n).exists() for n in run_files):
        raise LabelFreeError(
            f"{out} already holds a model or a training run; choose a new folder, resume it, or "
            "confirm to replace it; nothing was overwritten",
            field=("output", "resume", "overwrite"),
        )
    model_files = (CONFIG_NAME, WEIGHTS_NAME)
    if (
        resume
        and not (out / CHECKPOINT_NAME).exists()
        and any((out / n).exists() for n in model_files)
    ):
        raise LabelFreeError(
            f"{out} holds a model but no training checkpoint to resume from; train into a new "
            "folder, or confirm to replace that model; nothing was overwritten",
            field=("output", "overwrite"),
        )
