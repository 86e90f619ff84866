"""The shared base of the dock widgets: run one core generator job in a napari thread worker.

A :class:`JobRunner` starts the job, reduces its events into one :class:`~._progress.Progress`,
shows it in a determinate progress bar in the widget's own dock refreshed a few times a second
(never per event, never a busy bar), cancels it at the job's next yield, shows errors as notifications (a
:class:`~napari_labelfree.core.errors.LabelFreeError` names the settings to fix: their controls are
highlighted and focused), and cancels the job when the viewer window closes or the widget goes.

Closing: the job is stopped at its next yield and waited for before the window goes, and nothing
it yields afterwards reaches the widget or the viewer. A job that must not end unasked (training)
sets ``ask_on_close``: a user closing the window is asked first and may keep it open.

Why not napari's ``progress`` (the activity dock): while any of its bars is open, napari animates
a "loading" GIF in the status bar, and every GIF frame repaints the main window, which holds the
OpenGL canvas, so the whole window is composited again: with Mesa's software OpenGL that is
~30 % of a core for as long as a job runs (measured, benchmarks/train_widget_speed.py), CPU that
training and prediction need. A plain QProgressBar repaints only when its value changes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from napari.utils.notifications import show_info
from psygnal import evented
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QProgressBar

from ..core.errors import LabelFreeError
from ..core.events import Notice
from ._progress import Progress, reduce
from ._workers import guarded, make_worker, notify_error, stop_at_exit, stoppable

#: How often progress reaches the screen (ms): a few times a second is smooth enough to read and
#: costs the GUI thread nothing measurable, whatever the event rate.
REFRESH_MS = 400
_HIGHLIGHT = "border: 2px solid #e0533a;"
logger = logging.getLogger(__name__)


@evented
@dataclass
class JobState:
    """What the widget shows about its job (evented: controls follow ``running``)."""

    running: bool = False
    status: str = ""


def _job_body(
    fn: Callable[..., Generator], args: tuple, stop: threading.Event, ended: threading.Event
) -> Generator[Any, Any, Any]:
    """Worker body: the job until it ends or ``stop`` is set (then closed in this thread)."""
    try:
        return (yield from guarded(stoppable(fn(*args), stop)))
    finally:
        ended.set()


class JobRunner:
    """Runs one job at a time for a widget.

    Parameters
    ----------
    widget
        The dock widget (Qt): when the window holding it closes, the job is cancelled first.
    what
        Names the job in messages ("prediction", "training").
    on_event
        Called on the GUI thread with every event the job yields (after the progress reducer).
    on_done
        Called on the GUI thread when the job ended: ``(result, stopped, error)``.
    controls
        Core field name -> magicgui widget, to highlight the control an error is about.
    on_close
        Called (GUI thread) when the window closes or the widget goes while a job runs, before
        the job is stopped: the training widget marks its run to be discarded.
    ask_on_close
        A question (``str.format``-ed with ``status``) to ask a user who closes the window while
        a job runs; None: the job is stopped without asking.
    bar
        The progress bar the widget placed in its dock (:func:`progress_bar`): shown while a job
        with a known total runs, hidden otherwise; None shows no bar.
    """

    def __init__(
        self,
        widget: Any,
        what: str,
        on_event: Callable[[Any], None],
        on_done: Callable[[Any, bool, BaseException | None], None],
        controls: dict[str, Any] | None = None,
        on_close: Callable[[], None] | None = None,
        ask_on_close: str | None = None,
        bar: QProgressBar | None = None,
    ) -> None:
        self.widget, self.what = widget, what
        self.on_event, self.on_done = on_event, on_done
        self.controls = controls or {}
        self.on_close, self.ask_on_close = on_close, ask_on_close
        self.state = JobState()
        self.progress = Progress()
        # notices already shown, while several jobs run as one (a round over a plate's scenes):
        # each once, not once per scene; None: every job's notices are shown
        self.said: set[str] | None = None
        self.worker: Any = None
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._ended.set()
        self._error: BaseException | None = None
        self._result: Any = None
        self.bar = bar
        self._watched: int | None = None
        self._close_filter = _CloseFilter(self._on_window_close)
        self.closed = False  # the window closed: nothing may touch the viewer any more
        self._timer = QTimer()
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._show_progress)
        # the dock closed (its widget deleted): stop, and never call into the widget again
        widget.destroyed.connect(self._detach)
        stop_at_exit(self)

    # ------------------------------------------------------------------------------ control
    @property
    def running(self) -> bool:
        return self.state.running

    def start(self, fn: Callable[..., Generator], *args: Any, status: str = "") -> None:
        """Run ``fn(*args)`` (a generator function) in a worker thread."""
        if self.running:
            return
        self.clear_highlight()
        self.progress, self._error, self._result = Progress(), None, None
        self._stop, self._ended = threading.Event(), threading.Event()
        worker = make_worker(_job_body, fn, args, self._stop, self._ended)
        worker.yielded.connect(self._on_yield)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.watch_window(self.widget)
        self.state.running = True
        self.state.status = status
        self._timer.start()
        worker.start()

    def cancel(self) -> bool:
        """Stop at the job's next yield (a tile, a training step); True if a job was running."""
        if not self.running:
            return False
        self._stop.set()
        self.state.status = "Cancelling..."
        return True

    def cancel_and_wait(self, timeout_s: float = 10.0) -> None:
        """Cancel and wait for the worker thread to end (the window is closing)."""
        if self.cancel():
            self._ended.wait(timeout_s)

    # ------------------------------------------------------------------------- worker signals
    def _on_yield(self, event: Any) -> None:
        if self.closed:
            return
        self.progress = reduce(self.progress, event)
        if isinstance(event, Notice) and (self.said is None or event.text not in self.said):
            show_info(event.text)
            if self.said is not None:
                self.said.add(event.text)
        self.on_event(event)

    def _on_returned(self, value: Any) -> None:
        self._result = value

    def _on_error(self, exc: BaseException) -> None:
        self._error = exc
        if self.closed:  # the widget is gone: a log line, no notification or highlight
            logger.warning("%s ended after its window closed: %s", self.what, exc)
            return
        notify_error(exc, self.what)
        if isinstance(exc, LabelFreeError):
            self.highlight(exc.fields)

    def _on_finished(self) -> None:
        self._timer.stop()
        if self.closed:
            return
        self._show_progress()
        self._close_bars()
        value, stopped = self._result if isinstance(self._result, tuple) else (None, False)
        self.state.running = False
        self.worker = None
        self.on_done(value, stopped or self._stop.is_set(), self._error)

    # -------------------------------------------------------------------------------- bars
    def _show_progress(self) -> None:
        """Bring the bar and status line up to date (a few times a second, not per event).

        One bar per job: frames and tiles share one bar counted in tiles.
        """
        p = self.progress
        if p.iterations_total:
            self._set_bar("Training", p.iteration, p.iterations_total)
        elif p.tiles_total:
            frames = max(p.frames_total, 1)
            done = min(p.frames_done, frames) * p.tiles_total
            if p.frame is not None:
                done += p.tiles_done
            desc = f"Predicting {frames} frames" if frames > 1 else "Predicting"
            self._set_bar(desc, min(done, frames * p.tiles_total), frames * p.tiles_total)
        text = p.text()
        if text and self.running and not self._stop.is_set():
            self.state.status = text

    def _close_bars(self) -> None:
        if self.bar is not None:
            try:
                self.bar.hide()
            except RuntimeError:  # the dock (and its bar) was deleted
                self.bar = None

    def _set_bar(self, desc: str, n: int, total: int) -> None:
        bar = self.bar
        if bar is None:
            return
        # Qt repaints only what changed: the same value and text cost nothing. QProgressBar
        # repaints at once on a new value, and with the status line's repaint later that made two
        # compositions of the whole window (OpenGL canvas included) per refresh: updates held
        # back here, the bar is painted with the status line in one.
        bar.setUpdatesEnabled(False)
        try:
            if bar.maximum() != total:
                bar.setMaximum(total)
            text = f"{desc}: %v / %m"
            if bar.format() != text:
                bar.setFormat(text)
            if bar.value() != n:
                bar.setValue(n)
        finally:
            bar.setUpdatesEnabled(True)  # schedules the bar's repaint
        if bar.isHidden():
            bar.show()

    # ---------------------------------------------------------------------- field highlight
    def highlight(self, fields: tuple[str, ...]) -> None:
        """Mark and focus the controls of the settings an error is about."""
        first = True
        for name in fields:
            widget = self.controls.get(name)
            if widget is None:
                continue
            widget.native.setStyleSheet(_HIGHLIGHT)
            if first:
                widget.native.setFocus()
                first = False

    def clear_highlight(self) -> None:
        for widget in self.controls.values():
            widget.native.setStyleSheet("")

    # ------------------------------------------------------------------- the window closing
    def watch_window(self, widget: Any) -> None:
        """Cancel the job (and wait for its thread) when the window holding ``widget`` closes."""
        top = widget
        while top.parentWidget() is not None:  # a floating dock still has the window as parent
            top = top.parentWidget()
        # an id, not the window: a Python reference would keep the closed viewer alive
        if top is not widget and id(top) != self._watched:
            self._watched = id(top)
            top.installEventFilter(self._close_filter)

    def _on_window_close(self, by_user: bool) -> bool:
        """The window is asked to close; False keeps it open (the user chose to go on)."""
        if not self.running or self.closed:
            return True
        if by_user and self.ask_on_close and not confirm_close(self.widget, self._question()):
            return False
        self._cancel_for_close()
        return True

    def _question(self) -> str:
        return self.ask_on_close.format(status=self.progress.text() or self.state.status)  # type: ignore[union-attr]

    def _cancel_for_close(self) -> None:
        """The window closes: stop the job and wait for it, close the bars while the window lives."""
        if self.on_close is not None:
            self.on_close()
        self.cancel_and_wait()
        self.closed = True
        self._timer.stop()
        self._close_bars()
        self.state.running = False

    def _detach(self, *_: Any) -> None:
        """The widget was deleted: stop the job; nothing it yields reaches a widget or layer now."""
        self.closed = True
        self.bar = None  # deleted with the widget
        if self.running and self.on_close is not None:
            self.on_close()
        self._stop.set()
        # the interpreter exiting with the window open deletes Qt's objects in no set order: the
        # timer may be gone already, and an exception in this slot would make PyQt abort Python
        with contextlib.suppress(RuntimeError):
            self._timer.stop()

    def stop_for_exit(self) -> None:
        """The interpreter is exiting: stop the job (the exit hook then waits for the thread)."""
        if self.running and not self._stop.is_set() and self.on_close is not None:
            self.on_close()
        self.closed = True
        self._stop.set()


def progress_bar() -> QProgressBar:
    """A job's progress bar for a dock (hidden until a job shows progress in it)."""
    bar = QProgressBar()
    bar.setTextVisible(True)
    bar.hide()
    return bar


def confirm_close(parent: Any, question: str) -> bool:
    """Ask whether to close the window while a job runs (a modal Yes/No box, No by default)."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(
        parent,
        "napari-labelfree",
        question,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class _CloseFilter(QObject):
    """Calls back when the watched window receives its Close event (before it goes).

    ``callback(by_user)`` returns False to keep the window open: the event is then ignored and
    goes no further (napari's own close handling never sees it).
    """

    def __init__(self, callback: Callable[[bool], bool]) -> None:
        super().__init__()
        self.callback = callback

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Close and not self.callback(event.spontaneous()):
            event.ignore()
            return True
        return False
