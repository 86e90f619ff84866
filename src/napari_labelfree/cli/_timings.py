"""Where `labelfree predict`'s time goes, and reading/writing overlapped with the prediction.

Two small wrappers the command puts around a prediction plan: :class:`ReadAhead` reads frame t+1
in a background thread while frame t is predicted, and :func:`compute_ahead` predicts frame t+1
in a background thread while frame t is written. Both time their side, so ``--timings`` can
report start-up, reading, prediction and writing.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass


def process_seconds() -> float | None:
    """Seconds since this process started (Linux: /proc), None where that cannot be read."""
    try:
        import os

        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


@dataclass
class Timings:
    """Seconds per phase of one command; reading and prediction overlap writing where they can."""

    start_up: float = 0.0  # process start (or the command's, where unknown) to the plans made
    reading: float = 0.0  # spent reading frames (in the background after the first)
    read_wait: float = 0.0  # of which the prediction waited for
    waiting: float = 0.0  # the writer waited for predicted frames (reading waits included)
    writing: float = 0.0  # writing, less the waits for frames
    total: float = 0.0

    def line(self) -> str:
        return (
            f"timings: start-up {self.start_up:.2f} s, reading {self.reading:.2f} s "
            f"({self.read_wait:.2f} s not overlapped), prediction "
            f"{max(0.0, self.waiting - self.read_wait):.2f} s, writing {self.writing:.2f} s "
            f"(overlapping the prediction where frames allow), total {self.total:.2f} s"
        )


class ReadAhead:
    """An image source whose ``frame(t, c)`` reads ``t + 1`` in the background after ``t``.

    Everything else is the wrapped source's. One read runs at a time, so a reader that is not
    thread-safe is never entered twice at once.
    """

    def __init__(self, source, timings: Timings) -> None:
        self._source = source
        self._timings = timings
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="labelfree-read")
        self._next: tuple[tuple[int, int], Future] | None = None

    def __getattr__(self, name: str):
        return getattr(self._source, name)

    def _read(self, t: int, c: int):
        t0 = time.perf_counter()
        try:
            return self._source.frame(t, c)
        finally:
            self._timings.reading += time.perf_counter() - t0

    def frame(self, t: int, c: int):
        t0 = time.perf_counter()
        if self._next is not None and self._next[0] == (t, c):
            data = self._next[1].result()
        else:
            data = self._read(t, c)
        self._timings.read_wait += time.perf_counter() - t0
        self._next = None
        if t + 1 < self._source.n_timepoints:
            self._next = ((t + 1, c), self._pool.submit(self._read, t + 1, c))
        return data

    def close(self) -> None:
        """Drop a read not yet started and wait for the one under way (no reader left running)."""
        self._next = None
        self._pool.shutdown(wait=True, cancel_futures=True)


def compute_ahead(
    frames: Iterator, timings: Timings, background: bool = True, stop: threading.Event | None = None
) -> Iterator:
    """Yield ``frames``' items, computing the next one in a background thread meanwhile.

    The consumer (the writer) works on item t while item t + 1 is computed. The time the consumer
    waits for an item is counted in ``timings.waiting``. An exception in the producer is raised
    here. When the consumer leaves (the end, an error, Ctrl-C, or closing this generator), ``stop``
    is set and the producer thread is waited for: ``frames`` should check ``stop`` between its
    steps (tiles) so that this takes one step, not one item. Nothing computes in the background
    after this generator is closed: torch at work in a thread while the interpreter exits aborts
    the process (``terminate called without an active exception``). With ``background`` false the
    items are computed here, in turn (nothing to overlap with a single frame).
    """
    if not background:
        while True:
            t0 = time.perf_counter()
            try:
                item = next(frames)
            except StopIteration:
                return
            finally:
                timings.waiting += time.perf_counter() - t0
            yield item
    items: queue.Queue = queue.Queue(maxsize=1)
    stop = stop or threading.Event()
    done = object()

    def produce() -> None:
        try:
            try:
                for item in frames:
                    if stop.is_set():
                        break
                    items.put((True, item))
                items.put((True, done))
            finally:
                close = getattr(frames, "close", None)
                if close is not None:
                    close()  # in this thread, which ran it
        except BaseException as e:  # handed to the consumer, raised there
            items.put((False, e))

    producer = threading.Thread(target=produce, name="labelfree-predict", daemon=True)
    producer.start()
    try:
        while True:
            t0 = time.perf_counter()
            ok, item = _wait_for(items)
            timings.waiting += time.perf_counter() - t0
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # take what it hands over, so it never blocks on a full queue
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.05)
        producer.join()


def _wait_for(items: queue.Queue):
    """The next item, waited for in short timed waits.

    Python runs a signal's handler (Ctrl-C's KeyboardInterrupt, cli._Signals) in the main thread
    only when that thread runs again; the kernel may hand the signal to the thread at work in
    torch, and an untimed wait would then sleep through Ctrl-C, SIGTERM and SIGHUP for good.
    """
    while True:
        with contextlib.suppress(queue.Empty):
            return items.get(timeout=0.1)
