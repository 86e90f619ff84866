"""Add training-input statistics (core.trust) to model folders trained on simulated fields.

Only config.json changes (a new "input_statistics" entry, the rest kept as it was); the weights
are not read or written. The statistics come from the simulated fields the model's provenance
names (``provenance.simulation``: shape, voxel size, training seeds; ``provenance.training``:
patch shape and seed), as scripts/train_builtin_models.py records them, computed by
``napari_labelfree.core.trust.builtin.builtin_statistics``.

Usage::

    python scripts/add_model_statistics.py                   # every built-in model
    python scripts/add_model_statistics.py path/to/model ... # these folders
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*", type=Path, help="model folders [the built-in models]")
    args = ap.parse_args(argv)
    folders = args.folders or sorted(
        p for p in BUILTIN_DIR.iterdir() if (p / CONFIG_NAME).is_file()
    )
    done: dict[str, dict] = {}  # models trained on the same fields share their statistics
    for folder in folders:
        spec = read_spec(folder)
        key = json.dumps(
            [
                spec.provenance.get("simulation"),
                spec.provenance.get("training", {}).get("patch_shape"),
                spec.provenance.get("training", {}).get("seed"),
                spec.voxel_size_um,
                repr(spec.normalization),
            ],
            sort_keys=True,
        )
        t0 = time.time()
        if key not in done:
            done[key] = builtin_statistics(spec)
        path = folder / CONFIG_NAME
        config = json.loads(path.read_text(encoding="utf-8"))
        config["input_statistics"] = done[key]
        with atomic_file(path) as tmp:
            Path(tmp).write_text(json.dumps(config, indent=2), encoding="utf-8")
        print(f"{folder.name}: statistics added ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
