"""`labelfree train` adapts the built-in model of the structure by default and says before/after."""

from __future__ import annotations

import numpy as np
import pytest

import napari_labelfree.core.train as core_train
from napari_labelfree.cli import main
from napari_labelfree.core.bundle import resolve_model
from napari_labelfree.core.config import Architecture, ModelSpec
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.io import write_ome_tiff
from napari_labelfree.core.train import ImagePair, TrainConfig, iter_train
from napari_labelfree.core.train.config import ADAPTATION


@pytest.fixture
def pair_file(tmp_path):
    """One registered pair, 16 x 32 x 160 pixels at 1 um: wide enough for a validation strip."""
    rng = np.random.default_rng(0)
    sig = rng.normal(100, 10, (16, 32, 160)).astype(np.float32)
    data = np.stack([sig, 3 * sig - 50])[None]
    p = tmp_path / "pair.ome.tif"
    write_ome_tiff(p, data, channel_names=["bright", "dna"], physical_sizes=(1.0, 1.0, 1.0))
    return p


def captured(monkeypatch, argv):
    seen = {}

    def capture(train, spec, out, config, **kwargs):
        seen.update(config=config, init=kwargs.get("init"))
        raise LabelFreeError("captured")
        yield  # a generator, as iter_train is

    monkeypatch.setattr(core_train, "iter_train", capture)
    assert main(argv) == 2
    return seen


def test_default_start_is_the_builtin_model_with_the_adaptation_budget(
    tmp_path, pair_file, monkeypatch, capsys
):
    base = ["train", str(pair_file), "-o", str(tmp_path / "m"), "--signal-channel", "bright"]
    seen = captured(monkeypatch, [*base, "--target-channel", "dna"])
    assert seen["init"] == resolve_model("dna").path
    cfg = seen["config"]
    assert (cfg.iterations, cfg.batch_size, cfg.patch_shape) == (
        ADAPTATION["iterations"],
        ADAPTATION["batch_size"],
        ADAPTATION["patch_shape"],
    )
    assert "starting from the built-in dna model" in capsys.readouterr().err
    # --init none: a new network, the paper's budget; sizes given win over either budget
    scratch = captured(monkeypatch, [*base, "--target-channel", "dna", "--init", "none"])
    assert scratch["init"] is None and scratch["config"].iterations == TrainConfig().iterations
    given = captured(monkeypatch, [*base, "--target-channel", "dna", "--iterations", "7"])
    assert given["config"].iterations == 7
    # no built-in model of this structure: a new network
    other = captured(monkeypatch, [*base, "--target-channel", "dna", "--structure", "my-organelle"])
    assert other["init"] is None
    # the validation strip is an option
    off = captured(monkeypatch, [*base, "--target-channel", "dna", "--val-strip", "0"])
    assert off["config"].val_strip == 0.0


def test_adapting_a_model_prints_its_score_before_and_after_on_the_strip(
    tmp_path, pair_file, capsys
):
    rng = np.random.default_rng(1)
    sig = rng.normal(size=(16, 32, 64)).astype(np.float32)
    spec = ModelSpec(
        "dna", voxel_size_um=(1.0, 1.0, 1.0), architecture=Architecture(depth=2, width=4)
    )
    cfg = TrainConfig(iterations=1, batch_size=2, patch_shape=(8, 16, 16), val_strip=0.0)
    start = drain(
        iter_train([ImagePair(sig, sig, None, "x")], spec, tmp_path / "start", cfg, device="cpu")
    )
    argv = [
        "train",
        str(pair_file),
        "-o",
        str(tmp_path / "adapted"),
        "--signal-channel",
        "bright",
        "--target-channel",
        "dna",
        "--init",
        str(start.path),
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--patch-shape",
        "8,16,16",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "validation strip" in out.err
    last = out.out.strip().splitlines()[-1]
    assert last.startswith("start: r ") and " -> adapted: r " in last
    assert last.endswith("on your held-out strip")
