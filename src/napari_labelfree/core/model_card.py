"""A model's card: what it was trained on and which score came from which data, in plain words.

Read from ``config.json`` (``provenance`` and ``metrics``), never from anything else, so that the
CLI (``labelfree models NAME``) and the widgets' model details say the same. A model trained on
simulated cells only says so first: its scores on simulated fields say nothing about real cells.

Scores a card knows (``metrics`` keys):

* ``test_pearson_r`` / ``test_nl2`` with ``test_set`` (held-out fields, e.g. simulated);
* ``randomized_test_pearson_r`` with ``randomized_test_set`` (held-out domain-randomized fields);
* ``real_data``: a list of ``{"kind": "zero-shot" | "fine-tuned", "data": ..., "pearson_r": ...,
  "nl2": ..., "how": ...}``, scores on real images (``kind`` says whether the model saw any of
  that data);
* ``real_data_note``: why there is no score on real images (e.g. no real images of the structure
  were at hand), said in the card instead of a score;
* ``val_pearson_r_mean`` (whole validation images; ``val_source`` "strip": a held-out strip of the
  training images) and ``init_val_pearson_r_mean`` (the starting model on the same data);
* ``release_check``: a list of ``{"data": ..., "pearson_r": ..., "replaced_pearson_r": ...}``, the
  validation fields on which a retrained built-in was judged against the model it replaced
  (``scripts/train_builtin_models.py --evaluate ... --record``). The trainer's own validation
  images are few (they pick the best iteration); these say why the model ships.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .config import ModelSpec

SIMULATED, REAL, IMPORTED, UNKNOWN = "simulated", "real", "imported", "unknown"


@dataclass
class Score:
    """One score and the data it came from."""

    name: str  # "Pearson r", "nl2"
    value: float
    data: str  # which images, in words
    kind: str  # "held-out simulated", "zero-shot real", "fine-tuned real", "validation", ...


@dataclass
class ModelCard:
    """What a model was trained on and its scores, each with its data."""

    trained_on: str  # SIMULATED, REAL, IMPORTED or UNKNOWN
    data: str  # the training data in words
    warning: str | None  # said before anything else where a user might over-trust the model
    scores: list[Score] = field(default_factory=list)
    no_real_score: str | None = None  # why no score on real images exists, when the config says


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def names_listed(names: list[str], shown: int = 3) -> str:
    """'a, b, c and 2 more': the first ``shown`` names, and how many others."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def trained_on(spec: ModelSpec) -> tuple[str, str]:
    """(kind, description) of the data a model's weights were fitted to."""
    prov = spec.provenance
    data = str(prov.get("data", ""))
    init = prov.get("init") or {}
    if prov.get("imported_from"):
        return IMPORTED, f"imported from {prov['imported_from']} (its author's data)"
    if data.lower().startswith("simulated"):
        return SIMULATED, data
    if data:
        return REAL, data
    if prov.get("created_by") == "napari-labelfree iter_train":
        names = [str(n) for n in prov.get("training_images") or []]
        n = prov.get("n_train_images")
        what = f"{n} image pair(s)" if n is not None else "image pairs"
        if names:  # the names its user gave them (files, or napari layers)
            text = f"trained here on {what} given by its user: {names_listed(names)}"
        else:
            text = f"trained here on {what} given by its user (not recorded which)"
        if init:
            text += f", starting from the model {init.get('model')}"
        return UNKNOWN, text
    return UNKNOWN, "not recorded"


def _validation_images(spec: ModelSpec, kind: str) -> str:
    """The trainer's validation images in words; a built-in's are few simulated fields that chose
    its best iteration, which a card must say lest they read as the model's quality."""
    sim = spec.provenance.get("simulation") or {}
    seeds = sim.get("val_seeds") if isinstance(sim, dict) else None
    if kind == SIMULATED and isinstance(seeds, list) and seeds:
        return f"its {len(seeds)} validation fields (simulated; they chose the best iteration)"
    return "its validation images" + (" (simulated)" if kind == SIMULATED else "")


def model_card(spec: ModelSpec) -> ModelCard:
    """The card of a model from its spec."""
    kind, data = trained_on(spec)
    m = spec.metrics
    scores: list[Score] = []
    r = _num(m.get("test_pearson_r"))
    if r is not None:
        test_set = str(m.get("test_set") or "held-out test images")
        sim = kind == SIMULATED or "simulated" in test_set
        scores.append(Score("Pearson r", r, test_set, "held-out simulated" if sim else "test"))
    r = _num(m.get("randomized_test_pearson_r"))
    if r is not None:
        scores.append(
            Score(
                "Pearson r",
                r,
                str(m.get("randomized_test_set") or "held-out domain-randomized fields"),
                "held-out simulated",
            )
        )
    for entry in m.get("real_data") or []:
        r = _num(entry.get("pearson_r")) if isinstance(entry, dict) else None
        if r is None:
            continue
        how = f"; {entry['how']}" if entry.get("how") else ""
        scores.append(
            Score(
                "Pearson r",
                r,
                f"{entry.get('data', 'real images')}{how}",
                f"{entry.get('kind', '')} real",
            )
        )
    r = _num(m.get("val_pearson_r_mean"))
    if r is not None:
        where = (
            "a held-out strip of its training images"
            if m.get("val_source") == "strip"
            else _validation_images(spec, kind)
        )
        scores.append(Score("Pearson r", r, where, "validation"))
        before = _num(m.get("init_val_pearson_r_mean"))
        if before is not None:
            scores.append(
                Score(
                    "Pearson r",
                    before,
                    f"{where}, by the starting model {m.get('init_model')}",
                    "before",
                )
            )
    for entry in m.get("release_check") or []:
        r = _num(entry.get("pearson_r")) if isinstance(entry, dict) else None
        if r is None:
            continue
        replaced = _num(entry.get("replaced_pearson_r"))
        was = f"; the model it replaced: {replaced:.2f}" if replaced is not None else ""
        scores.append(
            Score("Pearson r", r, f"{entry.get('data', 'validation fields')}{was}", "release check")
        )
    real = [s for s in scores if s.kind.endswith("real")]
    note = m.get("real_data_note")
    no_real = str(note) if note and not real else None
    warning = None
    if kind == SIMULATED:
        warning = "trained on simulated cells only"
        if real:
            warning += "; its scores on real images are listed below, check it on yours"
        else:
            warning += (
                f": {no_real or 'no score on real images'}; check it on your own images before "
                "trusting it"
            )
    return ModelCard(kind, data, warning, scores, no_real)


def card_lines(spec: ModelSpec) -> list[str]:
    """The card in a few plain lines (the CLI and the widgets show these)."""
    card = model_card(spec)
    lines = []
    if card.warning:
        lines.append(f"NOTE: {card.warning}")
    lines.append(f"trained on: {card.data}")
    modalities = spec.provenance.get("input_modalities")
    if isinstance(modalities, dict) and modalities:
        counted = ", ".join(f"{n} {m}" for m, n in sorted(modalities.items()))
        lines.append(f"input images: {counted} (as their files' acquisition metadata says)")
    if spec.ensemble:
        seeds = ", ".join(str(v) for v in spec.ensemble.get("seeds", []))
        lines.append(
            f"ensemble of {spec.ensemble_size} networks"
            + (f" (seeds {seeds})" if seeds else "")
            + f": predicts their mean, its uncertainty includes their spread; {spec.ensemble_size}"
            " x the prediction time of one"
        )
    if not card.scores:
        lines.append("scores: none recorded")
    for s in card.scores:
        lines.append(f"{s.kind} {s.name} {s.value:.2f} on {s.data}")
    if card.no_real_score:
        lines.append(f"real images: no score; {card.no_real_score}")
    return lines
