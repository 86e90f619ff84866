"""Terminal progress for the compute generators.

Bars are drawn only on a terminal (tqdm's ``disable=None``): piped into a log or a batch job's
output file they would be thousands of carriage-return lines.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import Any

from tqdm import tqdm

from ..core.events import FrameDone, FrameStarted, Notice, Stage, TileDone
from ..core.trust.ood import InputWarning
from ._args import with_hint


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
