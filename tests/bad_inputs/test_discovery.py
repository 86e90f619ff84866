"""Model discovery: one broken model folder never breaks the others, and `labelfree models` says why."""

from __future__ import annotations

import json
import os
import shutil

from bad_input_harness import run_cli, snapshot

from napari_labelfree.core import bundle as bundle_mod
from napari_labelfree.core.bundle import CONFIG_NAME, discover_models, resolve_model, scan_models


def test_models_lists_broken_folders_with_the_reason(work, assets, capsys):
    before = snapshot(assets.root)
    result = run_cli(["models"], capsys)
    assert result.code == 0 and "Traceback" not in result.err
    rows = {line.split()[0]: line for line in result.out.splitlines() if line.strip()}
    assert "zoo-structure" in rows["zoo-good"]
    for name in ("zoo-not-json", "zoo-list", "zoo-no-weights"):
        assert "BROKEN" in rows[name]
    assert "broken: zoo-not-json: config.json is not valid JSON" in result.out
    assert "broken: zoo-list:" in result.out and "holds a list" in result.out
    assert "broken: zoo-no-weights:" in result.out and "needs config.json and weights" in result.out
    # a temporary of a killed save and an unrelated folder are not models, broken or not
    assert ".zoo-temp" not in result.out and "not-a-model" not in result.out
    assert snapshot(assets.root) == before


def test_any_failure_of_one_folder_is_recorded_and_the_scan_goes_on(work, assets, monkeypatch):
    real = bundle_mod.read_spec
    failures = {
        "zoo-good": PermissionError(13, "Permission denied", "config.json"),
    }

    def read_spec(folder):
        if folder.name in failures:
            raise failures[folder.name]
        return real(folder)

    monkeypatch.setattr(bundle_mod, "read_spec", read_spec)
    extra = work / "more"
    for i, error in enumerate(
        [
            OSError(5, "Input/output error"),
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
            RuntimeError("anything else"),
        ]
    ):
        shutil.copytree(assets.model, extra / f"m{i}")
        failures[f"m{i}"] = error
    shutil.copytree(assets.model, extra / "fine")
    monkeypatch.setenv(bundle_mod.ENV_VAR, f"{assets.zoo}{os.pathsep}{extra}")
    scan = scan_models()
    assert "fine" in [m.name for m in scan.models]
    reasons = {b.name: b.reason for b in scan.broken}
    assert "Permission denied" in reasons["zoo-good"]
    assert "Input/output error" in reasons["m0"]
    assert "UnicodeDecodeError" in reasons["m1"] and "RuntimeError" in reasons["m2"]
    assert [m.name for m in discover_models()] == [m.name for m in scan.models]


def test_a_missing_folder_in_the_environment_variable_is_reported(
    work, assets, monkeypatch, capsys
):
    gone = work / "no-such-models"
    monkeypatch.setenv(bundle_mod.ENV_VAR, f"{gone}{os.pathsep}{assets.zoo}")
    result = run_cli(["models"], capsys)
    assert result.code == 0
    assert f"NAPARI_LABELFREE_MODELS lists {gone}, which is missing" in result.err
    assert "zoo-good" in result.out
    result = run_cli(["predict", str(assets.good), "-m", "nothing", "-o", "x.ome.tif"], capsys)
    assert result.code == 2 and f"lists {gone}, which is missing" in result.err
    assert not (work / "x.ome.tif").exists()


def test_keys_from_a_newer_version_are_noticed_not_fatal(work, assets, monkeypatch, capsys):
    newer = work / "zoo2" / "newer"
    shutil.copytree(assets.model, newer)
    cfg = json.loads((newer / CONFIG_NAME).read_text())
    cfg["future_setting"] = {"x": 1}
    (newer / CONFIG_NAME).write_text(json.dumps(cfg))
    monkeypatch.setenv(bundle_mod.ENV_VAR, str(work / "zoo2"))
    assert resolve_model("newer").spec.unknown_keys == ["future_setting"]
    result = run_cli(["models"], capsys)
    assert result.code == 0 and "newer" in result.out
    assert "newer has settings this version does not know (future_setting)" in result.out


def test_a_model_folder_given_as_the_search_path_itself_may_be_broken(work, assets, monkeypatch):
    one = work / "single"
    shutil.copytree(assets.model, one)
    (one / CONFIG_NAME).write_text("[]")
    monkeypatch.setenv(bundle_mod.ENV_VAR, str(one))
    scan = scan_models()
    assert [b.name for b in scan.broken] == ["single"] and "holds a list" in scan.broken[0].reason
