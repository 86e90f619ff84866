"""The output folder of a training run: what a request may write there, checked before any work.

Nothing is replaced without being asked: a folder holding a model or a run is refused unless the
run is resumed (from its checkpoint) or replacing it was confirmed; a folder holding a model but
no checkpoint cannot be resumed, so resuming there is refused too (it would overwrite the model).

A folder holding only the log of an earlier run that left no model (it diverged, or was killed,
before its first checkpoint) is no run to protect: a plain retry trains there, and the earlier
log is kept beside the new one. One run at a time: :class:`FolderClaim` locks the folder for
the run (an advisory lock the system drops when the process ends, however it ends), so a second
run into it is refused in one line instead of mixing its files with the first one's.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from ..bundle import CONFIG_NAME, WEIGHTS_NAME
from ..config import ModelSpec
from ..data import ImagePair
from ..errors import LabelFreeError
from ..files import write_error
from .checkpoint import CHECKPOINT_NAME
from .config import TrainConfig
from .log import LOG_NAME
from .recipe import BEST_NAME

LOCK_NAME = ".labelfree-training.lock"
EARLIER_LOG_NAME = "train_log.earlier.csv"
# what makes a folder a model or a run to protect (a log alone does not: see the module notes)
_MODEL_OR_RUN = (CONFIG_NAME, WEIGHTS_NAME, CHECKPOINT_NAME, BEST_NAME)


def check_request(
    train: Sequence[ImagePair],
    spec: ModelSpec,
    config: TrainConfig,
    out: Path,
    resume: bool,
    overwrite: bool,
) -> None:
    """Refuse, before any work, a request that cannot train or would overwrite a run."""
    if not train:
        raise LabelFreeError("no training images given")
    multiple = spec.architecture.multiple
    if any(p % m for p, m in zip(config.patch_shape, spec.architecture.multiples, strict=True)):
        axes = "Y and X" if spec.architecture.flat else "every axis"
        raise LabelFreeError(
            f"patch shape {config.patch_shape} must be a multiple of {multiple} on {axes} for a "
            f"network of depth {spec.architecture.depth}"
        )
    if out.exists() and not out.is_dir():
        raise LabelFreeError(
            f"{out} is a file, not a folder; choose a new folder for the model", field="output"
        )
    if overwrite:
        return
    if not resume and any((out / n).exists() for n in _MODEL_OR_RUN):
        raise LabelFreeError(
            f"{out} already holds a model or a training run; choose a new folder, resume it, or "
            "confirm to replace it; nothing was overwritten",
            field=("output", "resume", "overwrite"),
        )
    model_files = (CONFIG_NAME, WEIGHTS_NAME)
    if (
        resume
        and not (out / CHECKPOINT_NAME).exists()
        and any((out / n).exists() for n in model_files)
    ):
        raise LabelFreeError(
            f"{out} holds a model but no training checkpoint to resume from; train into a new "
            "folder, or confirm to replace that model; nothing was overwritten",
            field=("output", "overwrite"),
        )


class FolderClaim:
    """The output folder held by one training run, from :meth:`take` to the end of the ``with``.

    The lock is ``flock`` on a hidden file in the folder: held per open file, dropped by the
    system when the process ends (a killed run leaves no stale lock, at most the empty file,
    which the next run takes over and removes).
    """

    def __init__(self) -> None:
        self._file: object | None = None
        self._path: Path | None = None

    def take(self, out: Path, recheck: Callable[[], None], set_aside: bool) -> list[str]:
        """Make ``out``, lock it, check the request again under the lock; notes to show.

        ``recheck`` raises when the folder is not (or no longer) free for this request: another
        run may have finished a model there since the first check. ``set_aside``: a log of an
        earlier run that left no model is renamed to :data:`EARLIER_LOG_NAME` (else the new run
        would write over it).
        """
        path = out / LOCK_NAME
        for attempt in range(3):  # a lock file its run removed as this one opened it: open anew
            try:
                out.mkdir(parents=True, exist_ok=True)
                f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
            except OSError as e:
                raise write_error(out, e) from e
            if not _lock(f):
                f.seek(0)
                holder = f.read().strip() or "a process"
                f.close()
                raise LabelFreeError(
                    f"another training run is writing into {out} ({holder}); choose another "
                    "folder, or wait for that run to end; nothing was written",
                    field="output",
                )
            if _same_file(f, path) or attempt == 2:
                break
            f.close()
        self._file, self._path = f, path
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}")
        f.flush()
        recheck()
        log = out / LOG_NAME
        if not set_aside or not log.is_file() or any((out / n).exists() for n in _MODEL_OR_RUN):
            return []
        os.replace(log, out / EARLIER_LOG_NAME)
        return [
            f"{out} held only the log of an earlier run that left no model; it is kept as "
            f"{EARLIER_LOG_NAME} and this run starts anew"
        ]

    def release(self) -> None:
        """Remove the lock file and let go of the folder (also on an error or a stop)."""
        if self._file is None:
            return
        if self._path is not None:
            self._path.unlink(missing_ok=True)  # while still held: no other run has it now
        self._file.close()  # type: ignore[attr-defined]
        self._file = self._path = None

    def __enter__(self) -> FolderClaim:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _lock(f) -> bool:
    """Lock ``f`` for this process without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: a lock on the file's first byte
        import msvcrt

        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        # another errno: a file system without locks (some network mounts): not held, as before
        return e.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN)
    return True


def _same_file(f, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except OSError:
        return False
