"""Training-input statistics in config.json and the out-of-distribution warning of prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_labelfree.core.config import ModelSpec
from napari_labelfree.core.preprocess import normalize, to_model_grid
from napari_labelfree.core.synth import simulate
from napari_labelfree.core.trust.ood import DIFFERS, OK, UNKNOWN, check_input, has_statistics
from napari_labelfree.core.trust.stats import training_statistics

SHAPE = (32, 192, 192)
VOXEL = (0.29, 0.108, 0.108)
GRID = (0.29, 0.29, 0.29)


@pytest.fixture(scope="module")
def fields():
    """Four small simulated fields: bright-field and the DNA stain of each."""
    return [simulate(SHAPE, VOXEL, structures=["dna"], seed=s) for s in (100, 101, 102, 103, 104)]


@pytest.fixture(scope="module")
def stats(fields):
    """Statistics of three fields' bright-field on the model grid, as training keeps them."""
    return training_statistics(
        [to_model_grid(normalize(f.data[0, 0]), VOXEL, GRID) for f in fields[:4]]
    )


def test_statistics_are_a_few_dozen_numbers_that_go_through_json(stats):
    numbers = [
        v
        for g in stats["groups"].values()
        for vs in g.values()
        for v in (vs if isinstance(vs, list) else [vs])
    ]
    assert 20 <= len(numbers) <= 300  # compact: no pixels
    spec = ModelSpec("dna", input_statistics=stats)
    again = ModelSpec.from_json(spec.to_json())
    assert again.input_statistics == json.loads(json.dumps(stats))
    assert has_statistics(again)


def test_a_small_image_is_held_to_what_one_training_patch_may_stray(stats):
    from napari_labelfree.core.trust.ood import THRESHOLD, independent_patches, thresholds

    assert independent_patches((16, 64, 64)) == 1 and independent_patches((32, 256, 128)) == 16
    one, many = thresholds(stats, 1), thresholds(stats, 16)
    assert set(one) == set(stats["groups"])
    for group in one:
        assert one[group] >= many[group] >= THRESHOLD
    assert any(one[g] > THRESHOLD for g in one)  # single patches stray more than image medians


def test_an_old_config_without_statistics_loads_and_stays_as_it_was():
    old = {"structure": "dna", "voxel_size_um": [0.29, 0.29, 0.29], "schema_version": 1}
    spec = ModelSpec.from_dict(old)
    assert spec.input_statistics is None and not has_statistics(spec)
    assert "input_statistics" not in spec.to_dict()  # nothing new written into an old config
    check = check_input(np.random.default_rng(0).random((8, 32, 32)), GRID, spec, "old")
    assert check.status == UNKNOWN
    assert "old" in check.text() and "cannot check" in check.text()


def test_a_held_out_bright_field_field_passes(fields, stats):
    spec = ModelSpec("dna", input_statistics=stats)
    check = check_input(fields[4].data[0, 0], VOXEL, spec, "dna")
    assert check.status == OK, check.scores
    assert check.text() == ""


def test_a_fluorescence_channel_as_input_is_named(fields, stats):
    spec = ModelSpec("dna", input_statistics=stats)
    check = check_input(fields[4].data[0, 1], VOXEL, spec, "dna")
    assert check.status == DIFFERS
    assert "intensity" in check.text() and "fluorescence" in check.text()
    assert check.text().startswith("model dna")


def test_a_voxel_size_wrong_by_3x_is_caught(fields, stats):
    spec = ModelSpec("dna", input_statistics=stats)
    wrong = (VOXEL[0], VOXEL[1] / 3, VOXEL[2] / 3)
    check = check_input(fields[4].data[0, 0], wrong, spec, "dna")
    assert check.status == DIFFERS
    assert "spatial frequencies" in check.text() and "voxel size" in check.text()


def test_training_stores_the_statistics_of_its_inputs(tmp_path, fields):
    from napari_labelfree.core.bundle import open_bundle
    from napari_labelfree.core.config import Architecture
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.train import ImagePair, TrainConfig, iter_train

    pair = ImagePair(fields[0].data[0, 0], fields[0].data[0, 1], VOXEL, "field 0")
    spec = ModelSpec("dna", voxel_size_um=GRID, architecture=Architecture(depth=2, width=8))
    val = ImagePair(fields[1].data[0, 0], fields[1].data[0, 1], VOXEL, "field 1")
    cfg = TrainConfig(iterations=2, batch_size=1, patch_shape=(8, 16, 16))
    drain(iter_train([pair], spec, tmp_path / "dna", cfg, val=[val], device="cpu"))
    saved = open_bundle(tmp_path / "dna").spec
    assert has_statistics(saved)
    stats = json.loads((tmp_path / "dna" / "config.json").read_text())["input_statistics"]
    assert stats == saved.input_statistics
    # the same image passes; its fluorescence does not
    assert check_input(fields[0].data[0, 0], VOXEL, saved).status == OK
    assert check_input(fields[0].data[0, 1], VOXEL, saved).status == DIFFERS


def test_cli_warns_once_naming_the_model_and_what_differs(tmp_path, fields, stats, capsys):
    from napari_labelfree.cli import main
    from napari_labelfree.core.bundle import init_bundle
    from napari_labelfree.core.config import Architecture
    from napari_labelfree.core.io import write_ome_tiff

    spec = ModelSpec(
        "dna",
        voxel_size_um=GRID,
        architecture=Architecture(depth=2, width=8),
        input_statistics=stats,
    )
    model = init_bundle(tmp_path / "my-dna", spec)
    fluo = np.stack([fields[4].data[0, 1]] * 2)[:, None]  # a 2-frame time-lapse of a stain
    path = write_ome_tiff(tmp_path / "stain.ome.tif", fluo, None, ["Hoechst"], VOXEL)
    out = tmp_path / "out.ome.tif"
    args = ["predict", str(path), "-m", str(model.path), "-o", str(out), "--device", "cpu"]
    assert main(args) == 0  # a warning, not a refusal
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1  # once per image and model, not per frame
    assert "model my-dna" in lines[0] and "intensity" in lines[0]

    bf = fields[4].data[:, :1]
    path = write_ome_tiff(tmp_path / "bf.ome.tif", bf, None, ["bright-field"], VOXEL)
    assert (
        main(
            [
                *args[:1],
                str(path),
                *args[2:-4],
                "-o",
                str(tmp_path / "bf_out.ome.tif"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "warning:" not in capsys.readouterr().err


def test_dic_for_a_bright_field_model_is_caught(stats):
    """Statistics of simulated bright-field fields only (the built-in models have seen DIC since
    their retraining on randomized fields): one held-out field in both modes.

    Detection of simulated DIC is not certain (its shear is mild; about 9 in 10 held-out fields
    with statistics of version 2, 8 in 10 with version 1, benchmarks/ood_detection.py); this field
    is a typical one, and its bright-field twin passes.
    """
    spec = ModelSpec("dna", input_statistics=stats)
    bf, dic = (
        simulate(SHAPE, VOXEL, structures=(), seed=300, modality=m).data[0, 0]
        for m in ("bright-field", "dic")
    )
    assert check_input(bf, VOXEL, spec, "bf").status == OK
    check = check_input(dic, VOXEL, spec, "bf")
    assert check.status == DIFFERS, check.scores
    assert "relief" in check.differing and "DIC" in check.text()


def test_statistics_of_version_1_are_still_compared(fields):
    """A config.json written before the depth group and the 1-voxel relief: its groups are
    compared on the features it stored (by name), none is lost and none is invented."""
    from napari_labelfree.core.trust import stats as st

    grids = [to_model_grid(normalize(f.data[0, 0]), VOXEL, GRID) for f in fields[:4]]
    features = st.sample_features(grids, 64, np.random.default_rng(0))
    v1_names = st.FEATURE_NAMES.index
    old_groups = {
        "intensity": st.GROUPS["intensity"],
        "spectrum": st.GROUPS["spectrum"],
        "contrast": st.GROUPS["contrast"],
        "relief": st.LEGACY_FEATURES,
    }
    columns = [v1_names(n) for names in old_groups.values() for n in names]
    saved = dict(st.GROUPS)
    try:  # summarize as version 1 did: its four groups, the 2-voxel relief
        st.GROUPS.clear()
        st.GROUPS.update(old_groups)
        old = st.summarize(features[:, columns])
    finally:
        st.GROUPS.clear()
        st.GROUPS.update(saved)
    old["version"] = 1
    spec = ModelSpec.from_json(ModelSpec("dna", input_statistics=old).to_json())
    assert has_statistics(spec)
    check = check_input(fields[4].data[0, 0], VOXEL, spec, "dna")
    assert check.status == OK and set(check.scores) == set(old_groups)
    fluo = check_input(fields[4].data[0, 1], VOXEL, spec, "dna")
    assert fluo.status == DIFFERS and "intensity" in fluo.differing


def test_an_image_that_does_not_change_through_focus_differs_in_depth(fields, stats):
    """Bright-field contrast fades and reverses through focus; the same plane repeated does not
    (as phase contrast keeps its halos): the depth group says so, the others need not."""
    spec = ModelSpec("dna", input_statistics=stats)
    bf = fields[4].data[0, 0]
    flat = np.repeat(bf[bf.shape[0] // 2][None], bf.shape[0], axis=0)
    check = check_input(flat, VOXEL, spec, "dna")
    assert check.status == DIFFERS and "depth" in check.differing, check.scores
    assert "through focus" in check.text()
    assert check_input(bf, VOXEL, spec, "dna").scores["depth"] < 2.5


def test_images_of_one_kind_keep_one_centre(stats):
    """Homogeneous training images give no components: their statistics are what they were."""
    assert "components" not in stats


def test_a_mixture_of_two_kinds_warns_on_neither_and_still_on_a_stain(fields):
    """A model trained on many bright-field images and a few from a noisier camera (1 in 7; as
    the built-in dna on clean and domain-randomized fields): the minority barely moves the
    overall median, so held-out images of its kind sat far from it and were warned about with
    one centre. Its own component describes them now; a stain still differs from both."""
    noise = np.random.default_rng(1)

    def noisy(image):
        return image + noise.normal(0.0, 1.5 * float(image.std()), image.shape)

    grids = [to_model_grid(normalize(f.data[0, 0]), VOXEL, GRID) for f in fields[:4]]
    # more bright-field images: each field turned by 180 degrees and mirrored too
    grids += [g[:, ::-1, ::-1] for g in grids[:4]] + [g[:, :, ::-1] for g in grids[:4]]
    grids += [to_model_grid(normalize(noisy(f.data[0, 0])), VOXEL, GRID) for f in fields[:2]]
    stats = training_statistics(grids)
    kinds = sorted(c["n_images"] for c in stats["components"])
    assert kinds == [2], kinds  # the noisy fields (the bright-field ones are the whole's centre)
    spec = ModelSpec.from_json(ModelSpec("dna", input_statistics=stats).to_json())
    assert spec.input_statistics == json.loads(json.dumps(stats)) and has_statistics(spec)

    bf, stain = fields[4].data[0, 0], fields[4].data[0, 1]
    for image in (bf, noisy(bf)):  # held out, one of each kind
        check = check_input(image, VOXEL, spec, "dna")
        assert check.status == OK, check.scores
    for image in (stain, noisy(stain)):
        check = check_input(image, VOXEL, spec, "dna")
        assert check.status == DIFFERS and "intensity" in check.differing
    # the overall centre alone (statistics before components) warns about the minority's kind
    alone = ModelSpec("dna", input_statistics={k: v for k, v in stats.items() if k != "components"})
    assert check_input(noisy(bf), VOXEL, alone, "dna").status == DIFFERS


def test_a_large_frame_is_normalized_from_a_grid_of_its_voxels_alike(fields, stats, monkeypatch):
    """A frame over STATS_VOXELS takes its mean and spread from every k-th voxel in Y and X (a
    64x2048x2048 frame: 1.1 s instead of 3.1-3.6 s for the check): the same verdicts, nearly the
    same scores as from every voxel."""
    from napari_labelfree.core.trust import ood

    spec = ModelSpec("dna", input_statistics=stats)
    images = (fields[4].data[0, 0], fields[4].data[0, 1])
    exact = [check_input(im, VOXEL, spec, "dna") for im in images]
    monkeypatch.setattr(ood, "STATS_VOXELS", 32 * 192 * 192 // 16)  # every 4th voxel in Y, X
    grid = [check_input(im, VOXEL, spec, "dna") for im in images]
    assert [c.status for c in grid] == [c.status for c in exact] == [OK, DIFFERS]
    for a, b in zip(exact, grid, strict=True):
        for group, score in a.scores.items():
            assert abs(b.scores[group] - score) <= 0.05 * max(1.0, score), (group, a, b)


def test_damaged_kinds_are_left_out_and_the_whole_set_still_checks(fields, stats):
    """A config.json whose kinds were hand-edited or damaged: the check uses the whole set."""
    bf = fields[4].data[0, 0]
    plain = check_input(bf, VOXEL, ModelSpec("dna", input_statistics=stats), "dna")
    no_spread = {g: {"median": v["median"]} for g, v in stats["groups"].items()}
    kinds = [5, {"groups": 3}, {"groups": {"depth": 3}}, {"groups": {}}, {"groups": no_spread}]
    for damaged in (5, "x", kinds):
        spec = ModelSpec("dna", input_statistics={**stats, "components": damaged})
        spec = ModelSpec.from_json(spec.to_json())
        check = check_input(bf, VOXEL, spec, "dna")
        assert check.status == OK and check.scores == plain.scores


@pytest.fixture(scope="module")
def varied(fields):
    """Sixteen bright-field training images from clean to four times their spread of extra
    noise (a continuum, as domain-randomized fields are): raw frames and model-grid volumes."""
    noise = np.random.default_rng(1)
    raw = [
        f.data[0, 0] + noise.normal(0.0, k * float(f.data[0, 0].std()), f.data[0, 0].shape)
        for f, k in zip(fields[:4] * 4, np.linspace(0.0, 4.0, 16), strict=True)
    ]
    return raw, [to_model_grid(normalize(r), VOXEL, GRID) for r in raw]


def test_calibrated_limits_let_the_training_images_that_formed_no_kind_pass(fields, varied):
    """Statistics of the least noisy part of a varied training set warn about the noisier
    training images; calibrated on those (core.trust.ood.calibration), every one of them passes,
    and a fluorescence channel is still named."""
    from napari_labelfree.core.trust.ood import calibration

    raw, grids = varied
    part = [0, 1, 2, 3, 4, 5]
    rest = [i for i in range(16) if i not in part]
    stats = training_statistics([grids[i] for i in part])
    plain = ModelSpec("dna", input_statistics=stats)
    assert any(check_input(raw[i], VOXEL, plain, "dna").status == DIFFERS for i in rest)

    stats = {**stats, "calibration": calibration(stats, [grids[i] for i in rest])}
    assert stats["calibration"]["n_images"] == len(rest)
    assert min(stats["calibration"]["limit_scale"].values()) >= 1.0
    spec = ModelSpec.from_json(ModelSpec("dna", input_statistics=stats).to_json())
    for i in rest:
        check = check_input(raw[i], VOXEL, spec, "dna")
        assert check.status == OK, (i, check.scores, check.thresholds)
    stain = check_input(fields[4].data[0, 1], VOXEL, spec, "dna")
    assert stain.status == DIFFERS and "intensity" in stain.differing


def test_calibration_is_asked_for_and_changes_nothing_else(varied, monkeypatch):
    """training_statistics(calibrate=calibration) adds only the "calibration" key, from the
    images beyond those sampled for kinds; without it, or with too few of them, there is none."""
    from napari_labelfree.core.trust import stats as trust_stats
    from napari_labelfree.core.trust.ood import calibration

    _, grids = varied
    monkeypatch.setattr(trust_stats, "MAX_FIELDS", 6)
    monkeypatch.setattr(trust_stats, "MIN_CALIBRATION_IMAGES", 4)
    plain = training_statistics(grids)
    calibrated = training_statistics(grids, calibrate=calibration)
    assert "calibration" not in plain
    entry = calibrated.pop("calibration")
    assert (entry["n_images"], entry["images"]) == (10, "no kind")
    assert calibrated == plain
    every = training_statistics(grids, calibrate=calibration, calibrate_on="all")
    assert (every["calibration"]["n_images"], every["calibration"]["images"]) == (16, "all")
    for group, factor in every["calibration"]["limit_scale"].items():
        assert factor >= entry["limit_scale"][group]  # more images: never a narrower limit
    monkeypatch.setattr(trust_stats, "MIN_CALIBRATION_IMAGES", 11)
    assert "calibration" not in training_statistics(grids, calibrate=calibration)
    with pytest.raises(ValueError, match="calibrate_on"):
        training_statistics(grids, calibrate=calibration, calibrate_on="some")


def test_damaged_calibration_is_left_out_and_the_limits_stay(fields, stats):
    """A hand-edited or damaged calibration (not numbers of at least 1) widens nothing."""
    bf = fields[4].data[0, 1]
    plain = check_input(bf, VOXEL, ModelSpec("dna", input_statistics=stats), "dna")
    for damaged in (
        "x",
        {"limit_scale": 3},
        {"limit_scale": {"intensity": 0.5}},
        {"limit_scale": {"intensity": None}},
        {"limit_scale": {"intensity": True}},
        {"limit_scale": {"intensity": "9"}},
    ):
        spec = ModelSpec("dna", input_statistics={**stats, "calibration": damaged})
        spec = ModelSpec.from_json(spec.to_json())
        check = check_input(bf, VOXEL, spec, "dna")
        assert check.status == plain.status == DIFFERS
        assert check.thresholds == plain.thresholds
