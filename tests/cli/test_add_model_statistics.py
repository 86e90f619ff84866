"""scripts/add_model_statistics.py: a model's calibrated statistics stay calibrated; a wrong ask is
refused in one line before any folder is written."""

import json
import shutil
from pathlib import Path

import pytest


def copy_builtin(name: str, dest: Path) -> Path:
    from napari_labelfree.core.bundle import BUILTIN_DIR

    shutil.copytree(BUILTIN_DIR / name, dest / name)
    return dest / name


def test_a_calibrated_model_keeps_its_calibration_and_others_get_none_unless_asked(
    load_script, tmp_path, monkeypatch
):
    script = load_script("add_model_statistics")
    asked = {}

    def fake(spec, cache, calibrate=None):  # no rendering: record what was asked
        asked[spec.structure] = calibrate
        stats = {"version": 2}
        if calibrate:
            stats["calibration"] = {"images": calibrate}
        return stats

    monkeypatch.setattr(script, "randomized_statistics", fake)
    lamin = copy_builtin("lamin-b1", tmp_path)  # calibrated on the images that formed no kind
    tom20 = copy_builtin("tom20", tmp_path)  # calibrated on all its training images
    dna = copy_builtin("dna", tmp_path)  # not calibrated (docs/trust.md)
    assert "calibration" in json.loads((lamin / "config.json").read_text())["input_statistics"]
    assert script.main([str(lamin), str(tom20), str(dna)]) == 0
    assert asked == {"lamin-b1": "no kind", "tom20": "all", "dna": None}
    assert script.main([str(lamin), str(tom20), str(dna)]) == 0  # what it wrote, it keeps
    assert asked == {"lamin-b1": "no kind", "tom20": "all", "dna": None}
    assert script.main([str(dna), "--calibrate"]) == 0
    assert asked["dna"] == "no kind"
    assert script.main([str(dna), "--calibrate", "all"]) == 0
    assert asked["dna"] == "all"


def test_calibrate_for_a_clean_preset_model_is_refused_and_nothing_is_written(
    load_script, tmp_path, capsys
):
    script = load_script("add_model_statistics")
    lamin = copy_builtin("lamin-b1", tmp_path)
    clean = copy_builtin("tom20", tmp_path)
    config = json.loads((clean / "config.json").read_text())
    config["provenance"]["simulation"].pop("randomized", None)
    (clean / "config.json").write_text(json.dumps(config))
    before = {p: (p / "config.json").read_bytes() for p in (lamin, clean)}
    with pytest.raises(SystemExit) as exit_info:
        script.main([str(lamin), str(clean), "--calibrate"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("tom20: --calibrate is for models trained on randomized fields")
    assert {p: (p / "config.json").read_bytes() for p in (lamin, clean)} == before
