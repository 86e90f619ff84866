"""What ``iter_train`` yields (frozen dataclasses, as in :mod:`napari_labelfree.core.events`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..events import Notice


@dataclass(frozen=True)
class TrainStep:
    """Iteration ``iteration`` (1-based, completed) of ``total``; ``loss`` is that batch's MSE."""

    iteration: int
    total: int
    loss: float
    its_per_s: float


@dataclass(frozen=True)
class Validated:
    """Loss and Pearson r on the fixed validation patches after ``iteration``."""

    iteration: int
    val_loss: float
    val_pearson_r: float


@dataclass(frozen=True)
class CheckpointSaved:
    path: Path


TrainEvent = TrainStep | Validated | CheckpointSaved | Notice
