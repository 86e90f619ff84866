"""Helpers of the bad-input catalogue: break files and models, run `labelfree`, snapshot folders."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_labelfree.cli import main
from napari_labelfree.core.bundle import CONFIG_NAME, WEIGHTS_NAME

HANG_SECONDS = 60  # a case still running after this is a hang (a FIFO read, a memory bomb)


def break_model(folder: Path, how: str) -> Path:
    """Damage a copy of a model folder in one of the ways users meet."""
    cfg = folder / CONFIG_NAME
    if how == "not-json":
        cfg.write_text("{ this is not json", encoding="utf-8")
    elif how == "list":
        cfg.write_text("[1, 2, 3]", encoding="utf-8")
    elif how == "schema-abc":
        d = json.loads(cfg.read_text())
        d["schema_version"] = "abc"
        cfg.write_text(json.dumps(d))
    elif how == "wrong-type":
        d = json.loads(cfg.read_text())
        d["architecture"]["depth"] = "four"
        cfg.write_text(json.dumps(d))
    elif how == "unknown-architecture-key":  # a typo, or a newer version's setting
        d = json.loads(cfg.read_text())
        d["architecture"]["dropout"] = 0.5
        cfg.write_text(json.dumps(d))
    elif how == "no-weights":
        (folder / WEIGHTS_NAME).unlink()
    elif how == "garbage-weights":
        (folder / WEIGHTS_NAME).write_bytes(os.urandom(300))
    elif how == "weights-misfit":
        d = json.loads(cfg.read_text())
        d["architecture"]["width"] = 4
        cfg.write_text(json.dumps(d))
    elif how == "nan-weights":
        from safetensors.numpy import load_file, save_file

        state = load_file(folder / WEIGHTS_NAME)
        save_file(
            {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in state.items()},
            folder / WEIGHTS_NAME,
        )
    elif how == "binary-config":
        cfg.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    else:
        raise ValueError(how)
    return folder


def predict_argv(assets, output: Path, *extra: str) -> list[str]:
    """``labelfree predict`` of the shared OME-TIFF's bright-field channel with the tiny model."""
    return [
        "predict",
        str(assets.good),
        "--channel",
        "bright-field",
        "-m",
        str(assets.model),
        "-o",
        str(output),
        *extra,
    ]


def snapshot(*folders: Path) -> dict[str, tuple]:
    """Every file and folder under ``folders``: kind, size, mtime and content hash."""
    state: dict[str, tuple] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for d in dirnames:
                state[os.path.join(dirpath, d)] = ("dir",)
            for f in filenames:
                p = os.path.join(dirpath, f)
                st = os.lstat(p)
                if not os.path.isfile(p) or os.path.islink(p):
                    state[p] = ("special", st.st_mode)
                    continue
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                state[p] = ("file", st.st_size, st.st_mtime_ns, digest)
    return state


@dataclass
class Outcome:
    code: int
    out: str
    err: str


class Hang(Exception):
    pass


def run_cli(argv: list[str], capsys) -> Outcome:
    """``labelfree argv`` in this process; a run past HANG_SECONDS is stopped as a hang."""

    def on_alarm(signum, frame):
        raise Hang(f"labelfree {' '.join(argv)} ran past {HANG_SECONDS} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HANG_SECONDS)
    try:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    captured = capsys.readouterr()
    return Outcome(int(code), captured.out, captured.err)


def message_line(err: str) -> str:
    """The one line a failed command must print (argparse may put its usage lines first)."""
    # what a terminal shows: a progress bar redrawn with carriage returns ends as its last state
    lines = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    lines = [line for line in lines if line.strip()]
    assert lines, "nothing on stderr"
    *before, last = lines
    # only argparse's usage block may come before the message
    assert not before or before[0].startswith("usage:"), f"more than one line on stderr:\n{err}"
    assert all(line.startswith(("usage:", " ")) for line in before), f"stderr:\n{err}"
    return last
