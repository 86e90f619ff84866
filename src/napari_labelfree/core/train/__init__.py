"""Training one structure model: a generator of typed events, split by job.

================  ===========================================================================
``config``        :class:`TrainConfig` (no torch)
``events``        :class:`TrainStep`, :class:`Validated`, :class:`CheckpointSaved` (no torch)
``patches``       images as the network sees them: :func:`prepare_pair`, :class:`PatchSampler`
``checkpoint``    checkpoints (exact resume, no pickle) and the bundle written beside them
``log``           ``train_log.csv`` and ``loss_curve.png``
``evaluate``      :func:`evaluate_model`: whole-image scores, predicted as a user predicts
``loop``          :func:`iter_train`: the loop that ties them together
================  ===========================================================================

The names are re-exported here and imported on first use, so reading the settings (the CLI's
option defaults) does not import torch. :class:`ImagePair` lives in :mod:`..data`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..data import ImagePair
    from .checkpoint import CHECKPOINT_NAME, read_checkpoint, save_checkpoint
    from .config import TrainConfig
    from .evaluate import evaluate_model
    from .events import CheckpointSaved, TrainEvent, TrainStep, Validated
    from .log import CURVE_NAME, LOG_COLUMNS, LOG_NAME, write_loss_curve
    from .loop import iter_train
    from .patches import PatchSampler, cut_patches, prepare_pair

__all__ = [
    "CHECKPOINT_NAME",
    "CURVE_NAME",
    "LOG_COLUMNS",
    "LOG_NAME",
    "CheckpointSaved",
    "ImagePair",
    "PatchSampler",
    "TrainConfig",
    "TrainEvent",
    "TrainStep",
    "Validated",
    "cut_patches",
    "evaluate_model",
    "iter_train",
    "prepare_pair",
    "read_checkpoint",
    "save_checkpoint",
    "write_loss_curve",
]
# where each name lives: a module is imported only when one of its names is first used
_HOMES = {
    name: module
    for module, names in {
        "..data": ("ImagePair",),
        ".checkpoint": ("CHECKPOINT_NAME", "read_checkpoint", "save_checkpoint"),
        ".config": ("TrainConfig",),
        ".evaluate": ("evaluate_model",),
        ".events": ("CheckpointSaved", "TrainEvent", "TrainStep", "Validated"),
        ".log": ("CURVE_NAME", "LOG_COLUMNS", "LOG_NAME", "write_loss_curve"),
        ".loop": ("iter_train",),
        ".patches": ("PatchSampler", "cut_patches", "prepare_pair"),
    }.items()
    for name in names
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
