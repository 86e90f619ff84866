"""Model cards: what a model was trained on and which score came from which data."""

from __future__ import annotations

from napari_labelfree.cli import main
from napari_labelfree.core.bundle import resolve_model
from napari_labelfree.core.config import ModelSpec
from napari_labelfree.core.model_card import (
    IMPORTED,
    REAL,
    SIMULATED,
    UNKNOWN,
    card_lines,
    model_card,
)


def test_a_builtin_model_says_it_learned_from_simulated_cells_first():
    spec = resolve_model("dna").spec
    card = model_card(spec)
    assert card.trained_on == SIMULATED
    assert card.warning is not None and "simulated cells only" in card.warning
    held_out = [s for s in card.scores if s.kind == "held-out simulated"]
    assert held_out and all("simulated" in s.data for s in held_out)
    lines = card_lines(spec)
    assert lines[0].startswith("NOTE: trained on simulated cells only")


def test_real_scores_are_listed_with_their_data_and_kind():
    spec = ModelSpec(
        "dna",
        provenance={"data": "simulated only: domain-randomized fields"},
        metrics={
            "test_pearson_r": 0.9,
            "test_set": "held-out simulated fields (clean preset), seeds [200, 201]",
            "randomized_test_pearson_r": 0.7,
            "randomized_test_set": "held-out domain-randomized fields, seeds [1200]",
            "real_data": [
                {
                    "kind": "zero-shot",
                    "data": "ISL phase contrast -> DAPI, test quarter",
                    "pearson_r": 0.31,
                },
                {
                    "kind": "fine-tuned",
                    "data": "ISL DAPI",
                    "pearson_r": 0.74,
                    "how": "500 iterations",
                },
            ],
        },
    )
    card = model_card(spec)
    kinds = [(s.kind, round(s.value, 2)) for s in card.scores]
    assert kinds == [
        ("held-out simulated", 0.9),
        ("held-out simulated", 0.7),
        ("zero-shot real", 0.31),
        ("fine-tuned real", 0.74),
    ]
    assert "real images are listed" in card.warning
    assert (
        "zero-shot real Pearson r 0.31 on ISL phase contrast -> DAPI, test quarter"
        in card_lines(spec)
    )
    assert any(line.endswith("ISL DAPI; 500 iterations") for line in card_lines(spec))


def test_a_users_model_reports_its_strip_and_the_starting_model_before_it():
    spec = ModelSpec(
        "dna",
        provenance={
            "created_by": "napari-labelfree iter_train",
            "n_train_images": 1,
            "init": {"model": "dna"},
        },
        metrics={
            "val_pearson_r_mean": 0.61,
            "val_source": "strip",
            "init_val_pearson_r_mean": 0.12,
            "init_model": "dna",
        },
    )
    card = model_card(spec)
    assert card.trained_on == UNKNOWN and card.warning is None
    assert "1 image pair(s)" in card.data and "starting from the model dna" in card.data
    assert [(s.kind, s.value) for s in card.scores] == [("validation", 0.61), ("before", 0.12)]
    assert "a held-out strip of its training images" in card.scores[0].data


def test_a_retrained_builtin_shows_the_validation_fields_that_decided_its_release():
    """The trainer's few validation fields pick an iteration; the release check beside the model
    it replaced says why a retrained built-in ships, so neither reads as the other."""
    spec = ModelSpec(
        "dna",
        provenance={
            "data": "simulated only: domain-randomized fields",
            "simulation": {"val_seeds": [150, 1150, 1151]},
        },
        metrics={
            "val_pearson_r_mean": 0.56,
            "init_val_pearson_r_mean": 0.60,
            "init_model": "dna",
            "release_check": [
                {
                    "data": "16 simulated validation fields (domain-randomized), seeds 1150-1165",
                    "pearson_r": 0.411,
                    "replaced_pearson_r": 0.362,
                },
                {"data": "broken entry", "pearson_r": "n/a"},
            ],
        },
    )
    lines = card_lines(spec)
    assert (
        "validation Pearson r 0.56 on its 3 validation fields (simulated; they chose the best "
        "iteration)" in lines
    )
    assert (
        "release check Pearson r 0.41 on 16 simulated validation fields (domain-randomized), "
        "seeds 1150-1165; the model it replaced: 0.36" in lines
    )
    assert not any("broken entry" in line for line in lines)


def test_imported_and_real_data_models():
    imported = ModelSpec("dna", provenance={"imported_from": "pytorch_fnet model.p"})
    assert model_card(imported).trained_on == IMPORTED
    real = ModelSpec("dna", provenance={"data": "ISL condition B, left three quarters"})
    assert model_card(real).trained_on == REAL and model_card(real).warning is None
    assert card_lines(ModelSpec("x"))[-1] == "scores: none recorded"


def test_labelfree_models_lists_the_training_data_and_shows_a_card(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "TRAINED ON" in out.splitlines()[0]
    assert "learned from simulated cells only" in out
    assert main(["models", "dna"]) == 0
    out = capsys.readouterr().out
    assert "NOTE: trained on simulated cells only" in out and "held-out simulated Pearson r" in out


def test_a_simulated_model_without_real_data_says_why_it_has_no_real_score():
    note = "no real images of this structure were available to score it"
    spec = ModelSpec(
        "tom20",
        provenance={"data": "simulated only: domain-randomized fields"},
        metrics={"test_pearson_r": 0.7, "real_data_note": note},
    )
    card = model_card(spec)
    assert card.no_real_score == note
    assert card.warning.startswith(f"trained on simulated cells only: {note}")
    assert f"real images: no score; {note}" in card_lines(spec)
    # a real score, once measured, replaces the note
    spec.metrics["real_data"] = [{"kind": "zero-shot", "data": "real", "pearson_r": 0.2}]
    card = model_card(spec)
    assert card.no_real_score is None and "listed below" in card.warning
    assert not any(line.startswith("real images: no score") for line in card_lines(spec))


def test_every_builtin_model_has_a_real_score_or_says_why_it_has_none():
    """The built-ins learned from simulated cells; each card either lists a score on real images
    or says that no real images of its structure were at hand (never a blank)."""
    from napari_labelfree.core.bundle import BUILTIN_DIR, read_spec

    folders = sorted(p for p in BUILTIN_DIR.iterdir() if (p / "config.json").is_file())
    assert len(folders) == 6
    for folder in folders:
        spec = read_spec(folder)
        card = model_card(spec)
        assert card.trained_on == SIMULATED, folder.name
        real = [s for s in card.scores if s.kind.endswith("real")]
        if real:
            assert all("ISL" in s.data for s in real), folder.name
        else:
            assert "no real images of this structure were available" in card.no_real_score
            assert "no real images of this structure" in card.warning


def test_a_users_model_names_the_images_it_was_trained_on():
    names = ["a.ome.tif", "b.ome.tif", "c.ome.tif", "d.ome.tif", "e.ome.tif"]
    spec = ModelSpec(
        "dna",
        provenance={
            "created_by": "napari-labelfree iter_train",
            "n_train_images": 5,
            "training_images": names,
        },
    )
    data = model_card(spec).data
    assert data == (
        "trained here on 5 image pair(s) given by its user: a.ome.tif, b.ome.tif, c.ome.tif "
        "and 2 more"
    )
