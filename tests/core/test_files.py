"""Writing files: nothing half-written, one-line errors for the place written to, no leftovers."""

import errno
import os
import socket

import pytest

from napari_labelfree.core import files
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.files import atomic_file, temp_dir_beside


def test_missing_folder_is_one_clear_line(tmp_path):
    target = tmp_path / "no-such-folder" / "out.ome.tif"
    with pytest.raises(LabelFreeError, match="its folder does not exist"), atomic_file(target):
        pass
    assert not target.parent.exists()


@pytest.mark.parametrize(
    ("code", "why"), [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only")]
)
def test_full_disk_or_read_only_keeps_the_old_file(tmp_path, code, why):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(LabelFreeError, match=why), atomic_file(target) as tmp:
        tmp.write_text("new, half")
        raise OSError(code, os.strerror(code), str(tmp))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_program_error_is_not_disguised(tmp_path):
    with pytest.raises(OSError, match="unrelated"), atomic_file(tmp_path / "x"):
        raise OSError(errno.EIO, "unrelated", "/some/input")


def test_leftovers_of_a_killed_run_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "out.ome.tif"
    host = socket.gethostname()
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process
    dead = tmp_path / f".out.ome.tif.{host}-{dead_pid}.abc.tmp"
    live = tmp_path / f".out.ome.tif.{host}-{os.getpid()}.def.tmp"
    dead_dir = tmp_path / f".out.ome.tif.{host}-{dead_pid}.ghi.tmp"
    other = tmp_path / ".other.tif.x.tmp"
    for p in (dead, live, other):
        p.write_text("partial")
    dead_dir.mkdir()
    with atomic_file(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert not dead.exists() and not dead_dir.exists()
    assert live.exists() and other.exists()


def test_temp_dir_beside_reports_a_missing_parent(tmp_path):
    with pytest.raises(LabelFreeError, match="does not exist"):
        temp_dir_beside(tmp_path / "missing" / "model")
    made = temp_dir_beside(tmp_path / "model")
    assert made.is_dir() and made.name.startswith(".model.")


def test_error_text_names_the_path(tmp_path):
    err = files.write_error(tmp_path / "a.tif", OSError(errno.EACCES, "Permission denied"))
    assert str(tmp_path / "a.tif") in str(err) and "permission denied" in str(err)
