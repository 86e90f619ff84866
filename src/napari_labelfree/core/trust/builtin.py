"""Training-input statistics of models trained on simulated fields (the built-in models).

Training stores them itself (``core.train.loop``); this recomputes them, without the weights,
for models whose config.json predates them: the same simulated fields, normalized and resampled
exactly as training prepared them (``core.train.patches.prepare_pair``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import ModelSpec
from .ood import clean_simulated_modality
from .stats import training_statistics


def simulated_statistics(
    spec: ModelSpec,
    seeds: Sequence[int],
    shape: Sequence[int],
    voxel_size: Sequence[float],
    modality: str = "bright-field",
    patch_shape: Sequence[int] = (16, 32, 32),
    seed: int = 0,
) -> dict[str, Any]:
    """Statistics of the transmitted-light channel of ``core.synth.simulate`` fields.

    Parameters
    ----------
    spec
        The model (its voxel size and normalization say what the network saw).
    seeds, shape, voxel_size, modality
        The simulated training fields, as the training script made them.
    patch_shape
        The training patch (images smaller than it were mirror-padded to it, as here).
    seed
        The training seed (``TrainConfig.seed``): which random patches are summarized.
    """
    from ..data import ImagePair
    from ..synth import simulate
    from ..train.patches import prepare_pair

    grids = []
    for s in seeds:
        im = simulate(shape=shape, voxel_size=voxel_size, structures=(), seed=s, modality=modality)
        signal = im.data[0, 0]
        pair = ImagePair(signal, signal, tuple(im.voxel_size), f"simulated seed {s}")
        grids.append(prepare_pair(pair, spec.voxel_size_um, patch_shape, spec.normalization)[0])
    return training_statistics(grids, seed)


def builtin_statistics(spec: ModelSpec) -> dict[str, Any]:
    """:func:`simulated_statistics` with the settings a built-in model's provenance records.

    ``scripts/train_builtin_models.py`` writes them (``provenance.simulation``: shape, voxel
    size, training seeds; ``provenance.training``: patch shape and seed).
    """
    sim = spec.provenance.get("simulation") or {}
    training = spec.provenance.get("training") or {}
    if not sim.get("train_seeds"):
        raise ValueError(
            f"model {spec.structure}: its provenance names no simulated training fields"
        )
    return simulated_statistics(
        spec,
        seeds=[int(s) for s in sim["train_seeds"]],
        shape=tuple(sim["shape_zyx"]),
        voxel_size=tuple(sim["voxel_size_um"]),
        modality=clean_simulated_modality(spec),
        patch_shape=tuple(training.get("patch_shape", (16, 32, 32))),
        seed=int(training.get("seed", 0)),
    )
