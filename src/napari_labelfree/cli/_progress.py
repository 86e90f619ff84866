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
    """Training progress as lines, where no bar is drawn (stderr a log file, a batch job's
    output): the first after ``first_s`` seconds of training, with the rate and the time left,
    then one every ``every_s``; a run of days says how far it is, not only when it ends."""

    def __init__(
        self,
        first_s: float = 30.0,
        every_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first_s, self.every_s, self.clock = first_s, every_s, clock
        self.due: float | None = None

    def line(self, iteration: int, total: int, loss: float, its_per_s: float) -> str | None:
        """The line for a completed step, or None when none is due (nor at the last step: the
        run's own result line follows it)."""
        now = self.clock()
        if self.due is None:
            self.due = now + self.first_s
        if now < self.due or iteration >= total:
            return None
        self.due = now + self.every_s
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
            elif isinstance(event, FrameDone) and on_frame is not None:
                on_frame(event)
    finally:
        if bar is not None:
            bar.close()
        gen.close()
