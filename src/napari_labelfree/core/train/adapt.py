"""Adapting a model to a user's own pair, the default path of training (no torch here).

When a built-in model of the structure exists, training starts from it unless told otherwise
(``labelfree train --init none``; the Train widget's "Start from"), on the adaptation budget
(``core.train.config.ADAPTATION``), and ends by comparing the starting model with the adapted one
on the same held-out data (``metrics.init_val_pearson_r_mean`` against ``val_pearson_r_mean``,
written by the training loop): :func:`before_after` is the line both front ends show (the Train
widget through :func:`held_out_score`, which gives a new network's score alone).
"""

from __future__ import annotations

from typing import Any

from ..bundle import ModelBundle


def builtin_for(structure: str) -> ModelBundle | None:
    """The built-in model of ``structure`` (the default starting point of training), or None."""
    from ..bundle import discover_models

    wanted = structure.strip().lower()
    for bundle in discover_models():
        if bundle.source == "builtin" and bundle.spec.structure.lower() == wanted:
            return bundle
    return None


def before_after(metrics: dict[str, Any]) -> str | None:
    """One line comparing the starting model with the adapted one on the held-out data, or None.

    E.g. "built-in dna: r 0.12 -> adapted: r 0.61 on your held-out strip".
    """
    before, after = metrics.get("init_val_pearson_r_mean"), metrics.get("val_pearson_r_mean")
    if before is None or after is None:
        return None
    name = metrics.get("init_model", "starting model")
    return f"{name}: r {before:.2f} -> adapted: r {after:.2f} on {_held_out(metrics)}"


def held_out_score(metrics: dict[str, Any]) -> str | None:
    """The line a training ends with: :func:`before_after` for an adapted model, else the new
    model's score on the held-out data ("new network: r 0.61 on your held-out strip"), or None
    where nothing was held out."""
    after = metrics.get("val_pearson_r_mean")
    if after is None:
        return None
    return before_after(metrics) or f"new network: r {after:.2f} on {_held_out(metrics)}"


def _held_out(metrics: dict[str, Any]) -> str:
    return "your held-out strip" if metrics.get("val_source") == "strip" else "your validation data"
