"""Atomic writes: write a temporary sibling, then rename it into place.

``tempfile`` makes its files 0600 and its folders 0700, and safetensors recreates the files it
writes as 0600, which would leave predictions and models unreadable to colleagues on a shared lab
server after the rename; what lands here gets the permissions any new file or folder gets under
the user's umask.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LabelFreeError

# errors of the place written to, not of the program: said in one line, with what to do
_WHY = {
    errno.ENOENT: "its folder does not exist",
    errno.ENOTDIR: "a part of its folder path is a file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "a part of its folder path is a file",
}


def write_error(path: Path, err: OSError) -> LabelFreeError:
    """The one-line error for failing to write ``path`` (missing folder, no permission, full disk)."""
    why = _WHY.get(err.errno or -1, err.strerror or str(err))
    return LabelFreeError(f"cannot write {path}: {why}; choose another output location")


@contextmanager
def native_write_errors(path: Path) -> Iterator[None]:
    """Native writers' failures as the OSError they are (safetensors: "... (os error 28)").

    Then :func:`atomic_file` and :func:`write_error` say "the disk is full" in one line, not a
    traceback of the writer's own exception type.
    """
    try:
        yield
    except OSError:
        raise
    except Exception as e:
        found = re.search(r"os error (\d+)", str(e))
        if found is not None:
            code = int(found.group(1))
        elif "write" in str(e) and _nearly_full(Path(path).parent):
            code = errno.ENOSPC  # torch.save: "PytorchStreamWriter failed writing file"
        else:
            raise
        raise OSError(code, os.strerror(code), str(path)) from None


def check_output_location(path: Path) -> None:
    """Refuse, before any work, a ``path`` whose folder cannot be made or written to.

    The nearest existing folder above ``path`` must be a folder (not a file) and writable; what
    is missing below it is created when the file is written.
    """
    parent = Path(path).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise write_error(Path(path), OSError(errno.ENOTDIR, "not a directory"))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise write_error(Path(path), OSError(_refusal(parent), "cannot write"))


def _refusal(folder: Path) -> int:
    """Why ``folder`` refuses writing: its file system is read-only, or permissions say no."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return errno.EROFS
    except (OSError, AttributeError):
        pass
    return errno.EACCES


def make_parent(path: Path) -> None:
    """Create the folder ``path`` goes in; failures are the one-line write error."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(Path(path), e) from None


def _temp_prefix(path: Path) -> str:
    # host and process in the name, so a later run can tell a dead run's leftovers from a live one
    return f".{path.name}.{socket.gethostname()}-{os.getpid()}."


def remove_stale_temporaries(path: Path) -> None:
    """Remove temporaries of ``path`` left by killed runs on this host (their process is gone)."""
    host = socket.gethostname()
    try:
        siblings = list(path.parent.glob(f".{path.name}.{host}-*.*tmp"))
    except OSError:
        return
    for tmp in siblings:
        pid_text = tmp.name[len(f".{path.name}.{host}-") :].split(".", 1)[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        try:
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        except OSError:
            pass  # someone else's, or already gone: not ours to insist on


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return True
    return True


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def give_usual_permissions(path: Path) -> None:
    """rw for all, less the umask (safetensors, like tempfile, writes files 0600)."""
    os.chmod(path, 0o666 & ~_umask())


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it replaces ``path``.

    Whatever the body raises (a failed write, Ctrl-C, a check before committing), the temporary
    file is removed and ``path`` stays as it was: never half-written. A missing or read-only
    folder and a full disk become one-line :class:`LabelFreeError` s. Temporaries left by a killed
    run into the same place are removed first.
    """
    remove_stale_temporaries(path)
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            yield tmp
            give_usual_permissions(tmp)  # after writing: a writer may have recreated the file 0600
            os.replace(tmp, path)
        except OSError as e:
            if e.errno is None and _nearly_full(path.parent):
                # a short write (tifffile: "4096 requested and 3016 written") carries no errno
                e = OSError(errno.ENOSPC, "no space left on device")
            if e.errno in (errno.ENOSPC, errno.EDQUOT) or e.filename in (str(tmp), str(path)):
                raise write_error(path, e) from None
            raise
    finally:
        tmp.unlink(missing_ok=True)


def temp_dir_beside(folder: Path) -> Path:
    """An empty temporary folder beside ``folder`` (hidden, named after it), usual permissions."""
    remove_stale_temporaries(folder)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(folder), suffix=".tmp", dir=folder.parent))
    except OSError as e:
        raise write_error(folder, e) from None
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp
