"""Typed progress events yielded by the compute generators (prediction and training)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TileDone:
    """Tile ``index`` (0-based) of ``total`` in the current frame is done."""

    index: int
    total: int
    frame: int = 0


@dataclass(frozen=True)
class FrameStarted:
    frame: int
    n_frames: int


@dataclass(frozen=True)
class FrameDone:
    """Frame ``frame`` is predicted: one ZYX array per model structure (input's shape)."""

    frame: int
    n_frames: int
    arrays: dict[str, np.ndarray] = field(repr=False)


@dataclass(frozen=True)
class Notice:
    """Something the user should know (an assumed voxel size, a tile shrunk after out-of-memory).

    ``field`` names the setting it is about (as :class:`~.errors.LabelFreeError` does), so a front
    end can add its own hint.
    """

    text: str
    field: str | None = None


def drain(gen: Generator[Any, Any, Any]) -> Any:
    """Run a compute generator to the end, ignoring progress, and return its result."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
