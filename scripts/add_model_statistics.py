"""Add training-input statistics (core.trust) to model folders trained on simulated fields.

Only config.json changes (a new "input_statistics" entry, the rest kept as it was); the weights
are not read or written. The statistics come from the simulated fields the model's provenance
names (``provenance.simulation``: shape, voxel size, training seeds; ``provenance.training``:
patch shape and seed), as scripts/train_builtin_models.py records them, computed by
``napari_labelfree.core.trust.builtin.builtin_statistics``; for a model trained on
domain-randomized fields too (``provenance.simulation.randomized``), from those fields as well
(seeds 1000 and up, rendered by scripts/train_builtin_models.py's ``randomized_fields`` with the
recorded phase-contrast share; ``--cache`` reuses its .npz files). Training writes the same
statistics itself; this recomputes them for a folder whose config.json lacks or lost them, or
whose statistics predate the kinds of images (``components``, core/trust/stats.py).

Usage::

    python scripts/add_model_statistics.py                   # every built-in model
    python scripts/add_model_statistics.py path/to/model ... # these folders
    python scripts/add_model_statistics.py src/napari_labelfree/models/dna --cache /tmp/fields
    python scripts/add_model_statistics.py src/napari_labelfree/models/lamin-b1 --calibrate

``--calibrate`` also widens each group's limit so that the training images that formed no kind
pass (``calibration``, core/trust/ood.py); ``--calibrate all``, so that every training image does.
Decided per model on validation fields (docs/trust.md): the built-in lamin-b1, fibrillarin, sec61b
and cellmask have the first, tom20 the second, dna none. A model whose statistics carry a
calibration keeps it (of the same images) when they are recomputed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from napari_labelfree.core.bundle import BUILTIN_DIR, CONFIG_NAME, read_spec
from napari_labelfree.core.files import atomic_file
from napari_labelfree.core.trust.builtin import builtin_statistics
from napari_labelfree.core.trust.stats import CALIBRATION_IMAGES


def randomized_statistics(spec, cache: Path | None, calibrate: str | None = None) -> dict:
    """Statistics of the clean-preset and domain-randomized fields a model was trained on."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_builtin_models import RANDOM_FIRST_SEED, fields, randomized_fields

    from napari_labelfree.core.data import ImagePair
    from napari_labelfree.core.synth import STRUCTURES
    from napari_labelfree.core.train.patches import prepare_pair
    from napari_labelfree.core.trust.ood import calibration
    from napari_labelfree.core.trust.stats import training_statistics

    sim = spec.provenance["simulation"]
    training = spec.provenance.get("training") or {}
    seeds = [int(s) for s in sim["train_seeds"]]
    clean = tuple(s for s in seeds if s < RANDOM_FIRST_SEED)
    rand = tuple(s for s in seeds if s >= RANDOM_FIRST_SEED)
    share = float(sim.get("phase_contrast_share", 0.0))
    # every structure's targets, as the training script renders them for several models at once:
    # the same cached .npz files (the transmitted light does not depend on the structures)
    ims = fields(clean) + randomized_fields(rand, list(STRUCTURES), cache, share)
    patch = tuple(training.get("patch_shape", (16, 32, 32)))
    grids = []
    for im, seed in zip(ims, clean + rand, strict=True):
        sig = im.data[0, 0]
        pair = ImagePair(sig, sig, tuple(im.voxel_size), f"simulated seed {seed}")
        grids.append(prepare_pair(pair, spec.voxel_size_um, patch, spec.normalization)[0])
    return training_statistics(
        grids,
        int(training.get("seed", 0)),
        calibration if calibrate else None,
        calibrate or "no kind",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*", type=Path, help="model folders [the built-in models]")
    ap.add_argument(
        "--cache", type=Path, default=None, help="randomized fields' .npz files (reused, kept)"
    )
    ap.add_argument(
        "--calibrate",
        nargs="?",
        const="no-kind",
        choices=("no-kind", "all"),
        default=None,
        help="also calibrate the limits on the training fields that formed no kind, or on all "
        "of them (models trained on domain-randomized fields; core/trust/ood.py calibration)",
    )
    args = ap.parse_args(argv)
    folders = args.folders or sorted(
        p for p in BUILTIN_DIR.iterdir() if (p / CONFIG_NAME).is_file()
    )
    plans = []
    for folder in folders:
        spec = read_spec(folder)
        randomized = bool((spec.provenance.get("simulation") or {}).get("randomized"))
        # a model keeps the calibration decided for it (docs/trust.md) unless asked for one
        kept = (spec.input_statistics or {}).get("calibration")
        calibrate = args.calibrate.replace("-", " ") if args.calibrate else None
        if calibrate is None and isinstance(kept, dict):
            images = kept.get("images")
            calibrate = images if images in CALIBRATION_IMAGES else "no kind"
        if calibrate and not randomized:
            ap.error(f"{folder.name}: --calibrate is for models trained on randomized fields")
        plans.append((folder, spec, randomized, calibrate))
    done: dict[str, dict] = {}  # models trained on the same fields share their statistics
    for folder, spec, randomized, calibrate in plans:
        key = json.dumps(
            [
                spec.provenance.get("simulation"),
                spec.provenance.get("training", {}).get("patch_shape"),
                spec.provenance.get("training", {}).get("seed"),
                spec.voxel_size_um,
                repr(spec.normalization),
                calibrate,
            ],
            sort_keys=True,
        )
        t0 = time.time()
        if key not in done:
            done[key] = (
                randomized_statistics(spec, args.cache, calibrate)
                if randomized
                else builtin_statistics(spec)
            )
        path = folder / CONFIG_NAME
        config = json.loads(path.read_text(encoding="utf-8"))
        config["input_statistics"] = done[key]
        with atomic_file(path) as tmp:
            Path(tmp).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        print(f"{folder.name}: statistics added ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
