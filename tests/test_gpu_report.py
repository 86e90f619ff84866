"""benchmarks/gpu_report.py runs through on tiny sizes on any machine (its figures are not tested).

The one GPU session that runs it must not find a broken script: this runs the in-process steps
(tile, end to end with the reference, warm first overlay, accelerations) on the CPU. The steps in
fresh processes (the whole command, training, torch.compile) take a minute more on a CPU and are
run by hand with ``--small`` (docs/performance.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_report.py"


def test_gpu_report_small_runs_through(tmp_path):
    out = tmp_path / "report.json"
    cmd = [sys.executable, str(SCRIPT), "--small", "--device", "cpu", "--json", str(out),
           "--skip-process", "--skip-train", "--skip-compile"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())
    what = [r["what"] for r in rows]
    assert any(w.startswith("one 16x64x64 tile") for w in what)
    end = next(r for r in rows if r["what"].startswith("iter_predict_volume end to end"))
    assert end["r_vs_fp32"] > 0.9999 and end["reference_mvox_s"] > 0
    assert any(w.startswith("warm first overlay") for w in what)
    same = next(r for r in rows if r["what"].startswith("device path vs CPU path"))
    assert same["r"] > 0.99999  # on the CPU both are the CPU path: a check of the check
    assert "| what | measured |" in done.stdout  # the table for docs/performance.md


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the full report starts")
def test_gpu_report_without_a_gpu_says_so_in_one_line():
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert len(done.stdout.strip().splitlines()) == 1 and "no CUDA GPU" in done.stdout
