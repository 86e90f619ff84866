"""Terminal progress for the compute generators.

Bars are drawn only on a terminal (tqdm's ``disable=None``): piped into a log or a batch job's
output file they would be thousands of carriage-return lines. There a long run gets a line now
and then instead (:class:`LogLines`): how far it is and how long it has left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator
from typing import Any

from tqdm import tqdm

from ..core.events import FrameDone, FrameStarted, Notice, Stage, TileDone
from ..core.train_estimate import format_duration
from ..core.trust.ood import DIFFERS, InputWarning
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

    def begin(self) -> None:
        """Start the clock, if not started."""
        if self.start is None:
            self.start = self.clock()
            self.next = self.start + self.first_s

    def due(self) -> bool:
        """Whether a line is due now (the first call starts the clock)."""
        self.begin()
        now = self.clock()
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


class FrameLog:
    """A log file's lines for the time points of one input (where no bar is drawn): how many of
    ``to_do`` are done, seconds each, the time left. One per input, however many calls of
    :func:`drive_prediction` its frames take (the TIFF writer drains one frame per call)."""

    def __init__(self, label: str, to_do: int | None = None, resumed: bool = False) -> None:
        self.label, self.to_do, self.resumed = label, to_do, resumed
        self.lines, self.done = LogLines(), 0

    def started(self) -> None:
        self.lines.begin()  # the first frame starts the clock

    def frame_done(self, n_frames: int) -> str | None:
        """The line due after one more frame, or None (none after the last)."""
        self.done += 1
        to_do = self.to_do if self.to_do is not None else n_frames
        if self.done >= to_do or not self.lines.due():
            return None
        each = self.lines.elapsed() / self.done
        counted = (
            f"of the {to_do} time points left are" if self.resumed else f"of {to_do} time points"
        )
        left = format_duration(each * (to_do - self.done))
        return (
            f"labelfree: {self.label}: {self.done} {counted} done, {each:.1f} s each, "
            f"about {left} left"
        )


def warning_line(warning: InputWarning, image: str | None = None) -> str:
    """A warning's line; one about the image (not about the model alone) names ``image``."""
    if image is not None and warning.status == DIFFERS:
        return f"warning: {image}: {warning.text}"
    return f"warning: {warning.text}"


def say(line: str, said: set[str] | None = None) -> None:
    """Print ``line`` to stderr beside any bar, unless it is among the lines ``said``."""
    if said is not None:
        if line in said:
            return
        said.add(line)
    tqdm.write(line, file=sys.stderr)


def drive_prediction(
    gen: Generator,
    label: str,
    on_frame=None,
    hints: dict[str, str] | None = None,
    frame_log: FrameLog | None = None,
    said: set[str] | None = None,
) -> Any:
    """Drain a prediction generator into a tqdm bar over tiles; hand FrameDone to ``on_frame``.

    ``hints`` maps a notice's field to the command's flag for it (see ``_args.flag_hints``);
    ``frame_log`` keeps a log file's count of frames across calls (one per input by default).
    ``said``, the lines already printed where one command predicts several images: each line is
    said once (a plate of 96 scenes, one warning that a model stores no statistics), and a
    warning about an image names it.
    """
    bar = None
    log = frame_log if frame_log is not None else FrameLog(label)
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            if isinstance(event, InputWarning):  # the one line a user must not miss
                say(warning_line(event, label if said is not None else None), said)
            elif isinstance(event, Notice):
                text = with_hint(event.text, event.field, hints or {})
                say(f"labelfree: {text}", said)
            elif isinstance(event, FrameStarted):
                log.started()
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
                line = log.frame_done(event.n_frames)
                if line and bar is not None and bar.disable:  # no bar: a log file
                    tqdm.write(line, file=sys.stderr)
                if on_frame is not None:
                    on_frame(event)
    finally:
        if bar is not None:
            bar.close()
        gen.close()
