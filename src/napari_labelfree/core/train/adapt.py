"""Adapting a model to a user's own pair, the default path of training (no torch here).

When a built-in model of the structure exists, training starts from it unless told otherwise
(``labelfree train --init none``; the Train widget's "Start from"), on the adaptation budget
(``core.train.config.ADAPTATION``), and ends by comparing the starting model with the adapted one
on the same held-out data (``metrics.init_val_pearson_r_mean`` against ``val_pearson_r_mean``,
written by the training loop): :func:`before_after` is the line both front ends show.
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
    where = (
        "your held-out strip" if metrics.get("val_source") == "strip" else "your validation data"
    )
    name = metrics.get("init_model", "starting model")
    return f"{name}: r {before:.2f} -> adapted: r {after:.2f} on {where}"
