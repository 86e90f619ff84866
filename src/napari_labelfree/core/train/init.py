"""Fine-tuning: start training from an existing model (built-in, imported or trained by a user).

The starting model gives the weights, the architecture, the voxel size (the training grid) and the
normalization of the new one; the new model keeps its own structure, target, colour and name. A
model's normalization is part of what its weights mean, so it is not an option here. Its grid is
kept too, except that images coarser than it are not upsampled (:func:`adaptation_grid`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..bundle import ModelBundle, resolve_model
from ..config import ModelSpec
from ..data import NOT_RECORDED
from ..errors import LabelFreeError
from ..trust.ood import seen_modalities
from ..trust.seen import lineage


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
            "infinite values; start from another model, or train a new network",
            field="init",  # the command line names --init, the Train widget marks Start from
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
    # a model keeps what it predicts; a 3D model's network, which predicts every plane, may
    # learn a projection at every plane too (a 2.5D window's centre plane cannot become one)
    out.target_projection = src.target_projection
    if src.kind == "unet3d" and not src.target_projection:
        out.target_projection = spec.target_projection
    out.provenance["init"] = {
        "model": start.name,
        "structure": src.structure,
        "source": start.source,
        "path": str(start.path),
        "iterations": src.provenance.get("iterations"),
        # what the start learned from, so that prediction knows every modality this model saw
        "input_modalities": sorted(seen_modalities(src) or {NOT_RECORDED}),
    }
    # the images it learned from through its start: a score on them is no held-out score either
    learned = {k: v for k, v in lineage(src).items() if v}
    out.provenance["init"].update(learned)
    return out


def adaptation_grid(
    model_voxel: Sequence[float], data_voxels: Sequence[Sequence[float] | None]
) -> tuple[float, float, float]:
    """The grid (um, Z, Y, X) a fine-tuned model trains at: the starting model's, coarsened on
    each axis to the training images' own where every image is coarser.

    Upsampling an image to a finer grid adds voxels, not information: a patch of the same size
    then covers less of the cells, and each step costs more. On the real ISL field (z-step
    1-2 um, 0.44 um pixels; docs/real-cells.md) fine-tuning the built-in ``dna`` at its 0.29 um grid
    scored below training from scratch on the field's own grid, on the automatic validation
    strip as on the test part; on the field's own grid it did not. Images of unknown voxel size
    (None) are on the model's grid, as everywhere in training: then the model's grid stays.
    """
    model = tuple(float(v) for v in model_voxel)
    if not data_voxels or any(v is None for v in data_voxels):
        return model  # type: ignore[return-value]
    finest = [min(float(v[axis]) for v in data_voxels) for axis in range(3)]
    return tuple(max(m, f) for m, f in zip(model, finest, strict=True))  # type: ignore[return-value]


# a U-Net's decoder (core.unet.Level): the up-convolutions, their BatchNorm, the convolutions
# after each skip connection, and the output layer
DECODER_PARTS = frozenset({"up", "up_bn", "decode", "head"})


def is_reset(name: str, reset: Sequence[str]) -> bool:
    """Whether weight ``name`` is one of ``reset``: "decoder" (every level's up-convolution and
    decoding convolutions, and the head) or a name prefix (e.g. "head", "body.decode")."""
    parts = name.split(".")
    for entry in reset:
        if entry == "decoder" and not DECODER_PARTS.isdisjoint(parts):
            return True
        if entry != "decoder" and name.startswith(entry):
            return True
    return False


def _mixes(shrink: float, perturb: float) -> bool:
    """Whether shrink and perturb change the starting weights (1 and 0 copy them exactly)."""
    return shrink != 1.0 or perturb != 0.0


def warm_start_provenance(shrink: float, perturb: float, reset: Sequence[str]) -> dict:
    """What :func:`load_init_weights` did beyond an exact copy, for ``provenance.init`` ({} for
    a copy)."""
    out: dict = {}
    if _mixes(shrink, perturb):
        out["shrink_perturb"] = {
            "shrink": shrink,
            "perturb": perturb,
            "how": "each starting weight w became shrink * w + perturb * (this run's fresh "
            "initial weight); BatchNorm running statistics copied",
        }
    if reset:
        out["reset"] = list(reset)
    return out


def load_init_weights(
    net: torch.nn.Module,
    start: ModelBundle,
    shrink: float = 1.0,
    perturb: float = 0.0,
    reset: Sequence[str] = (),
) -> None:
    """Put the starting model's weights into ``net`` (built from :func:`spec_from_init`'s spec).

    ``net`` holds the run's own fresh (seeded) initial weights when this is called. Every
    learnable weight ``w`` of the starting model becomes ``shrink * w + perturb * w_fresh``
    (shrink and perturb, Ash & Adams 2020); buffers (BatchNorm's running statistics) are copied
    as they are. 1 and 0 copy the starting model exactly. Weights (and buffers) named by
    ``reset`` keep their fresh values (:func:`is_reset`).
    """
    from ..weights import read_network

    src = read_network(start.path, start.spec)
    learnable = {name for name, _ in net.named_parameters()}
    mixed = _mixes(shrink, perturb)
    with torch.no_grad():
        mine = net.state_dict()
        for name, value in src.state_dict().items():
            if is_reset(name, reset):
                continue
            if mixed and name in learnable:
                mine[name].copy_(shrink * value.to(mine[name]) + perturb * mine[name])
            else:
                mine[name].copy_(value)


def init_scores(
    start: ModelBundle,
    val_arrays: list,
    device: torch.device,
    grid: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The starting model's whole-image scores on the run's validation data (the "before").

    ``val_arrays`` are the run's prepared (signal, target, name) validation images at the run's
    ``grid`` (:func:`adaptation_grid`; None: the starting model's), predicted from there as a user
    predicts them (resampled to the starting model's grid and back), so that the before and after
    are scored on the same voxels.
    """
    from ..data import ImagePair
    from .evaluate import evaluate_model, mean_score

    vox = tuple(grid) if grid is not None else None
    pairs = [ImagePair(s, t, vox, n) for s, t, n in val_arrays]
    per_image = evaluate_model(start, pairs, device)
    return {
        "init_model": start.name,
        "init_val_pearson_r_mean": mean_score([r["pearson_r"] for r in per_image]),
        "init_val_nl2_mean": mean_score([r["nl2"] for r in per_image]),
    }
