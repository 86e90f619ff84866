"""Terminal progress for the compute generators.

Bars are drawn only on a terminal (tqdm's ``disable=None``): piped into a log or a batch job's
output file they would be thousands of carriage-return lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator
from typing import Any

from tqdm import tqdm

from ..core.events import FrameDone, FrameStarted, Notice, Stage, TileDone
from ..core.train_estimate import format_duration
from ..core.trust.ood import InputWarning
from ._args import with_hint


class LogLines:
    """When a progress line is due where no bar is drawn (stderr a log file, a batch job's
    output): the first ``first_s`` seconds after the first call, then every ``every_s``; a run
    of hours or days says how far it is and how long it has left, not only when it ends."""

    def __init__(
        self,
        first_s: float = 30.0,
        every_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first_s, self.every_s, self.clock = first_s, every_s, clock
        self.start: float | None = None
        self.next = 0.0

    def due(self) -> bool:
        """Whether a line is due now (the first call starts the clock)."""
        now = self.clock()
        if self.start is None:
            self.start, self.next = now, now + self.first_s
        if now < self.next:
            return False
        self.next = now + self.every_s
        return True

    def elapsed(self) -> float:
        """Seconds since the first call."""
        return self.clock() - self.start if self.start is not None else 0.0


def training_line(iteration: int, total: int, loss: float, its_per_s: float) -> str:
    """'iteration 74 of 150, loss 0.5165, 2.39 it/s, about 32 s left'."""
    text = f"iteration {iteration} of {total}, loss {loss:.4f}, {its_per_s:.2f} it/s"
    if its_per_s > 0:
        text += f", about {format_duration((total - iteration) / its_per_s)} left"
    return text


def drive_prediction(
    gen: Generator, label: str, on_frame=None, hints: dict[str, str] | None = None
) -> Any:
    """Drain a prediction generator into a tqdm bar over tiles; hand FrameDone to ``on_frame``.

    ``hints`` maps a notice's field to the command's flag for it (see ``_args.flag_hints``).
    """
    bar = None
    log, frames_done = LogLines(), 0  # a log file's lines, instead of the bars
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            if isinstance(event, InputWarning):  # the one line a user must not miss
                tqdm.write(f"warning: {event.text}", file=sys.stderr)
            elif isinstance(event, Notice):
                text = with_hint(event.text, event.field, hints or {})
                tqdm.write(f"labelfree: {text}", file=sys.stderr)
            elif isinstance(event, FrameStarted):
                log.due()  # the first frame starts its clock
                if bar is not None:
                    bar.close()
                bar = tqdm(
                    total=None,
                    desc=f"{label} t={event.frame}" if event.n_frames > 1 else label,
                    unit="tile",
                    leave=False,
                    file=sys.stderr,
                    disable=None,  # off when stderr is not a terminal
                )
            elif isinstance(event, Stage) and bar is not None:
                bar.set_postfix_str(event.text)  # a step before the tiles, said while it runs
            elif isinstance(event, TileDone) and bar is not None:
                if getattr(bar, "postfix", None):  # (a disabled bar has none)
                    bar.set_postfix_str("", refresh=False)
                bar.total = event.total
                bar.update(1)
            elif isinstance(event, FrameDone):
                frames_done += 1
                quiet = bar is not None and bar.disable
                if quiet and frames_done < event.n_frames and log.due():
                    each = log.elapsed() / frames_done
                    left = format_duration(each * (event.n_frames - frames_done))
                    tqdm.write(
                        f"labelfree: {label}: {frames_done} of {event.n_frames} time points done, "
                        f"{each:.1f} s each, about {left} left",
                        file=sys.stderr,
                    )
                if on_frame is not None:
                    on_frame(event)
    finally:
        if bar is not None:
            bar.close()
        gen.close()
