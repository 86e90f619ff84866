"""Temporary siblings for atomic writes (write there, then rename into place).

``tempfile`` makes its files 0600 and its folders 0700, which would leave predictions and models
unreadable to colleagues on a shared lab server after the rename; these helpers give them the
permissions any new file or folder gets under the user's umask.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def give_usual_permissions(path: Path) -> None:
    """rw for all, less the umask (safetensors, like tempfile, writes files 0600)."""
    os.chmod(path, 0o666 & ~_umask())


def temp_file_beside(path: Path) -> Path:
    """An empty temporary file in ``path``'s folder (hidden, named after it), usual permissions."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    give_usual_permissions(Path(name))
    return Path(name)


def temp_dir_beside(folder: Path) -> Path:
    """An empty temporary folder beside ``folder`` (hidden, named after it), usual permissions."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp
