"""`labelfree train --ensemble K`, then the folder used as one model by predict and models."""

from __future__ import annotations

import json

import pytest
from test_train_cli import train_argv  # tests/cli is on the path (no package)

from napari_labelfree.cli import main
from napari_labelfree.core.io import open_image, write_ome_tiff
from napari_labelfree.core.synth import simulate


@pytest.fixture
def field(tmp_path):
    im = simulate(shape=(16, 64, 64), voxel_size=(0.29, 0.108, 0.108), seed=1, structures=("dna",))
    p = tmp_path / "field.ome.tif"
    write_ome_tiff(p, im.data, channel_names=im.channel_names, physical_sizes=im.voxel_size)
    return p


def _train(data, out, *extra, iterations=2):
    """`labelfree train` on the field from scratch, all of it for training (tiny network)."""
    init = ("--init", "none", "--val-strip", "0")
    return train_argv(data, out, *init, *extra, iterations=iterations)


def test_train_an_ensemble_then_predict_with_it_as_one_model(tmp_path, field, capsys, monkeypatch):
    model = tmp_path / "models" / "dna-ens"
    assert main(_train(field, model, "--ensemble", "2")) == 0
    assert "an ensemble of 2" in capsys.readouterr().out
    assert json.loads((model / "config.json").read_text())["ensemble"]["members"] == 2

    out = tmp_path / "pred.ome.tif"
    args = ["predict", str(field), "-m", str(model), "-o", str(out), "--device", "cpu"]
    assert main([*args, "--channel", "bright-field", "--uncertainty", "--tile", "8,32,32"]) == 0
    assert open_image(out).channel_names == ["dna", "dna (uncertainty)"]

    monkeypatch.setenv("NAPARI_LABELFREE_MODELS", str(model.parent))
    capsys.readouterr()
    assert main(["models"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("dna-ens"))
    assert "3D, ensemble of 2" in row
    assert main(["models", "dna-ens"]) == 0
    assert "ensemble of 2 networks (seeds 0, 1)" in capsys.readouterr().out


@pytest.mark.parametrize("k", ["1", "11", "two"])
def test_a_bad_ensemble_size_is_one_line_before_any_work(tmp_path, field, capsys, k):
    with pytest.raises(SystemExit) as e:
        main(_train(field, tmp_path / "m", "--ensemble", k))
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1 and "--ensemble" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "m").exists()


def test_an_ensemble_cannot_be_resumed(tmp_path, field, capsys):
    rc = main(_train(field, tmp_path / "m", "--ensemble", "2", "--resume"))
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be resumed" in err[0]


def test_ctrl_c_leaves_no_ensemble_and_says_so(tmp_path, field, capsys, monkeypatch):
    import napari_labelfree.core.train.ensemble as ensemble

    real = ensemble._counted

    def interrupted(gen, index, members):
        if index == 1:  # Ctrl-C during the second member's first step
            gen.throw(KeyboardInterrupt())
        return (yield from real(gen, index, members))

    monkeypatch.setattr(ensemble, "_counted", interrupted)
    model = tmp_path / "dna-ens"
    assert main(_train(field, model, "--ensemble", "2", iterations=3)) == 130
    err = capsys.readouterr().err
    assert "no ensemble was written" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["field.ome.tif"]


def test_a_folder_with_only_an_earlier_log_keeps_it_beside_the_ensemble(tmp_path, field, capsys):
    """As a single run does: a log alone (a run that left no model) is no run to protect; the
    ensemble trains there and keeps the log as train_log.earlier.csv, and says so."""
    model = tmp_path / "dna-ens"
    model.mkdir()
    (model / "train_log.csv").write_text("iteration,loss\n1,0.5\n", encoding="utf-8")
    assert main(_train(field, model, "--ensemble", "2")) == 0
    assert (model / "train_log.earlier.csv").read_text() == "iteration,loss\n1,0.5\n"
    assert "kept as train_log.earlier.csv" in capsys.readouterr().err
    assert json.loads((model / "config.json").read_text())["ensemble"]["members"] == 2
