"""Running core generators in napari worker threads, and showing what went wrong.

No Qt widget code here: wrappers around generators plus the error notification.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from typing import Any

from napari.utils.notifications import show_error

from ..core.errors import LabelFreeError

logger = logging.getLogger(__name__)


class ComputeFailed(Exception):
    """An unexpected error in a worker thread (not a user mistake): shown, logged, not re-raised."""


def guarded(gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Forward ``gen``; turn a RuntimeError into ComputeFailed.

    superqt's GeneratorWorker treats a RuntimeError from the generator as "the worker was deleted"
    and only warns, so a real failure (a torch error, say) would pass silently without this.
    """
    try:
        return (yield from gen)
    except LabelFreeError:
        raise
    except RuntimeError as e:
        raise ComputeFailed(f"{e.__class__.__name__}: {e}") from e


def stoppable(
    gen: Generator[Any, Any, Any], stop: threading.Event
) -> Generator[Any, Any, tuple[Any, bool]]:
    """Forward ``gen`` until ``stop`` is set, then close it *in this thread*; return (value, stopped).

    Closing runs the generator's clean-up where it runs (the training generator writes the
    current weights as a usable model when closed), rather than whenever it is garbage-collected.
    """
    while True:
        if stop.is_set():
            gen.close()
            return None, True
        try:
            event = next(gen)
        except StopIteration as done:
            return done.value, False
        yield event


def notify_error(exc: BaseException, what: str = "the job") -> None:
    """A LabelFreeError as its message (it says what to do); anything else logged with its trace."""
    if isinstance(exc, LabelFreeError):
        show_error(str(exc))
        return
    logger.error("%s failed", what, exc_info=(type(exc), exc, exc.__traceback__))
    show_error(f"{what} failed: {exc}")


def _available_devices() -> list[str]:
    from ..core.device import available_devices  # imports torch: off the GUI thread

    return available_devices()


def load_devices(then: Callable[[list[str]], None]) -> None:
    """Find the compute devices in a worker thread (torch's import takes seconds) and call
    ``then(devices)`` on the GUI thread; opening a widget stays quick and imports no torch."""
    from napari.qt.threading import create_worker

    worker = create_worker(_available_devices)
    worker.returned.connect(then)
    worker.start()
