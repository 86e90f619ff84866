"""Atomic writes: write a temporary sibling, then rename it into place.

``tempfile`` makes its files 0600 and its folders 0700, and safetensors recreates the files it
writes as 0600, which would leave predictions and models unreadable to colleagues on a shared lab
server after the rename; what lands here gets the permissions any new file or folder gets under
the user's umask.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    file is removed and ``path`` stays as it was: never half-written.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        give_usual_permissions(tmp)  # after writing: a writer may have recreated the file 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temp_dir_beside(folder: Path) -> Path:
    """An empty temporary folder beside ``folder`` (hidden, named after it), usual permissions."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp
