"""Tally the bad-input catalogue (tests/bad_inputs) outside pytest: what each case ended in.

    PYTHONPATH=src python benchmarks/bad_inputs_tally.py [--skip ID,ID] [--show]

Runs every case of ``tests/bad_inputs/test_catalogue.py`` through ``labelfree`` in this process
and counts the ways a case can fall short: a traceback (an exception escaped, or "Traceback"
printed), a hang (past the harness's limit), a silent wrong (exit 0 on a bad input, or a message
that does not name the problem), more than one line, a file that appeared, and data lost (an
existing file changed or gone). Point PYTHONPATH at another checkout's src to tally that one;
a case that blocks where no signal reaches it (an older version reading a FIFO) is counted as a
hang with ``--skip``.

The faults from outside (signals and a full disk mid-prediction, read-only mounts, full disks in
training and export) and the scheduler addresses where no Dask scheduler answers need
subprocesses, patched writers or a server on loopback: they are pytest tests only
(tests/bad_inputs/test_faults.py, test_scheduler.py) and are not counted here; so are the runs
that meet other runs (a retry after a diverged run, two trainings into one folder, a NaN starting
model: test_training_runs.py) and the legal Zarr stores with left-out chunks (test_zarr_inputs.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "bad_inputs"))

import pytest  # noqa: E402  (MonkeyPatch, and the catalogue's skips)
from bad_input_harness import Hang, message_line, snapshot  # noqa: E402
from test_catalogue import CASES, MONKEY_SETUPS, SETUPS  # noqa: E402

from conftest import assets as make_assets  # noqa: E402
from napari_labelfree.cli import main  # noqa: E402
from napari_labelfree.core import bundle as bundle_mod  # noqa: E402


class _Factory:
    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=name, dir=self.root))
        return path


def _run(argv: list[str]) -> tuple[int | None, str, str, str | None]:
    import signal

    out, err = io.StringIO(), io.StringIO()
    escaped = None

    def on_alarm(signum, frame):
        raise Hang("hang")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(60)
    code: int | None = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except Hang:
                escaped = "hang"
            except BaseException as e:  # what a user would see as a traceback
                escaped = f"{type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, out.getvalue(), err.getvalue(), escaped


def main_tally() -> int:
    root = Path(tempfile.mkdtemp(prefix="bad-inputs-"))
    assets = make_assets.__wrapped__(_Factory(root))
    tally: Counter[str] = Counter()
    short: list[str] = []
    skip = set(sys.argv[sys.argv.index("--skip") + 1].split(",")) if "--skip" in sys.argv else set()
    for case in CASES:
        if case.id in skip:
            tally["cases tried"] += 1
            tally["hang"] += 1
            short.append(f"  {case.id}: hang (skipped)")
            continue
        work = Path(tempfile.mkdtemp(prefix="work-", dir=root))
        mp = pytest.MonkeyPatch()
        mp.chdir(work)
        mp.setenv(bundle_mod.ENV_VAR, str(assets.zoo))
        mp.setattr(bundle_mod, "user_models_dir", lambda w=work: w / "user-models")
        try:
            if case.setup in MONKEY_SETUPS:
                MONKEY_SETUPS[case.setup](work, assets, mp)
            elif case.setup:
                SETUPS[case.setup](work, assets)
            argv = shlex.split(
                case.args.format(
                    w=work,
                    good=assets.good,
                    plain=assets.plain,
                    model=assets.model,
                    zoo=assets.zoo,
                )
            )
            before = snapshot(work, assets.root)
            code, out, err, escaped = _run(argv)
            after = snapshot(work, assets.root)
        finally:
            mp.undo()
        tally["cases tried"] += 1
        problems = []
        if escaped == "hang":
            problems.append("hang")
        elif escaped or "Traceback" in out + err:
            problems.append("traceback")
        elif code == 0:
            problems.append("silent wrong (exit 0)")
        else:
            try:
                line = message_line(err)
                if not re.search(case.match, line, re.IGNORECASE):
                    problems.append("silent wrong (message misses the problem)")
            except AssertionError:
                problems.append("more than one line")
        if any(p in before and after.get(p) != before[p] for p in before):
            problems.append("data lost")
        if set(after) - set(before):
            problems.append("file appeared")
        for p in problems:
            tally[p] += 1
        if problems:
            short.append(f"  {case.id}: {', '.join(problems)}")
        said = err.strip().rsplit("\n", 1)[-1].rsplit("\r", 1)[-1] if "--show" in sys.argv else ""
        print(f"{case.id}: {', '.join(problems) or 'ok'} {said}", file=sys.__stdout__, flush=True)
    for key in (
        "cases tried",
        "traceback",
        "hang",
        "silent wrong (exit 0)",
        "silent wrong (message misses the problem)",
        "more than one line",
        "file appeared",
        "data lost",
    ):
        print(f"{key:45s} {tally[key]}")
    print("\n".join(short))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main_tally())
