"""Typed progress events yielded by the compute generators (prediction and training)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TileDone:
    """Tile ``index`` (0-based) of ``total`` in the current frame is done.

    ``partial``, where the engine offers it: called in the thread that drains the job, it returns
    the outputs so far ({name: ZYX array of the frame's shape, zero where no tile has been}), so a
    front end can show one big volume filling in tile by tile. It costs a copy (and a resampling)
    of the whole output: call it now and then, not per tile.
    """

    index: int
    total: int
    frame: int = 0
    partial: Callable[[], dict[str, Any]] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FrameStarted:
    frame: int
    n_frames: int


@dataclass(frozen=True)
class Stage:
    """A step of frame ``frame`` before its tiles ("normalizing", "resampling ..."): on a large
    frame these take seconds with no tile done, so a front end says what is going on."""

    frame: int
    text: str


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
