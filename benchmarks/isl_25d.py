"""ISL condition B: a 2.5D model trained against the 2D projection target, beside the 3D baseline.

The field, split, budget and scoring are those of ``real_data_isl.py`` (imported from it): the
phase stack (13 planes, binned 2x laterally), the left part to train on, the right part (after a
gap) to score, Pearson r of the projection against the 2D max-projection target. The 3D baseline
there repeats the 2D target along z and max-projects its 3D prediction; here a 2.5D network
(``--in-planes`` planes in, one plane out, ``target_projection="max"``) is trained on the 2D target
as it is and predicts the one plane. Same iterations, batch, learning-rate recipe and Y/X patch.

Each run prints ``RESULT {json}`` lines (recipe "2.5d-<N>:<recipe>") and appends them to
``--results`` so that ``real_data_isl.py --table`` tabulates them with the 3D runs.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/isl_25d.py --targets DAPI --seeds 0 1 2 \\
        --recipe default+val --results isl.jsonl
    OMP_NUM_THREADS=1 python benchmarks/real_data_isl.py --recipe default+val --targets DAPI \\
        --seeds 0 1 2 --results isl.jsonl
    python benchmarks/real_data_isl.py --table isl.jsonl

The Train widget's defaults for such a pair (width 8, batch 4 of 1x128x128, its own validation
strip: recipe "default") on the four quarters::

    OMP_NUM_THREADS=1 python benchmarks/isl_25d.py --recipe default --width 8 --batch-size 4 \\
        --patch-shape 1 128 128 --split right left top bottom --seeds 0 1 2 --results q25d.jsonl
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_data_isl as isl  # noqa: E402  (the shared data, split, budget and scoring)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    isl.add_data_args(ap)
    ap.add_argument("--recipe", nargs="+", default=["default+val"], choices=list(isl.RECIPES))
    ap.add_argument("--in-planes", type=int, default=13, help="planes read per output [13]")
    ap.add_argument("--val-width", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not (args.data / "phase_contrast_zstack.ome.tif").is_file():
        isl.load_split(args)  # says where the data should be
        return 0

    import torch

    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.predict.run import iter_predict_volume

    torch.set_num_threads(max(1, args.threads))
    out = args.out or Path(tempfile.mkdtemp(prefix="labelfree-isl25d-"))
    vox = (1.0, 1.0, 1.0)  # the data's own grid (no physical size stored)
    tiling = TilingConfig(precision="fp32")

    def predict(signal: np.ndarray, bundle) -> np.ndarray:
        outputs = drain(iter_predict_volume(signal, [bundle], vox, tiling, device=args.device))
        return next(iter(outputs.values()))  # (1, Y, X): the projection plane

    for split in args.split:
        data = isl.load_split(args, split)  # the field turned: its test end on the right
        run_split(args, data, out, vox, predict, device=args.device)
    if args.results is not None:
        print(isl.table(args.results))
    return 0


def run_split(args, data, out, vox, predict, device) -> None:
    """Every recipe x target x seed on one split, scored on its test part."""
    from dataclasses import replace

    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.metrics import pearson_r
    from napari_labelfree.core.train import ImagePair, iter_train

    # a run's label carries what differs from the budget of the first table (docs/real-cells.md)
    size = isl.size_label(args)
    if args.batch_size != 8 or tuple(args.patch_shape[1:]) != (32, 32):
        size += f"-b{args.batch_size}p{args.patch_shape[1]}"
    for recipe in args.recipe:
        label = f"2.5d-{args.in_planes}:{recipe}{size}"
        for name in args.targets:
            for seed in args.seeds:
                if args.skip_done and isl.already_done(args, label, name, data["name"], seed):
                    continue
                sig, tgt3d, test_sig, truth = isl.part(data, name)
                tgt = np.ascontiguousarray(tgt3d[:1])  # the 2D target itself, not repeated
                val = None
                if isl.RECIPES[recipe].get("val"):  # as real_data_isl: the right end validates
                    sig, tgt, val = isl.val_strip(sig, tgt, name, args.val_width, args.gap)
                spec = ModelSpec(
                    structure=name.lower(),
                    display_name=name,
                    target=name,
                    modality="phase contrast",
                    voxel_size_um=vox,
                    architecture=Architecture(
                        name="unet2.5d",
                        depth=args.depth,
                        width=args.width,
                        in_planes=args.in_planes,
                    ),
                    target_projection="max",
                    provenance={"data": isl.CITATION},
                )
                cfg = isl.train_config(recipe, args, seed)
                cfg = replace(cfg, patch_shape=(1, *cfg.patch_shape[1:]))  # one output plane
                train = [ImagePair(sig, tgt, None, f"ISL train, {name}")]
                t0 = time.time()
                bundle = drain(
                    iter_train(
                        train,
                        spec,
                        out / f"25d-{recipe}-{name}-{data['name']}-{seed}",
                        cfg,
                        val=val,
                        device=device,
                    )
                )
                seconds = time.time() - t0
                extra = {"best_iteration": bundle.spec.metrics.get("best_iteration")}
                if val is not None:
                    extra["val_r"] = round(
                        pearson_r(predict(val[0].signal, bundle)[0], val[0].target[0]), 4
                    )
                pred = predict(test_sig, bundle)
                isl.report(label, name, seed, pred, truth, seconds, **extra)


if __name__ == "__main__":
    raise SystemExit(main())
