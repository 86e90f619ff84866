"""ISL condition B: the maximum or the mean of a 3D model's predicted planes, on validation strips.

A 3D network trained against a maximum projection repeated at every plane predicts a stack whose
every plane should be that projection; the package reduces it to one plane with the maximum over
z. This scores both reductions of the same prediction on each model's validation strip (the
strip of ``real_data_isl.py``'s recipe ``default+val``: the right 64 px of the quarter's training
part), for models that script trained (folders named ``default+val-TARGET-SPLIT-SEED``, kept in
its ``--out`` folder or its temporary one). Test parts are not read. Usage::

    OMP_NUM_THREADS=1 python benchmarks/real_data_isl.py --recipe default+val --width 16 \\
        --batch-size 4 --patch-shape 16 64 64 --split right left top bottom \\
        --targets DAPI MAP2 NFH --seeds 0 --out runs
    python benchmarks/projection_reduction.py runs/default+val-*
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_data_isl as isl  # noqa: E402  (the shared data, split and strip)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    isl.add_data_args(ap)
    ap.add_argument(
        "runs", nargs="+", type=Path, help="model folders default+val-TARGET-SPLIT-SEED"
    )
    ap.add_argument("--val-width", type=int, default=64)
    args = ap.parse_args(argv)

    from napari_labelfree.core.bundle import open_bundle
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.metrics import pearson_r
    from napari_labelfree.core.predict.run import iter_predict_volume

    rows, splits = [], {}
    for run in args.runs:
        _, target, split, seed = run.name.rsplit("-", 3)
        if split not in splits:
            splits[split] = isl.load_split(args, split)
        if splits[split] is None:
            return 0  # the data is absent: said by load_split
        bundle = open_bundle(run)
        sig, tgt, _, _ = isl.part(splits[split], target)
        _, _, val = isl.val_strip(sig, tgt, target, args.val_width, args.gap)
        grid = tuple(bundle.spec.voxel_size_um)
        tiling = TilingConfig(precision="fp32")
        outputs = drain(iter_predict_volume(val[0].signal, [bundle], grid, tiling=tiling))
        pred, truth = next(iter(outputs.values())), val[0].target[0]
        row = {
            "target": target,
            "split": split,
            "seed": int(seed),
            "val_r_max": round(pearson_r(pred.max(axis=0), truth), 4),
            "val_r_mean": round(pearson_r(pred.mean(axis=0), truth), 4),
        }
        print("RESULT " + json.dumps(row), flush=True)
        rows.append(row)
    top = np.array([r["val_r_max"] for r in rows])
    mean = np.array([r["val_r_mean"] for r in rows])
    print(
        f"strip r over {len(rows)} models: maximum {top.mean():.4f}, mean {mean.mean():.4f}; "
        f"the mean higher in {int((mean > top).sum())} of {len(rows)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
