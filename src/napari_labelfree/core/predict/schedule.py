"""Which time point to predict next: the one the user looks at first, then outward from it.

Qt-free, so the order and its re-prioritization are tested without a viewer. A
:class:`FrameScheduler` is shared by two threads: the worker iterates it for the next frame, the
viewer tells it where the time slider now is. It is one iterable of frames a
:class:`~napari_labelfree.core.predict.plan.PredictionPlan` predicts
(``plan.iter_frames(scheduler)``), so moving the slider re-prioritizes the frames still pending.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from ..errors import LabelFreeError


def outward_order(center: int, n_frames: int) -> list[int]:
    """All frames ``0..n_frames-1``, ``center`` first, then alternately after and before it.

    >>> outward_order(2, 5)
    [2, 3, 1, 4, 0]
    """
    if n_frames <= 0:
        return []
    center = min(max(int(center), 0), n_frames - 1)
    order = [center]
    for d in range(1, n_frames):
        for t in (center + d, center - d):
            if 0 <= t < n_frames:
                order.append(t)
    return order


class FrameScheduler:
    """Thread-safe queue of pending frames, always handing out the one nearest the current frame.

    Parameters
    ----------
    n_frames
        Number of time points in the image.
    current
        The frame the user looks at (the time slider); handed out first.
    frames
        The frames to predict (default: all). Others are never handed out.

    Ties are broken towards later frames (a user usually plays a time-lapse forwards).
    """

    def __init__(self, n_frames: int, current: int = 0, frames: Iterable[int] | None = None):
        self.n_frames = int(n_frames)
        wanted = range(self.n_frames) if frames is None else frames
        self._pending: set[int] = set()
        for t in wanted:
            if not 0 <= int(t) < self.n_frames:
                raise LabelFreeError(
                    f"time point {t} does not exist (the image has {self.n_frames})"
                )
            self._pending.add(int(t))
        self._total = len(self._pending)
        self._current = self._clip(current)
        self._running: int | None = None
        self._done: list[int] = []
        self._lock = threading.Lock()

    def _clip(self, t: int) -> int:
        return min(max(int(t), 0), max(self.n_frames - 1, 0))

    @property
    def total(self) -> int:
        """How many frames this run predicts."""
        return self._total

    @property
    def current(self) -> int:
        return self._current

    def set_current(self, t: int) -> None:
        """The user moved the time slider: pending frames nearest ``t`` go next."""
        with self._lock:
            self._current = self._clip(t)

    def order(self) -> list[int]:
        """Pending frames in the order they will be handed out (if the slider stays put)."""
        with self._lock:
            return self._order_locked()

    def _order_locked(self) -> list[int]:
        return sorted(self._pending, key=lambda t: (abs(t - self._current), t < self._current))

    def next_frame(self) -> int | None:
        """Take the pending frame nearest the current one (None when nothing is left)."""
        with self._lock:
            if not self._pending:
                self._running = None
                return None
            t = self._order_locked()[0]
            self._pending.discard(t)
            self._running = t
            return t

    def mark_done(self, t: int) -> None:
        """Frame ``t`` is predicted."""
        with self._lock:
            self._done.append(int(t))
            if self._running == t:
                self._running = None

    @property
    def done(self) -> list[int]:
        """Finished frames, in the order they finished."""
        with self._lock:
            return list(self._done)

    @property
    def pending(self) -> list[int]:
        """Frames not yet started, in hand-out order."""
        return self.order()

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[int]:
        """Hand out frames nearest the current one; a frame is done when the next is asked for."""
        while (t := self.next_frame()) is not None:
            yield t
            self.mark_done(t)
