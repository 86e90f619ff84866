"""Ensembles (`labelfree train --ensemble K`): K networks in one model folder, used as one model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from safetensors.torch import load_file
from test_train import random_pairs  # tests/core is on the path (no package)

from napari_labelfree.core.bundle import open_bundle, save_bundle
from napari_labelfree.core.config import Architecture, ModelSpec, TilingConfig
from napari_labelfree.core.ensemble import member_key
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.events import drain
from napari_labelfree.core.io import open_image, write_ome_tiff
from napari_labelfree.core.predict.blocks import block_regions, predict_block
from napari_labelfree.core.predict.plan import plan_prediction
from napari_labelfree.core.train import TrainConfig, TrainStep
from napari_labelfree.core.train.ensemble import iter_train_ensemble

VOX = (0.29, 0.29, 0.29)
TILING = TilingConfig(tile_shape=(8, 16, 16), overlap=0.25, precision="fp32")


def tiny_spec() -> ModelSpec:
    return ModelSpec("dna", voxel_size_um=VOX, architecture=Architecture(depth=2, width=8))


def tiny_config(**kw) -> TrainConfig:
    settings = dict(
        iterations=3, batch_size=2, patch_shape=(8, 16, 16), validate_every=3, checkpoint_every=3
    )
    return TrainConfig(**{**settings, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny ensemble of 2, trained (3 iterations each) with validation images."""
    out = tmp_path_factory.mktemp("ens") / "dna-ensemble"
    gen = iter_train_ensemble(
        random_pairs(),
        tiny_spec(),
        out,
        2,
        tiny_config(),
        val=random_pairs(1, seed=5),
        device="cpu",
    )
    steps = []
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value, steps
        if isinstance(event, TrainStep):
            steps.append(event)


def ensemble_of(tmp_path, members, name="ens"):
    """An ensemble folder made from single-model bundles (as training assembles one)."""
    spec = dataclasses.replace(members[0].spec)
    spec.ensemble = {"members": len(members), "seeds": list(range(len(members)))}
    state = {}
    for i, b in enumerate(members):
        for k, v in load_file(str(b.path / "weights.safetensors")).items():
            state[member_key(i, k)] = v
    return open_bundle(save_bundle(tmp_path / name, spec, state))


def test_an_ensemble_is_one_model_folder_saying_it_holds_k_networks(trained):
    bundle, steps = trained
    folder = bundle.path
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["ensemble"]["members"] == 2 and cfg["ensemble"]["seeds"] == [0, 1]
    assert len(cfg["ensemble"]["member_metrics"]) == 2
    assert cfg["input_statistics"]["version"] >= 1  # the OOD check works for it as for one model
    assert bundle.spec.kind_label == "3D, ensemble of 2"
    # the ensemble's own score on the validation images, predicted as a user predicts
    assert -1 <= bundle.spec.metrics["val_pearson_r_mean"] <= 1
    # every member's tensors, as safetensors (no pickle), under members.<i>.
    keys = load_file(str(folder / "weights.safetensors")).keys()
    assert {k.split(".", 2)[1] for k in keys} == {"0", "1"}
    assert all(k.startswith("members.") for k in keys)
    # the record of each member's training, under a name no model search takes for a model
    for i in (1, 2):
        record = folder / "members" / f"member-{i}"
        assert (record / "train_log.csv").is_file()
        assert json.loads((record / "member.json").read_text())["structure"] == "dna"
    assert not (folder / "checkpoint.safetensors").exists()  # an ensemble is not resumed
    assert sorted(p.name for p in folder.parent.iterdir()) == ["dna-ensemble"]  # no temporaries
    # one progress count over all members
    assert steps[-1].iteration == steps[-1].total == 6


def test_the_prediction_is_the_mean_of_the_members(tmp_path, make_tiny_model):
    members = [make_tiny_model(seed=0), make_tiny_model(seed=1)]
    ens = ensemble_of(tmp_path, members)
    volume = np.random.default_rng(2).normal(size=(10, 24, 20)).astype(np.float32)
    preds = [
        drain(_plan(tmp_path, volume, [b], TILING).predict_volume(volume))["dna"] for b in members
    ]
    got = drain(_plan(tmp_path, volume, [ens], TILING).predict_volume(volume))["dna"]
    assert np.abs(preds[0] - preds[1]).max() > 1e-3  # the members differ
    np.testing.assert_allclose(got, (preds[0] + preds[1]) / 2, atol=1e-5)


def _plan(tmp_path, volume, bundles, tiling):
    path = tmp_path / "v.ome.tif"
    if not path.exists():
        write_ome_tiff(path, volume[None, None], physical_sizes=VOX)
    return plan_prediction(open_image(path), bundles, None, None, tiling, "cpu")


def test_the_uncertainty_includes_the_spread_across_members(tmp_path, make_tiny_model):
    members = [make_tiny_model(seed=0), make_tiny_model(seed=1)]
    ens = ensemble_of(tmp_path, members)
    volume = np.random.default_rng(2).normal(size=(10, 24, 20)).astype(np.float32)
    tiling = dataclasses.replace(TILING, uncertainty=True)
    plan = _plan(tmp_path, volume, [ens], tiling)
    assert plan.output_names == ("dna", "dna (uncertainty)")
    got = drain(plan.predict_volume(volume))
    # the same as the two members predicted together: their joint spread over members and
    # variants (law of total variance), and their mean; up to where tiles overlap, which blend
    # the ensemble's spread tile by tile and the members' each before they are combined
    apart = _plan(tmp_path, volume, members, tiling)
    each = drain(apart.predict_volume(volume))
    names = apart.names
    joint = each[f"{names[0]} (uncertainty)"]
    np.testing.assert_allclose(got["dna (uncertainty)"], joint, rtol=5e-3, atol=1e-5)
    assert np.median(np.abs(got["dna (uncertainty)"] - joint)) < 1e-6
    np.testing.assert_allclose(got["dna"], (each[names[0]] + each[names[1]]) / 2, atol=1e-5)
    # more than the test-time spread alone: the members disagree
    alone = [drain(_plan(tmp_path, volume, [b], tiling).predict_volume(volume)) for b in members]
    tta_only = np.sqrt(
        (alone[0]["dna (uncertainty)"] ** 2 + alone[1]["dna (uncertainty)"] ** 2) / 2
    )
    assert (got["dna (uncertainty)"] >= tta_only - 1e-5).all()
    assert (got["dna (uncertainty)"] - tta_only).mean() > 1e-3
    # the block path (Dask) gives the same
    assembled = np.full(volume.shape, np.nan, np.float32)
    for region in block_regions(volume.shape, (5, 13, 11)):
        arr = predict_block(plan, volume, region)["dna (uncertainty)"]
        assembled[tuple(slice(a, b) for a, b in region)] = arr
    np.testing.assert_allclose(assembled, got["dna (uncertainty)"], atol=1e-5)


def test_an_ensemble_beside_a_single_model_of_another_structure(tmp_path, make_tiny_model):
    ens = ensemble_of(tmp_path, [make_tiny_model(seed=0), make_tiny_model(seed=1)])
    other = make_tiny_model("tom20", "green", seed=3)
    volume = np.random.default_rng(2).normal(size=(10, 24, 20)).astype(np.float32)
    tiling = dataclasses.replace(TILING, uncertainty=True)
    both = drain(_plan(tmp_path, volume, [ens, other], tiling).predict_volume(volume))
    alone = drain(_plan(tmp_path, volume, [other], tiling).predict_volume(volume))
    for name in ("tom20", "tom20 (uncertainty)"):  # its variance stays its own
        np.testing.assert_allclose(both[name], alone[name], atol=1e-5)


def test_single_model_folders_are_unchanged(make_tiny_model):
    from napari_labelfree.core.unet import UNet3D
    from napari_labelfree.core.weights import load_network

    bundle = make_tiny_model()
    cfg = json.loads((bundle.path / "config.json").read_text())
    assert "ensemble" not in cfg and bundle.spec.ensemble_size == 1
    assert bundle.spec.kind_label == "3D"
    assert isinstance(load_network(bundle), UNet3D)


def test_interrupting_an_ensemble_leaves_nothing(tmp_path):
    out = tmp_path / "ens"
    gen = iter_train_ensemble(
        random_pairs(), tiny_spec(), out, 2, tiny_config(val_strip=0.0), device="cpu"
    )
    for event in gen:
        if isinstance(event, TrainStep) and event.iteration == 4:  # inside the second member
            gen.close()
            break
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary


def test_a_failed_member_leaves_the_model_there_as_it_was(tmp_path, monkeypatch, make_tiny_model):
    from napari_labelfree.core.train.engine import Engine

    old = make_tiny_model()
    before = {p.name: p.read_bytes() for p in old.path.iterdir()}
    calls = {"n": 0}
    real_step = Engine.step

    def step(self, x, y):
        calls["n"] += 1
        if calls["n"] == 5:  # the second member's second step
            raise RuntimeError("the device fell over")
        return real_step(self, x, y)

    monkeypatch.setattr(Engine, "step", step)
    gen = iter_train_ensemble(
        random_pairs(),
        tiny_spec(),
        old.path,
        2,
        tiny_config(val_strip=0.0),
        device="cpu",
        overwrite=True,
    )
    with pytest.raises(RuntimeError, match="fell over"):
        drain(gen)
    assert {p.name: p.read_bytes() for p in old.path.iterdir()} == before
    assert sorted(p.name for p in old.path.parent.iterdir()) == [old.path.name]


@pytest.mark.parametrize("k", [0, 1, 11, True])
def test_a_bad_number_of_members_is_refused(tmp_path, k):
    with pytest.raises(LabelFreeError, match="2 to 10 members"):
        drain(iter_train_ensemble(random_pairs(), tiny_spec(), tmp_path / "e", k, tiny_config()))
    assert list(tmp_path.iterdir()) == []


def test_a_config_with_a_broken_ensemble_entry_is_refused(tmp_path, make_tiny_model):
    from napari_labelfree.core.bundle import read_spec

    bundle = make_tiny_model()
    cfg = json.loads((bundle.path / "config.json").read_text())
    for bad in ({"members": 1}, {"seeds": [0]}, [2]):
        (bundle.path / "config.json").write_text(json.dumps({**cfg, "ensemble": bad}))
        with pytest.raises(LabelFreeError, match="ensemble"):
            read_spec(bundle.path)


def test_an_ensemble_is_not_a_starting_model_nor_a_bioimageio_package(tmp_path, make_tiny_model):
    from napari_labelfree.core.interop.bioimageio_export import export_package
    from napari_labelfree.core.train.init import resolve_init

    ens = ensemble_of(tmp_path, [make_tiny_model(seed=0), make_tiny_model(seed=1)])
    with pytest.raises(LabelFreeError, match="ensemble of 2 networks; start from a single"):
        resolve_init(ens)
    with pytest.raises(LabelFreeError, match="package holds one network"):
        export_package(ens, tmp_path / "ens.zip")
    assert not (tmp_path / "ens.zip").exists()


def test_an_ensemble_replaces_a_model_only_when_asked(tmp_path, make_tiny_model):
    old = make_tiny_model()
    (old.path / "checkpoint.safetensors").write_bytes(b"an old run's checkpoint")
    (old.path / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in old.path.iterdir()}
    args = (random_pairs(), tiny_spec(), old.path, 2, tiny_config(iterations=2, val_strip=0.0))
    with pytest.raises(LabelFreeError, match="already holds a model"):
        drain(iter_train_ensemble(*args, device="cpu"))
    assert {p.name: p.read_bytes() for p in old.path.iterdir()} == before
    ens = drain(iter_train_ensemble(*args, device="cpu", overwrite=True))
    assert ens.spec.ensemble_size == 2
    # the replaced run's checkpoint is gone (never resumed as this model's); the user's file stays
    names = sorted(p.name for p in old.path.iterdir())
    assert names == ["config.json", "members", "notes.txt", "weights.safetensors"]


def test_a_folder_another_run_is_writing_into_is_refused_before_training(tmp_path):
    from napari_labelfree.core.train.folder import FolderClaim

    out = tmp_path / "ens"
    with FolderClaim() as other:
        other.take(out, lambda: None, set_aside=False)
        gen = iter_train_ensemble(
            random_pairs(), tiny_spec(), out, 2, tiny_config(val_strip=0.0), device="cpu"
        )
        with pytest.raises(LabelFreeError, match="another training run is writing"):
            for event in gen:
                assert not isinstance(event, TrainStep)  # refused before any training
