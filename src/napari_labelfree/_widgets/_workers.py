"""Running core generators in worker threads, ending them with the application, and errors.

No Qt widget code here: wrappers around generators, the worker classes every widget starts, the
wait for them at exit, and the error notification.

Why the exit wait: superqt's workers run on Qt's global thread pool, outside Python's
``threading``, so the interpreter does not wait for them. A worker still running when Python
finalizes (the device probe importing torch when the viewer is closed at once, say) finds its
signal object deleted; the RuntimeError escapes ``QRunnable.run`` and PyQt aborts the process
(SIGABRT, issue 19). So every worker the plugin starts is a :class:`QuietFunctionWorker` /
:class:`QuietGeneratorWorker` made by :func:`make_worker`: jobs are asked to stop and the pool is
waited for before the interpreter goes, and a worker whose signals are gone ends silently. The
device probe is a Python thread (see :func:`load_devices`), joined at exit too.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable, Generator
from typing import Any

from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal
from superqt.utils import FunctionWorker, GeneratorWorker

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


#: At exit, how long to wait for workers (ms). Jobs stop at their next yield (a tile, a training
#: step); the device probe ends when torch is imported. Bounded: a stuck thread must not hang exit.
EXIT_WAIT_MS = 120_000

_stops: weakref.WeakSet = weakref.WeakSet()  # stop callbacks' owners, asked first at exit
_exit_hook_installed = False


class _EndsQuietly:
    """``run`` that ends silently when the worker's signals were deleted (the app is going)."""

    def run(self) -> None:
        try:
            super().run()  # type: ignore[misc]
        except RuntimeError:
            # "wrapped C/C++ object ... has been deleted": nobody is left to tell, and an exception
            # escaping QRunnable.run aborts the process (PyQt calls qFatal)
            logger.debug("a worker ended after its signals were deleted")


class QuietFunctionWorker(_EndsQuietly, FunctionWorker):
    """A FunctionWorker that never aborts the process when it outlives the application."""


class QuietGeneratorWorker(_EndsQuietly, GeneratorWorker):
    """A GeneratorWorker that never aborts the process when it outlives the application."""


def make_worker(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A (not yet started) worker running ``fn(*args, **kwargs)`` that ends cleanly at exit.

    superqt's, not napari's ``create_worker``: napari's registers each worker as a task of the
    current viewer (any viewer), whose close dialog then lists "Executing <function ...>"; the
    job runner asks in words instead (training) or just stops the job (the rest).
    """
    import inspect

    from superqt.utils import create_worker

    _install_exit_hook()
    cls = QuietGeneratorWorker if inspect.isgeneratorfunction(fn) else QuietFunctionWorker
    return create_worker(fn, *args, _worker_class=cls, _ignore_errors=True, **kwargs)


def stop_at_exit(owner: Any) -> None:
    """Call ``owner.stop_for_exit()`` before the interpreter finalizes (weakly held)."""
    _install_exit_hook()
    _stops.add(owner)


def _install_exit_hook() -> None:
    global _exit_hook_installed
    if not _exit_hook_installed:
        # registered after PyQt's own handlers, so it runs before them (atexit is last-in first-out)
        atexit.register(wait_for_workers)
        _exit_hook_installed = True


def wait_for_workers(timeout_ms: int = EXIT_WAIT_MS) -> bool:
    """Ask every job to stop, then wait for the thread pool; True if every worker ended."""
    for owner in list(_stops):
        try:
            owner.stop_for_exit()
        except Exception:  # exit goes on whatever one owner does
            logger.debug("stop_for_exit failed", exc_info=True)
    for thread, _ in list(_probes):  # a probe importing torch must not meet finalization
        thread.join(timeout_ms / 1000)
    try:
        from qtpy.QtCore import QThreadPool
    except Exception:
        return True
    done = bool(QThreadPool.globalInstance().waitForDone(timeout_ms))
    if not done:
        logger.warning("napari-labelfree: a worker thread was still running at exit")
    return done


def _available_devices() -> list[str]:
    from ..core.device import available_devices  # imports torch: off the GUI thread

    return available_devices()


class _DevicesFound(QObject):
    """Carries the device list from the probe's thread to the GUI thread (a queued signal)."""

    found = Signal(object)


_probes: list[tuple[threading.Thread, _DevicesFound]] = []  # kept until they end (and at exit)


def load_devices(then: Callable[[list[str]], None]) -> None:
    """Find the compute devices in a thread (torch's import takes seconds) and call
    ``then(devices)`` on the GUI thread; opening a widget stays quick and imports no torch.

    A plain Python thread, not the Qt thread pool: with torch 2.4 (the floor), torch imported
    on a pool thread made the Train widget's first training step, on another pool thread,
    crash the process (a segmentation fault in autograd's backward, 2026-12-07; torch 2.13
    does not), and imported on a Python thread it does not.
    """
    _install_exit_hook()
    carrier = _DevicesFound()  # created here, so it lives in the GUI thread
    carrier.found.connect(then)

    def probe() -> None:
        try:
            devices = _available_devices()
        except Exception as e:  # a broken torch: the widgets keep "auto" and "cpu"
            logger.warning("finding the compute devices failed: %s", e)
            return
        try:
            carrier.found.emit(devices)
        except RuntimeError:  # the application is gone: nobody is left to tell
            logger.debug("the device list came after the application ended")

    thread = threading.Thread(target=probe, name="labelfree-device-probe", daemon=True)
    _probes[:] = [(t, c) for t, c in _probes if t.is_alive()]
    _probes.append((thread, carrier))
    thread.start()
