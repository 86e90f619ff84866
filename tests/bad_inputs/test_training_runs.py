"""Training runs that meet other runs' leftovers: a failed run's log, a run still going, a broken start.

A retry after a run that left no model just works (the earlier log is kept beside the new one);
a second run into a folder another run is writing is refused in one line, with nothing mixed; a
starting model with NaN weights is named as broken, not blamed on the learning rate.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from bad_input_harness import break_model, run_cli, snapshot

from napari_labelfree.core.train import folder as train_folder


def _train(assets, out, *extra: str) -> list[str]:
    return [
        "train",
        str(assets.good),
        "-o",
        str(out),
        "--signal-channel",
        "bright-field",
        "--target-channel",
        "GFP",
        "--structure",
        "dna",
        "--init",
        "none",
        "--depth",
        "1",
        "--width",
        "2",
        "--patch-shape",
        "8,16,16",
        "--batch-size",
        "1",
        "--iterations",
        "4",
        "--checkpoint-every",
        "4",
        "--val-strip",
        "0",
        "--device",
        "cpu",
        *extra,
    ]


def _last_line(err: str) -> str:
    # "training dna: ..." (what the run is about to do) comes first
    return err.strip().splitlines()[-1]


def _diverging(monkeypatch) -> None:
    """Every training step's loss is NaN: the run diverges before its first checkpoint."""
    from napari_labelfree.core.train.engine import Engine

    real = Engine.step

    def step(self, x, y):
        return real(self, x, y) * float("nan")

    monkeypatch.setattr(Engine, "step", step)


def test_a_retry_after_a_diverged_run_that_left_no_model_just_works(
    work, assets, capsys, monkeypatch
):
    out = work / "m"
    with monkeypatch.context() as m:
        _diverging(m)
        failed = run_cli(_train(assets, out), capsys)
    assert failed.code == 2 and "Traceback" not in failed.err, failed.err
    assert "before the first checkpoint, so no weights were kept" in _last_line(failed.err)
    assert sorted(p.name for p in out.iterdir()) == ["train_log.csv"]  # no lock file left
    earlier_log = (out / "train_log.csv").read_text()

    retry = run_cli(_train(assets, out), capsys)
    assert retry.code == 0, retry.err
    assert retry.out.startswith(f"wrote {out} (4 iterations")
    assert f"{out} held only the log of an earlier run that left no model" in retry.err
    assert (out / train_folder.EARLIER_LOG_NAME).read_text() == earlier_log
    assert (out / "config.json").is_file() and not (out / train_folder.LOCK_NAME).exists()


def test_a_second_run_into_a_folder_being_trained_is_refused_and_mixes_nothing(
    work, assets, capsys
):
    """Run A is past its start (its generator paused at a step); run B asks for the same folder."""
    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.data import ImagePair
    from napari_labelfree.core.io import open_image
    from napari_labelfree.core.train import TrainConfig, TrainStep, iter_train

    out = work / "m"
    with open_image(assets.good) as source:
        pair = ImagePair(source.frame(0, 1), source.frame(0, 0), (0.29,) * 3, "good")
    spec = ModelSpec(structure="dna", architecture=Architecture(depth=1, width=2))
    config = TrainConfig(
        iterations=4, batch_size=1, patch_shape=(8, 16, 16), checkpoint_every=4, val_strip=0
    )
    run_a = iter_train([pair], spec, out, config, device="cpu")
    while not isinstance(next(run_a), TrainStep):
        pass
    before = snapshot(work, assets.root)
    for extra in ((), ("--resume",), ("--overwrite",)):
        second = run_cli(_train(assets, out, *extra), capsys)
        assert second.code == 2 and "Traceback" not in second.err, second.err
        assert _last_line(second.err).startswith(
            f"labelfree train: error: another training run is writing into {out} (process "
        )
        assert snapshot(work, assets.root) == before  # nothing of B's, nothing of A's removed
    with pytest.raises(StopIteration) as done:
        while True:
            next(run_a)
    assert done.value.value.path == out and (out / "config.json").is_file()
    assert not (out / train_folder.LOCK_NAME).exists()
    # once A has finished, B is told what any finished model's folder says
    late = run_cli(_train(assets, out), capsys)
    assert late.code == 2 and "already holds a model or a training run" in _last_line(late.err)


def test_a_run_killed_while_holding_the_folder_leaves_no_lock(work, assets, capsys):
    """The lock is the system's: it goes with the process that held it, however that ends."""
    out = work / "m"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'a'); f.write('process of a test');"
            "f.flush(); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(out / train_folder.LOCK_NAME),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if sys.platform == "win32":
            pytest.skip("the holder uses fcntl")
        assert holder.stdout.readline().strip() == "held"
        refused = run_cli(_train(assets, out), capsys)
        assert refused.code == 2, refused.err
        assert "another training run is writing into" in _last_line(refused.err)
        assert "(process of a test)" in _last_line(refused.err)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    trained = run_cli(_train(assets, out), capsys)
    assert trained.code == 0, trained.err
    assert not (out / train_folder.LOCK_NAME).exists()


def test_starting_from_a_model_with_nan_weights_names_the_model_as_broken(work, assets, capsys):
    start = work / "nan-model"
    shutil.copytree(assets.model, start)
    break_model(start, "nan-weights")
    argv = _train(assets, work / "m")
    argv[argv.index("--init") + 1] = str(start)
    for flag in ("--depth", "--width"):  # the starting model gives the network
        i = argv.index(flag)
        del argv[i : i + 2]
    before = snapshot(work, assets.root)
    result = run_cli(argv, capsys)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    line = _last_line(result.err)
    assert f"the starting model nan-model ({start}) is broken: its weights hold NaN" in line
    assert "learning rate" not in line
    assert line.endswith("train a new network (--init MODEL, or --init none for a new network)")
    assert snapshot(work, assets.root) == before
