"""scripts/train_builtin_models.py: field counts that would collide with validation seeds are refused."""

import pytest


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--randomized", "--train-fields", "151"],
            "--train-fields must be 1 to 150 with --randomized",
        ),
        (["--train-fields", "50"], "--train-fields must be 1 to 49"),
        (["--randomized", "--clean-fields", "50"], "--clean-fields must be 0 to 49"),
        (["--evaluate", "x", "--decision-fields", "51"], "--decision-fields must be 1 to 50"),
        (
            ["--evaluate", "x", "--clean-decision-fields", "51"],
            "--clean-decision-fields must be 1 to 50",
        ),
        (
            ["--evaluate", "x", "--record"],
            "--record needs --evaluate REPLACED NEW...: the model replaced, then the new ones",
        ),
    ],
)
def test_out_of_range_field_counts_get_one_line(load_script, argv, message, capsys):
    script = load_script("train_builtin_models")
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip().splitlines()[-1].endswith(message)


def test_the_randomized_seed_ranges_stay_clear_of_validation_and_test_seeds(load_script):
    script = load_script("train_builtin_models")
    first_training = script.RANDOM_FIRST_SEED
    training = set(range(first_training, first_training + script.MAX_RANDOMIZED_FIELDS))
    first = script.DECISION_SEEDS["randomized"][0]
    decision = set(range(first, first + script.MAX_DECISION_FIELDS))
    assert not training & decision
    assert not training & set(script.RANDOM_TEST_SEEDS)
    assert not decision & set(script.RANDOM_TEST_SEEDS)
    assert set(script.RANDOM_VAL_SEEDS) <= decision


def test_the_clean_decision_seeds_stay_clear_of_training_and_test_seeds(load_script):
    script = load_script("train_builtin_models")
    first_training = script.FIRST_TRAIN_SEED
    training = set(range(first_training, first_training + script.MAX_CLEAN_FIELDS))
    first = script.DECISION_SEEDS["clean"][0]
    decision = set(range(first, first + script.MAX_CLEAN_DECISION_FIELDS))
    assert not training & decision
    assert not decision & set(script.TEST_SEEDS)
    assert script.VAL_SEED in decision


def test_record_writes_the_release_check_into_the_new_models_card(load_script, tmp_path):
    """--evaluate OLD NEW --record: NEW's card gets its validation scores beside OLD's, and the
    card says them in plain words (labelfree models)."""
    import shutil

    from napari_labelfree.core.bundle import BUILTIN_DIR, read_spec
    from napari_labelfree.core.model_card import card_lines

    script = load_script("train_builtin_models")
    new = tmp_path / "dna"
    shutil.copytree(BUILTIN_DIR / "dna", new)
    weights = (new / "weights.safetensors").read_bytes()
    sets = {"val clean": ((150, 151), []), "val randomized": (tuple(range(1150, 1166)), [])}
    script.record_release_check(
        new,
        {"val clean": 0.661, "val randomized": 0.411},
        {"val clean": 0.655, "val randomized": 0.362},
        sets,
    )
    spec = read_spec(new)
    assert spec.metrics["release_check"] == [
        {
            "data": "2 simulated validation fields (clean preset), seeds 150-151",
            "pearson_r": 0.661,
            "replaced_pearson_r": 0.655,
        },
        {
            "data": "16 simulated validation fields (domain-randomized), seeds 1150-1165",
            "pearson_r": 0.411,
            "replaced_pearson_r": 0.362,
        },
    ]
    assert (new / "weights.safetensors").read_bytes() == weights
    assert any(
        line.startswith("release check Pearson r 0.41 on 16 simulated validation fields")
        and line.endswith("the model it replaced: 0.36")
        for line in card_lines(spec)
    )


def test_evaluate_record_judges_every_later_model_against_the_first(
    load_script, tmp_path, monkeypatch, capsys
):
    """--evaluate REPLACED NEW --record: the first folder is the model replaced (its card is left
    as it was), the later one gets the release check with both models' validation scores."""
    import shutil

    from napari_labelfree.core.bundle import BUILTIN_DIR, read_spec

    script = load_script("train_builtin_models")
    for name in ("replaced", "new"):
        shutil.copytree(BUILTIN_DIR / "dna", tmp_path / name / "dna")
    before = (tmp_path / "replaced" / "dna" / "config.json").read_text()
    # no rendering: each field set is its seeds, and a model's score is set by its folder
    monkeypatch.setattr(script, "fields", lambda seeds: list(seeds))
    monkeypatch.setattr(script, "randomized_fields", lambda seeds, *a, **k: list(seeds))
    monkeypatch.setattr(script, "pairs", lambda ims, structure, seeds: list(seeds))
    score = {"replaced": 0.3, "new": 0.5}

    def fake_evaluate(bundle, pairs, device):
        return [{"pearson_r": score[bundle.path.parent.name]} for _ in pairs]

    monkeypatch.setattr(script, "evaluate_model", fake_evaluate)
    dirs = [tmp_path / "replaced", tmp_path / "new"]
    argv = ["--evaluate", *map(str, dirs), "--structures", "dna", "--record"]
    assert script.main([*argv, "--clean-decision-fields", "16"]) == 0
    assert capsys.readouterr().out.count("EVAL ") == 2
    assert (tmp_path / "replaced" / "dna" / "config.json").read_text() == before
    check = read_spec(tmp_path / "new" / "dna").metrics["release_check"]
    assert [(e["pearson_r"], e["replaced_pearson_r"]) for e in check] == [(0.5, 0.3), (0.5, 0.3)]
    assert check[0]["data"] == "16 simulated validation fields (clean preset), seeds 150-165"
    assert check[1]["data"].startswith("4 simulated validation fields (domain-randomized)")
