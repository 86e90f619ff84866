"""Fine-tuning: start training from an existing model (built-in, imported or trained by a user).

The starting model gives the weights, the architecture, the voxel size (the training grid) and the
normalization of the new one; the new model keeps its own structure, target, colour and name. A
model's grid and normalization are part of what its weights mean, so they are not options here:
to change them, train from scratch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from ..bundle import ModelBundle, resolve_model
from ..config import ModelSpec
from ..errors import LabelFreeError


def resolve_init(init: str | Path | ModelBundle) -> ModelBundle:
    """The starting model: a bundle, a model folder, or the name of a discovered model."""
    bundle = init if isinstance(init, ModelBundle) else resolve_model(init)
    if bundle.spec.ensemble:  # K networks: which one would it start from?
        raise LabelFreeError(
            f"{bundle.name} is an ensemble of {bundle.spec.ensemble_size} networks; start from "
            "a single model (training with an ensemble option starts each member from it)",
            field="init",
        )
    _refuse_broken_weights(bundle)
    return bundle


def _refuse_broken_weights(start: ModelBundle) -> None:
    """A starting model whose weights hold NaN or infinity is broken: said before any training.

    Trained from, it would make the first loss NaN, and the divergence guard would then blame the
    learning rate.
    """
    from ..weights import load_network
    from .guard import weights_are_finite

    if not weights_are_finite(load_network(start)):
        raise LabelFreeError(
            f"the starting model {start.name} ({start.path}) is broken: its weights hold NaN or "
            "infinite values; start from another model (--init), or train a new network with "
            "--init none",
            field="init",
        )


def spec_from_init(spec: ModelSpec, start: ModelBundle) -> ModelSpec:
    """``spec`` with the starting model's architecture, voxel size and normalization.

    Provenance records where the weights came from (``provenance["init"]``).
    """
    out = copy.deepcopy(spec)
    src = start.spec
    if src.architecture.in_channels != 1 or src.architecture.out_channels != 1:
        raise LabelFreeError(
            f"{start.name} has {src.architecture.in_channels} input and "
            f"{src.architecture.out_channels} output channels; fine-tuning needs a model with one "
            "of each"
        )
    out.architecture = copy.deepcopy(src.architecture)
    out.voxel_size_um = tuple(src.voxel_size_um)  # type: ignore[assignment]
    out.normalization = copy.deepcopy(src.normalization)
    out.target_projection = src.target_projection  # a 2.5D model keeps what it predicts
    out.provenance["init"] = {
        "model": start.name,
        "structure": src.structure,
        "source": start.source,
        "path": str(start.path),
        "iterations": src.provenance.get("iterations"),
    }
    return out


def load_init_weights(net: torch.nn.Module, start: ModelBundle) -> None:
    """Copy the starting model's weights into ``net`` (built from :func:`spec_from_init`'s spec)."""
    from ..weights import read_network

    src = read_network(start.path, start.spec)
    with torch.no_grad():
        for name, value in src.state_dict().items():
            net.state_dict()[name].copy_(value)


def init_scores(start: ModelBundle, val_arrays: list, device: torch.device) -> dict[str, Any]:
    """The starting model's whole-image scores on the run's validation data (the "before").

    ``val_arrays`` are the run's prepared (signal, target, name) validation images, already at the
    starting model's grid (a fine-tuned model keeps it), so they are predicted without resampling.
    """
    from ..data import ImagePair
    from .evaluate import evaluate_model, mean_score

    pairs = [ImagePair(s, t, None, n) for s, t, n in val_arrays]
    per_image = evaluate_model(start, pairs, device)
    return {
        "init_model": start.name,
        "init_val_pearson_r_mean": mean_score([r["pearson_r"] for r in per_image]),
        "init_val_nl2_mean": mean_score([r["nl2"] for r in per_image]),
    }
