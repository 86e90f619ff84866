"""`labelfree train` and `labelfree evaluate` end to end on tiny simulated files."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from napari_labelfree.cli import main
from napari_labelfree.core.io import write_ome_tiff
from napari_labelfree.core.synth import simulate


@pytest.fixture
def sim_files(tmp_path):
    paths = []
    for seed in (1, 2):
        im = simulate(
            shape=(16, 64, 64), voxel_size=(0.29, 0.108, 0.108), seed=seed, structures=("dna",)
        )
        p = tmp_path / f"field{seed}.ome.tif"
        write_ome_tiff(p, im.data, channel_names=im.channel_names, physical_sizes=im.voxel_size)
        paths.append(p)
    return paths


def test_train_then_evaluate(tmp_path, sim_files, capsys):
    model = tmp_path / "dna-model"
    rc = main(
        [
            "train",
            str(sim_files[0]),
            "-o",
            str(model),
            "--signal-channel",
            "bright-field",
            "--target-channel",
            "dna",
            "--iterations",
            "6",
            "--batch-size",
            "2",
            "--patch-shape",
            "8,16,16",
            "--depth",
            "2",
            "--width",
            "4",
            "--val",
            str(sim_files[1]),
            "--validate-every",
            "3",
            "--checkpoint-every",
            "3",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    out = capsys.readouterr()
    assert "validation Pearson r" in out.out
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["structure"] == "dna" and cfg["colormap"] == "blue"
    assert cfg["metrics"]["iterations"] == 6 and "val_nl2_mean" in cfg["metrics"]
    assert (model / "train_log.csv").is_file() and (model / "loss_curve.png").is_file()

    # resume to more iterations continues from the checkpoint
    rc = main(
        [
            "train",
            str(sim_files[0]),
            "-o",
            str(model),
            "--signal-channel",
            "0",
            "--target-channel",
            "dna",
            "--iterations",
            "8",
            "--batch-size",
            "2",
            "--patch-shape",
            "8,16,16",
            "--depth",
            "2",
            "--width",
            "4",
            "--resume",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    assert json.loads((model / "config.json").read_text())["metrics"]["iterations"] == 8
    assert "resumed from iteration 6" in capsys.readouterr().err

    metrics, plot = tmp_path / "m.csv", tmp_path / "m.png"
    rc = main(
        [
            "evaluate",
            str(model),
            f"train={sim_files[0]}",
            f"test={sim_files[1]}",
            "--signal-channel",
            "bright-field",
            "-o",
            str(metrics),
            "--plot",
            str(plot),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    # the training file's score is no held-out score, and says so; the other file's is
    err = capsys.readouterr().err
    assert "dna learned from an image of this name (field1.ome.tif)" in err
    marked = [line for line in err.splitlines() if line.endswith("(trained on it)")]
    assert len(marked) == 1 and "field1.ome.tif" in marked[0]
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["set"] for r in rows} == {"train", "test"}
    assert [r["image"] for r in rows if r["set"] == "test"] == ["field2.ome.tif", "mean", "std"]
    assert all(-1 <= float(r["pearson_r"]) <= 1 for r in rows)
    assert plot.read_bytes()[:4] == b"\x89PNG"

    # a renamed copy of the training file is the same pixels: no held-out score either
    copy = tmp_path / "renamed.ome.tif"
    shutil.copyfile(sim_files[0], copy)
    rc = main(["evaluate", str(model), str(copy), "--signal-channel", "bright-field"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "dna learned from these very pixels (its training image field1.ome.tif)" in err
    assert [line for line in err.splitlines() if line.endswith("(trained on it)")] == [
        line for line in err.splitlines() if "renamed.ome.tif" in line and "r=" in line
    ]


def test_train_errors_are_one_line(tmp_path, sim_files, capsys):
    rc = main(
        [
            "train",
            str(sim_files[0]),
            "-o",
            str(tmp_path / "m"),
            "--signal-channel",
            "bright-field",
            "--target-channel",
            "tom20",
            "--iterations",
            "1",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "no channel named 'tom20'" in err and "Traceback" not in err
    rc = main(
        [
            "train",
            str(sim_files[0]),
            "-o",
            str(tmp_path / "m"),
            "--signal-channel",
            "bright-field",
            "--target-channel",
            "dna",
            "--patch-shape",
            "12,16,16",
            "--depth",
            "3",
            "--iterations",
            "1",
        ]
    )
    assert rc == 2 and "multiple of 8" in capsys.readouterr().err


def train_argv(data, out, *extra, iterations=2, batch_size=1):
    """A quick `labelfree train` command line on the simulated field (tiny network, CPU)."""
    return [
        "train",
        str(data),
        "-o",
        str(out),
        "--signal-channel",
        "bright-field",
        "--target-channel",
        "dna",
        "--iterations",
        str(iterations),
        "--batch-size",
        str(batch_size),
        "--patch-shape",
        "8,16,16",
        "--depth",
        "2",
        "--width",
        "4",
        "--device",
        "cpu",
        *extra,
    ]


def test_ctrl_c_keeps_the_weights_and_says_so(tmp_path, sim_files, capsys, monkeypatch):
    import napari_labelfree.core.train as core_train

    real_iter_train = core_train.iter_train

    def interrupted_after_three_steps(*args, **kwargs):
        # Ctrl-C arrives inside the running generator, as SIGINT does during a step
        gen = real_iter_train(*args, **kwargs)
        steps = 0
        event = next(gen)
        while True:
            steps += isinstance(event, core_train.TrainStep)
            event = gen.throw(KeyboardInterrupt()) if steps == 3 else next(gen)
            yield event

    monkeypatch.setattr(core_train, "iter_train", interrupted_after_three_steps)
    model = tmp_path / "dna-model"
    rc = main(train_argv(sim_files[0], model, iterations=50, batch_size=2))
    assert rc == 130
    err = capsys.readouterr().err
    assert "interrupted; the weights so far are saved" in err and "nothing half-written" not in err
    assert "Traceback" not in err
    cfg = json.loads((model / "config.json").read_text())  # a usable bundle
    assert (model / "weights.safetensors").is_file() and cfg["structure"] == "dna"


def test_output_that_is_a_file_and_resume_over_a_model_are_refused(tmp_path, sim_files, capsys):
    target = tmp_path / "model.txt"
    target.write_text("keep")
    assert main(train_argv(sim_files[0], target)) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "is a file, not a folder" in errors[0] and "Traceback" not in err
    assert target.read_text() == "keep"

    model = tmp_path / "m"
    assert main(train_argv(sim_files[0], model)) == 0
    (model / "checkpoint.safetensors").unlink()
    weights = (model / "weights.safetensors").read_bytes()
    capsys.readouterr()
    assert main(train_argv(sim_files[0], model, "--resume")) == 2
    err = capsys.readouterr().err
    assert "no training checkpoint" in err and "--overwrite" in err and "Traceback" not in err
    assert (model / "weights.safetensors").read_bytes() == weights
    assert main(train_argv(sim_files[0], model, "--resume", "--overwrite")) == 0


def test_gpus_relaunches_the_same_command(tmp_path, sim_files, monkeypatch):
    from napari_labelfree.cli import build_parser
    from napari_labelfree.cli import train as cli_train

    argv = train_argv(sim_files[0], tmp_path / "m", "--val", str(sim_files[1]), "--gpus", "2")
    args = build_parser().parse_args(argv)
    words = cli_train._argv_of(args.train_parser, args, skip={"gpus"})
    again = build_parser().parse_args(["train", *words])
    same = {k for k in vars(args) if k not in ("gpus", "train_parser")}
    assert {k: getattr(again, k) for k in same} == {k: getattr(args, k) for k in same}
    launched = []
    monkeypatch.setattr("subprocess.call", lambda cmd: launched.append(cmd) or 0)
    assert main(argv) == 0
    cmd = launched[0]
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert cmd[5:8] == ["-m", "napari_labelfree", "train"] and "--gpus" not in cmd


def _captured_train(monkeypatch, argv):
    """Run `labelfree train` up to the core call; return the config and init it was given."""
    import napari_labelfree.core.train as core_train
    from napari_labelfree.core.errors import LabelFreeError

    seen = {}

    def capture(train, spec, out, config, **kwargs):
        seen.update(config=config, init=kwargs.get("init"), spec=spec)
        raise LabelFreeError("captured")
        yield  # a generator, as iter_train is

    monkeypatch.setattr(core_train, "iter_train", capture)
    assert main(argv) == 2
    return seen


def test_train_recipe_and_init_options(tmp_path, sim_files, monkeypatch):
    base = [
        "train",
        str(sim_files[0]),
        "-o",
        str(tmp_path / "m"),
        "--signal-channel",
        "bright-field",
        "--target-channel",
        "dna",
    ]
    default = _captured_train(monkeypatch, base)["config"]
    assert not default.augment and default.keep_best  # augmentation on request (measured)
    on = _captured_train(monkeypatch, [*base, "--augment", "--schedule", "cosine"])
    assert on["config"].augment is True and on["config"].schedule == "cosine"
    off = _captured_train(monkeypatch, [*base, "--no-augment"])
    assert off["config"].augment is False
    paper = _captured_train(monkeypatch, [*base, "--paper-recipe", "--lr", "0.002"])["config"]
    assert (paper.augment, paper.optimizer, paper.schedule, paper.loss, paper.keep_best) == (
        False,
        "adam",
        "constant",
        "mse",
        False,
    )
    assert paper.lr == 0.002
    tuned = _captured_train(monkeypatch, [*base, "--init", "dna", "--loss", "l1+ms-ssim"])
    assert tuned["init"] == "dna" and tuned["config"].loss == "l1+ms-ssim"


def test_predict_tta_flag():
    from napari_labelfree.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["predict", "a.tif", "-m", "dna", "-o", "p.tif", "--tta"]).tta == "yx"
    assert parser.parse_args(["predict", "a.tif", "-m", "dna", "-o", "p.tif"]).tta == "none"


def test_a_log_file_gets_progress_lines_with_the_time_left(capsys, monkeypatch):
    """Without a terminal (a batch job's log) no bar is drawn: a line after the first half
    minute says the rate and the time left, then one every five minutes; none at the last step."""
    from napari_labelfree.cli import _progress
    from napari_labelfree.cli.train import drive_training
    from napari_labelfree.core.train import TrainStep, Validated

    now = [0.0]
    real = _progress.LogLines
    monkeypatch.setattr(_progress, "LogLines", lambda: real(clock=lambda: now[0]))

    def run():  # 1000 iterations at 2 it/s, validated at 400
        for it in range(1, 1001):
            now[0] = it / 2.0
            yield TrainStep(it, 1000, 0.5, 2.0)
            if it == 400:
                yield Validated(400, 0.25, 0.61)
        return "model"

    assert drive_training(run()) == "model"
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "iteration" in ln]
    # the first after 30 s of training (iteration 61), then every 300 s (600 iterations)
    assert [ln.split(" of ")[0].split()[-1] for ln in lines] == ["61", "661"]
    assert "of 1000, loss 0.5000, 2.00 it/s, about 8 min left" in lines[0]
    assert lines[1].endswith("val loss 0.2500, val r 0.610")


def test_a_terminal_gets_the_bar_and_no_log_lines(capsys, monkeypatch):
    import sys

    from napari_labelfree.cli import _progress
    from napari_labelfree.cli.train import drive_training
    from napari_labelfree.core.train import TrainStep

    now = [0.0]
    real = _progress.LogLines
    monkeypatch.setattr(_progress, "LogLines", lambda: real(clock=lambda: now[0]))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)

    def run():  # a line would be due at every step after the first
        for it in range(1, 101):
            now[0] = it * 60.0
            yield TrainStep(it, 100, 0.5, 2.0)
        return "model"

    assert drive_training(run()) == "model"
    assert "labelfree train: iteration" not in capsys.readouterr().err


def test_the_automatic_strip_names_the_options_that_change_it(tmp_path, write_positions, capsys):
    """The core says what it held out in words the Train widget shows as they are; the command
    line adds its own options to the same line."""
    write_positions(tmp_path / "pair.ome.tif", n=1, shape=(8, 32, 128))
    small = ["--iterations", "2", "--batch-size", "1", "--patch-shape", "4,16,16", "--depth", "2"]
    small += ["--width", "4", "--init", "none", "--device", "cpu", "--structure", "dna"]
    pair = [str(tmp_path / "pair.ome.tif"), "--signal-channel", "0", "--target-channel", "1"]
    assert main(["train", *pair, "-o", str(tmp_path / "m"), *small]) == 0
    err = capsys.readouterr().err
    assert (
        "keeps the best weights (give --val DATA, or --val-strip 0 to train on everything)" in err
    )
