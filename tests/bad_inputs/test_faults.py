"""Faults from outside: a full disk, a read-only folder, and the signals schedulers send.

Each must end the command with one line and leave no file (the output, or a temporary) behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bad_input_harness import message_line, predict_argv, run_cli, snapshot

from napari_labelfree.core import files

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def _predict(assets, work, *extra: str) -> list[str]:
    return predict_argv(assets, work / "out.ome.tif", "--device", "cpu", *extra)


@pytest.mark.parametrize(
    ("code", "why"),
    [(errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "quota"), (errno.EROFS, "read-only")],
)
def test_a_write_that_fails_half_way_is_one_line_and_leaves_nothing(
    work, assets, capsys, monkeypatch, code, why
):
    """The disk fills (or turns read-only) while the prediction is being written."""
    import tifffile

    real = tifffile.imwrite

    def fails_half_way(path, *args, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(tifffile, "imwrite", fails_half_way)
    before = snapshot(work, assets.root)
    result = run_cli(_predict(assets, work), capsys)
    monkeypatch.setattr(tifffile, "imwrite", real)
    assert result.code == 2 and "Traceback" not in result.err
    assert why in message_line(result.err) and "out.ome.tif" in message_line(result.err)
    assert snapshot(work, assets.root) == before


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_folder_that_refuses_new_files_is_one_line(work, assets, capsys, monkeypatch, code):
    """As root chmod stops nothing: the refusal is patched into the temporary file's creation."""

    def refuses(*args, **kwargs):
        raise OSError(code, os.strerror(code), kwargs.get("dir"))

    monkeypatch.setattr(files.tempfile, "mkstemp", refuses)
    monkeypatch.setattr(files.tempfile, "mkdtemp", refuses)
    before = snapshot(work, assets.root)
    for argv in (
        _predict(assets, work),
        ["init-model", str(work / "m"), "--structure", "dna", "--depth", "1", "--width", "2"],
        ["synth", str(work / "s.ome.tif"), "--shape", "8,16,16", "--timepoints", "1"],
    ):
        result = run_cli(argv, capsys)
        assert result.code == 2 and "Traceback" not in result.err, result.err
        assert f"cannot write {work}" in message_line(result.err)
    assert snapshot(work, assets.root) == before


def _small_tmpfs(path: Path) -> bool:
    path.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def test_a_really_full_disk(tmp_path, assets, capsys):
    """On a 64 KiB tmpfs (where this machine lets a test mount one) a synth does not fit."""
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk):
        pytest.skip("cannot mount a small tmpfs here (needs Linux and root)")
    try:
        (disk / "keep.txt").write_text("already here")
        before = snapshot(disk)
        result = run_cli(
            ["synth", str(disk / "s.ome.tif"), "--shape", "16,64,64", "--structures", "dna"],
            capsys,
        )
        assert result.code == 2 and "Traceback" not in result.err, result.err
        assert "the disk is full" in message_line(result.err)
        assert snapshot(disk) == before
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)


def _interrupted_prediction(tmp_path, assets, rng, mode: str, sig: int | None):
    """Run slow_predict.py in ``mode``; once torch is busy on frame 1, send ``sig`` (or nothing).

    Returns the process, its stderr and whether the working folder is as before.
    """
    from napari_labelfree.core.io import write_ome_tiff

    work = tmp_path / "work"
    work.mkdir()
    three_frames = rng.normal(100, 10, size=(3, 1, 8, 16, 16)).astype("float32")
    source = write_ome_tiff(work / "lapse.ome.tif", three_frames, None, ["bf"], (0.29,) * 3)
    (work / "out.ome.tif").write_bytes(b"an older prediction")
    marker = tmp_path / "started"
    before = snapshot(work)
    argv = [
        "predict",
        str(source),
        "-m",
        str(assets.model),
        "-o",
        str(work / "out.ome.tif"),
        "--overwrite",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "slow_predict.py"), str(marker), mode, "--", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        if sig is not None:
            deadline = time.monotonic() + 300
            while not marker.exists():  # frame 0 is in the temporary file, torch is on frame 1
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the prediction never reached its second frame"
                time.sleep(0.05)
            assert any(p.name.endswith(".tmp") for p in work.iterdir()), "no half-written file"
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, err, snapshot(work) == before


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [
        (signal.SIGTERM, 143, "interrupted by SIGTERM"),
        (signal.SIGHUP, 129, "interrupted by SIGHUP"),
        (signal.SIGINT, 130, "interrupted;"),
    ],
)
def test_a_signal_half_way_through_a_prediction_leaves_nothing(
    tmp_path, assets, rng, sig, code, said
):
    """What `timeout`, a batch scheduler or a closed terminal sends, at the worst moment.

    Torch is at work in the thread predicting ahead of the writer when the signal comes: the
    command waits for it to stop, then exits 128 + signal (a thread left in torch at exit aborted
    the process, exit 134, after the right message).
    """
    proc, err, unchanged = _interrupted_prediction(tmp_path, assets, rng, "signal", sig)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "terminate called" not in err
    # progress lines of the frames done, then the one line saying what happened
    last = err.strip().splitlines()[-1]
    assert last.startswith("labelfree predict: ") and said in last
    assert "nothing half-written" in last
    # the older prediction is untouched and no temporary is left
    assert unchanged


def test_a_disk_filling_up_half_way_through_a_time_lapse_is_one_line(tmp_path, assets, rng):
    """The write of frame 0 fails (ENOSPC) while torch predicts frame 1 in the background."""
    proc, err, unchanged = _interrupted_prediction(tmp_path, assets, rng, "full-disk", None)
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "terminate called" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("labelfree predict: error: cannot write ")
    assert last.endswith("the disk is full; choose another output location")
    assert unchanged


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    """A Ctrl-C during the imports, before the command runs: one line, exit 130."""
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def slow(name, *a, **k):\n"
        "    if name == 'argparse' or name.endswith('_args'):\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *a, **k)\n"
        "from napari_labelfree.cli import main\n"
        "builtins.__import__ = slow\n"
        "sys.exit(main(['models']))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "labelfree: interrupted while starting; nothing was done"


def test_signal_handlers_are_restored(work, assets, capsys):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    run_cli(["models"], capsys)
    run_cli(["predict", "nope.tif", "-m", str(assets.model), "-o", "x.ome.tif"], capsys)
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_ome_zarr_on_a_full_disk_is_one_line_that_names_what_is_kept(
    work, assets, capsys, monkeypatch
):
    """The disk fills while a frame is written: the partial store is kept, and said so."""
    from napari_labelfree.core.io import ome_zarr_out

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ome_zarr_out.OmeZarrOutput, "write_block", full)
    argv = _predict(assets, work)
    argv[argv.index("-o") + 1] = str(work / "out.ome.zarr")
    result = run_cli(argv, capsys)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    last = result.err.strip().splitlines()[-1]
    assert "cannot write" in last and "the disk is full" in last
    assert "0 of 1 frames of out.ome.zarr are kept in" in last and "--resume" in last
    assert not (work / "out.ome.zarr").exists()


def test_an_ome_zarr_that_cannot_be_created_leaves_nothing(work, assets, capsys, monkeypatch):
    from napari_labelfree.core.io import ome_zarr_out

    real = ome_zarr_out._create_store

    def half_made(store, *args):
        real(store, *args)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ome_zarr_out, "_create_store", half_made)
    before = snapshot(work, assets.root)
    argv = _predict(assets, work)
    argv[argv.index("-o") + 1] = str(work / "out.ome.zarr")
    result = run_cli(argv, capsys)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert "the disk is full" in message_line(result.err)
    assert snapshot(work, assets.root) == before


@pytest.mark.parametrize("at", ["checkpoint", "model"])
def test_training_onto_a_full_disk_is_one_line(work, assets, capsys, monkeypatch, at):
    """safetensors reports a full disk as its own error type ("... (os error 28)")."""
    import safetensors.torch
    from safetensors import SafetensorError

    from napari_labelfree.core.train import checkpoint

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left (os error 28)")

    if at == "checkpoint":
        monkeypatch.setattr(checkpoint, "save_file", full)
    else:
        monkeypatch.setattr(safetensors.torch, "save_file", full)
    argv = [
        "train",
        str(assets.good),
        "--signal-channel",
        "bright-field",
        "--target-channel",
        "GFP",
        "--iterations",
        "2",
        "--batch-size",
        "1",
        "--patch-shape",
        "8,16,16",
        "--depth",
        "1",
        "--width",
        "2",
        "--device",
        "cpu",
        "-o",
        str(work / "m"),
    ]
    result = run_cli(argv, capsys)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("labelfree train: error: cannot write ") and "the disk is full" in last
    assert not [p for p in (work / "m").iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_file_system_is_named_so_before_any_work(work, assets, capsys, monkeypatch):
    """Export and predict into a missing folder on a read-only mount: "read-only", at once."""
    from types import SimpleNamespace

    from napari_labelfree.core import weights

    def no_network(*args, **kwargs):
        raise AssertionError("the network was loaded before the output was checked")

    monkeypatch.setattr(weights, "load_network", no_network)
    monkeypatch.setattr(files.os, "access", lambda *a, **k: False)
    monkeypatch.setattr(files.os, "statvfs", lambda p: SimpleNamespace(f_flag=os.ST_RDONLY))
    before = snapshot(work, assets.root)
    predict = _predict(assets, work)
    predict[predict.index("-o") + 1] = str(work / "missing" / "out.ome.tif")
    for argv in (["export", str(assets.model), "-o", str(work / "missing" / "m.zip")], predict):
        result = run_cli(argv, capsys)
        assert result.code == 2 and "Traceback" not in result.err, result.err
        assert message_line(result.err).endswith(
            "the file system is read-only; choose another output location"
        )
    assert snapshot(work, assets.root) == before


def test_an_export_onto_a_full_disk_is_one_line_and_leaves_nothing(
    work, assets, capsys, monkeypatch
):
    """torch's own writer aborts the process on a full disk: the files go through Python."""
    from pathlib import Path as _Path

    real = _Path.write_bytes

    def full(self, data):
        if self.name == "weights.pt":
            real(self, data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data)

    monkeypatch.setattr(_Path, "write_bytes", full)
    before = snapshot(work, assets.root)
    result = run_cli(["export", str(assets.model), "-o", str(work / "m.zip")], capsys)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert message_line(result.err) == (
        f"labelfree export: error: cannot write {work / 'm.zip'}: the disk is full; choose "
        "another output location"
    )
    assert snapshot(work, assets.root) == before
