"""Several training processes (DistributedDataParallel over gloo on the CPU), and resuming alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from safetensors import safe_open

from napari_labelfree.core.bundle import open_bundle
from napari_labelfree.core.events import Notice
from napari_labelfree.core.train import CHECKPOINT_NAME, LOG_NAME, TrainConfig, iter_train
from napari_labelfree.core.train.ddp import Ranks

# one rank of a two-process run: every file written is recorded with the rank that wrote it
RANK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import numpy as np
    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.train import ImagePair, TrainConfig, iter_train, ddp, loop, state

    out, record = Path(sys.argv[1]), Path(sys.argv[2])
    rank = os.environ["RANK"]

    def recorded(name, real):
        def wrapper(*args, **kwargs):
            (record / f"{name}.rank{rank}").touch()
            return real(*args, **kwargs)
        return wrapper

    # the writers, wherever the run calls them from (the loop, or its state's saving)
    for name in ("save_checkpoint", "write_bundle_files", "TrainLog", "write_loss_curve"):
        held = [m for m in (loop, state) if hasattr(m, name)]
        assert held, name
        for module in held:
            setattr(module, name, recorded(name, getattr(module, name)))
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(2):
        s = rng.normal(size=(8, 24, 24)).astype(np.float32)
        pairs.append(ImagePair(s, np.roll(s, 1, axis=2) * 2, None, f"r{i}"))
    spec = ModelSpec("dna", voxel_size_um=(0.29, 0.216, 0.216),
                     architecture=Architecture(depth=2, width=8))
    cfg = TrainConfig(iterations=4, batch_size=2, patch_shape=(4, 8, 8), checkpoint_every=2,
                      validate_every=2, seed=1, precision="fp32")
    assert ddp.init_from_env("cpu")
    try:
        ranks = ddp.Ranks.current()
        assert ranks.world == 2
        first = ranks.patch_rng(cfg.seed).integers(1 << 30)
        (record / f"first_draw.rank{rank}").write_text(str(first))
        bundle = drain(iter_train(pairs, spec, out, cfg, val=pairs[:1], device="cpu"))
        (record / f"done.rank{rank}").write_text(str(bundle.spec.metrics["iterations"]))
    finally:
        ddp.shutdown()
    """
)


def _torchrun(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _random_pairs():
    from napari_labelfree.core.train import ImagePair

    rng = np.random.default_rng(0)
    pairs = []
    for i in range(2):
        s = rng.normal(size=(8, 24, 24)).astype(np.float32)
        pairs.append(ImagePair(s, np.roll(s, 1, axis=2) * 2, None, f"r{i}"))
    return pairs


def test_two_processes_train_rank0_writes_and_one_process_resumes(tmp_path):
    from napari_labelfree.core.config import Architecture, ModelSpec

    script, out, record = tmp_path / "rank.py", tmp_path / "model", tmp_path / "record"
    script.write_text(RANK_SCRIPT)
    record.mkdir()
    done = _torchrun([str(script), str(out), str(record)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    written = sorted(p.name for p in record.iterdir())
    # both ranks trained to the end; rank 0 alone wrote checkpoint, log, curve and bundle
    assert {"done.rank0", "done.rank1"} <= set(written)
    assert {
        "save_checkpoint.rank0",
        "write_bundle_files.rank0",
        "TrainLog.rank0",
        "write_loss_curve.rank0",
    } <= set(written)
    assert not [n for n in written if n.endswith(".rank1") and not n.startswith(("done", "first"))]
    # each rank draws its own patches
    draws = {(record / f"first_draw.rank{r}").read_text() for r in (0, 1)}
    assert len(draws) == 2
    with safe_open(str(out / CHECKPOINT_NAME), framework="pt") as f:
        meta = json.loads(f.metadata()["napari_labelfree_checkpoint"])
        assert not [k for k in f.keys() if k.startswith("model.module.")]  # noqa: SIM118
    assert meta["iteration"] == 4
    assert len((out / LOG_NAME).read_text().splitlines()) == 5  # header + 4 rows, once

    # the two-process checkpoint resumes in one process
    spec = ModelSpec(
        "dna", voxel_size_um=(0.29, 0.216, 0.216), architecture=Architecture(depth=2, width=8)
    )
    cfg = TrainConfig(iterations=6, batch_size=2, patch_shape=(4, 8, 8), checkpoint_every=2, seed=1)
    events = []
    gen = iter_train(_random_pairs(), spec, out, cfg, device="cpu", resume=True)
    bundle = _drain_collect(gen, events)
    assert any(isinstance(e, Notice) and "resumed from iteration 4" in e.text for e in events)
    assert bundle.spec.metrics["iterations"] == 6
    assert open_bundle(out).spec.metrics["iterations"] == 6


def _drain_collect(gen, events):
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return stop.value


def test_rank_streams():
    assert Ranks().main and not Ranks().distributed
    a = Ranks(0, 2).patch_rng(3).integers(1 << 30, size=4)
    assert np.array_equal(a, np.random.default_rng(3).integers(1 << 30, size=4))
    b = Ranks(1, 2).patch_rng(3).integers(1 << 30, size=4)
    assert not np.array_equal(a, b)
