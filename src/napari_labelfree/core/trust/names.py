"""Names and colours of the uncertainty outputs (no torch: the CLI, the plan and widgets read them)."""

from __future__ import annotations

from collections.abc import Sequence

UNCERTAINTY_SUFFIX = " (uncertainty)"
UNCERTAINTY_COLORMAP = "magma"  # perceptually uniform, unlike any structure's colour


def uncertainty_name(name: str) -> str:
    """The output that holds the uncertainty of output ``name``."""
    return f"{name}{UNCERTAINTY_SUFFIX}"


def with_uncertainty_names(names: Sequence[str], uncertainty: bool) -> list[str]:
    """Every output of a prediction: the models', then (with uncertainty) one such per model."""
    return [*names, *(uncertainty_name(n) for n in names)] if uncertainty else list(names)


def combine_across_models(results: dict, names: Sequence[str], structures: Sequence[str]) -> None:
    """Models of one structure predicted together: each one's uncertainty becomes their joint spread.

    ``results`` holds per output name a ZYX array (predictions, and their TTA spreads under
    :func:`uncertainty_name`). For a structure predicted by two or more models the spread over all
    their variants is sqrt(mean of the models' variances + variance of the models' means), the
    law of total variance with the models weighted equally; it replaces each of their
    uncertainties in place. Structures with one model are left as they are. Voxel-wise, so blocks
    of a frame give the frame's result.
    """
    import numpy as np

    by_structure: dict[str, list[str]] = {}
    for name, structure in zip(names, structures, strict=True):
        by_structure.setdefault(structure, []).append(name)
    for group in by_structure.values():
        if len(group) < 2:
            continue
        means = np.stack([np.asarray(results[n], dtype=np.float32) for n in group])
        spreads = np.stack([np.asarray(results[uncertainty_name(n)], np.float32) for n in group])
        total = np.sqrt(np.mean(spreads**2, axis=0) + np.var(means, axis=0)).astype(np.float32)
        for n in group:
            results[uncertainty_name(n)] = total
