"""One reducer of core events into a progress state (no Qt): what the bars and status line show.

Prediction (FrameStarted, TileDone, FrameDone) and training (TrainStep) events both reduce into a
:class:`Progress`; the job runner keeps the latest value and pushes it to napari's bars a few
times a second, so the cost of showing progress does not grow with the number of events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..core.events import FrameDone, FrameStarted, Stage, TileDone
from ..core.train_estimate import format_duration


@dataclass(frozen=True)
class Progress:
    """Counts of one job; a total of 0 means not known yet (no bar is shown for it)."""

    frames_done: int = 0
    frames_total: int = 0
    frame: int | None = None  # the frame being predicted
    tiles_done: int = 0
    tiles_total: int = 0
    iteration: int = 0
    iterations_total: int = 0
    loss: float | None = None
    its_per_s: float | None = None
    stage: str | None = None  # a step before the frame's first tile (normalizing, resampling)

    def text(self) -> str:
        """One status line for people (empty when nothing is known yet)."""
        if self.iterations_total:
            loss = f", loss {self.loss:.4g}" if self.loss is not None else ""
            rate = f", {self.its_per_s:.2f} it/s" if self.its_per_s else ""
            left = ""
            if self.its_per_s:
                left = f", about {format_duration((self.iterations_total - self.iteration) / self.its_per_s)} left"
            return f"iteration {self.iteration}/{self.iterations_total}{loss}{rate}{left}"
        parts = []
        if self.frames_total > 1:
            parts.append(f"{self.frames_done}/{self.frames_total} frames")
            if self.frame is not None:
                parts.append(f"predicting t={self.frame}")
        if self.stage:
            parts.append(f"{self.stage}...")
        elif self.tiles_total:
            parts.append(f"tile {self.tiles_done}/{self.tiles_total}")
        return ", ".join(parts)


def reduce(state: Progress, event: Any) -> Progress:
    """The progress after ``event`` (events this reducer does not count leave it unchanged)."""
    if isinstance(event, FrameStarted):
        return replace(state, frame=event.frame, frames_total=event.n_frames, tiles_done=0)
    if isinstance(event, Stage):
        return replace(state, stage=event.text)
    if isinstance(event, TileDone):
        return replace(state, tiles_done=event.index + 1, tiles_total=event.total, stage=None)
    if isinstance(event, FrameDone):
        return replace(
            state, frames_done=state.frames_done + 1, frames_total=event.n_frames, frame=None
        )
    if type(event).__name__ == "TrainStep":  # core.train.events, not imported here (cheap)
        return replace(
            state,
            iteration=event.iteration,
            iterations_total=event.total,
            loss=event.loss,
            its_per_s=event.its_per_s,
        )
    return state
