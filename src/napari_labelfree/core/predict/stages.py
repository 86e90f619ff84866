"""Long steps of a frame said while they run (reading, z-scoring, resampling a big frame).

A generator cannot yield from inside one numpy or torch call, and on a 64x2048x2048 frame such a
call takes many seconds: the step runs in a helper thread while the job yields a
:class:`~napari_labelfree.core.events.Stage` with the seconds so far, about once a second, so a
front end shows that something is going on. Closing the job (Cancel) waits for the step to end,
as it did when the step ran in the job's own thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import TypeVar

from ..events import Stage

T = TypeVar("T")

#: Seconds between two messages of a step that is still running.
EVERY_S = 1.0


def timed_stage(
    frame: int, text: str, step: Callable[[], T], every_s: float = EVERY_S
) -> Generator[Stage, None, T]:
    """Yield ``Stage(frame, text)``, run ``step()``; while it runs, ``text (n s)`` every ``every_s``.

    Returns what ``step`` returns and raises what it raises. A step shorter than ``every_s`` (a
    frame of a usual size) costs one message and a thread start, nothing more.
    """
    yield Stage(frame, text)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = step()
        except BaseException as e:  # handed to the job's thread below
            outcome["error"] = e

    worker = threading.Thread(target=run, name=f"labelfree {text}", daemon=True)
    start = time.monotonic()
    worker.start()
    try:
        while True:
            worker.join(every_s)
            if not worker.is_alive():
                break
            yield Stage(frame, f"{text} ({time.monotonic() - start:.0f} s)")
    finally:
        worker.join()  # cancelled: the step ends (and frees its memory) before the job does
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
