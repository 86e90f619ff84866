"""Real-data benchmark: train and score label-free models on the In Silico Labeling "condition B" field.

Data (read from ``../shared/data/isl-condition-b/``; skipped with a message where it is absent):
human iPSC-derived motor neurons, one stitched field, from the test data of google/in-silico-labeling
(isl/testdata/condition_blue_sample/, commit a7abea5a), Apache-2.0, Copyright Google LLC.
Christiansen et al., "In Silico Labeling: Predicting Fluorescent Labels in Unlabeled Images",
Cell 173(3), 2018. Input: a phase-contrast z-stack, 13 x 1024 x 1024; targets: 2D confocal maximum
projections of DAPI (nuclei), MAP2 (dendrites) and NFH (axons).

Method: the field is split into a training part (left) and a test part (right), with a gap between
them so that no training patch touches a test pixel. The 2D target is repeated along z so that a
3D U-Net trained with this project's ``iter_train`` learns to predict the projection from the
phase stack (training "stack to plane" in 3D); the test part's 3D prediction is then projected
(maximum, as the targets were made, and mean) and scored against the target with Pearson r.
Pixel sizes are not stored in the data, so the model works on the stack's own grid (optionally
binned 2x laterally for speed). The phase-contrast mean projection's own correlation with each
target is printed as a baseline.

Usage::

    nice python benchmarks/real_data_isl.py [--iterations 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isl-condition-b"
TARGETS = ("DAPI", "MAP2", "NFH")
CITATION = (
    "Data: google/in-silico-labeling test data (condition B, Apache-2.0, Copyright Google LLC); "
    "Christiansen et al., Cell 173(3), 2018."
)


def load(data_dir: Path, bin_xy: int) -> tuple[np.ndarray, np.ndarray]:
    """Phase stack ZYX and targets CYX as float32, binned ``bin_xy`` x ``bin_xy`` laterally."""
    from napari_labelfree.core.io import open_image

    phase_src = open_image(data_dir / "phase_contrast_zstack.ome.tif")
    phase = phase_src.frame(0, 0)
    fl_src = open_image(data_dir / "fluorescence_maxproj.ome.tif")
    if fl_src.n_channels == 3:
        fl = np.stack([fl_src.frame(0, c)[0] for c in range(3)])
    else:  # a reader that maps the 3 planes to Z instead of C
        fl = fl_src.frame(0, 0)
    if bin_xy > 1:

        def binned(a: np.ndarray) -> np.ndarray:
            z, y, x = a.shape
            y, x = y // bin_xy * bin_xy, x // bin_xy * bin_xy
            return (
                a[:, :y, :x].reshape(z, y // bin_xy, bin_xy, x // bin_xy, bin_xy).mean(axis=(2, 4))
            )

        phase, fl = binned(phase), binned(fl)
    return phase.astype(np.float32), fl.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train and score on the ISL condition-B field.")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--patch-shape", type=int, nargs=3, default=(16, 64, 64))
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--bin", type=int, default=2, help="lateral binning for speed [2]")
    ap.add_argument(
        "--train-fraction", type=float, default=0.75, help="left part of the field [0.75]"
    )
    ap.add_argument("--gap", type=int, default=16, help="pixels between train and test parts [16]")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads [1]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    ap.add_argument("--out", type=Path, default=None, help="keep the trained models here")
    args = ap.parse_args(argv)

    if not (args.data / "phase_contrast_zstack.ome.tif").is_file():
        print(
            f"skipped: the real data is not here ({args.data}); it lives in ../shared/data/",
            file=sys.stderr,
        )
        return 0

    import torch

    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.metrics import pearson_r
    from napari_labelfree.core.predict import iter_predict_volume
    from napari_labelfree.core.train import ImagePair, TrainConfig, iter_train

    torch.set_num_threads(max(1, args.threads))
    print(CITATION)
    phase, fl = load(args.data, args.bin)
    z, h, w = phase.shape
    split = int(round(w * args.train_fraction))
    test_x0 = split + args.gap
    print(
        f"phase stack {phase.shape} (after {args.bin}x{args.bin} binning), targets {fl.shape}; "
        f"train x < {split}, test x >= {test_x0} (a {args.gap}-pixel gap)"
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="labelfree-isl-"))
    vox = (1.0, 1.0, 1.0)  # unknown physical size: the model works on the data's own grid
    results = []
    for name in args.targets:
        c = TARGETS.index(name)
        target3d = np.broadcast_to(fl[c], phase.shape)
        train = [
            ImagePair(
                phase[:, :, :split],
                np.ascontiguousarray(target3d[:, :, :split]),
                None,
                f"ISL condition B, train part, {name}",
            )
        ]
        spec = ModelSpec(
            structure=name.lower(),
            display_name=name,
            target=name,
            modality="phase contrast",
            voxel_size_um=vox,
            architecture=Architecture(depth=args.depth, width=args.width),
            provenance={"data": CITATION, "note": "2D max-projection target repeated along z"},
        )
        cfg = TrainConfig(
            iterations=args.iterations,
            batch_size=args.batch_size,
            patch_shape=tuple(args.patch_shape),
            checkpoint_every=args.iterations,
            validate_every=args.iterations,
            seed=0,
        )
        t0 = time.time()
        bundle = drain(iter_train(train, spec, out / name, cfg, device=args.device))
        train_s = time.time() - t0
        test_phase = np.ascontiguousarray(phase[:, :, test_x0:])
        pred = next(
            iter(drain(iter_predict_volume(test_phase, [bundle], vox, device=args.device)).values())
        )
        truth = fl[c][:, test_x0:]
        r_max = pearson_r(pred.max(axis=0), truth)
        r_mean = pearson_r(pred.mean(axis=0), truth)
        r_base = pearson_r(test_phase.mean(axis=0), truth)
        results.append((name, r_max, r_mean, r_base, train_s))
        print(
            f"{name:5s}: test Pearson r {r_max:.3f} (max projection of the prediction), "
            f"{r_mean:.3f} (mean projection); phase-only baseline {r_base:+.3f}; "
            f"trained {args.iterations} it in {train_s:.0f} s",
            flush=True,
        )
    print(
        "\n| target | test r (max proj.) | test r (mean proj.) | phase baseline r | train time (s) |"
    )
    print("|---|---|---|---|---|")
    for name, a, b, base, s in results:
        print(f"| {name} | {a:.3f} | {b:.3f} | {base:+.3f} | {s:.0f} |")
    print(f"\nmodels in {out}\n{CITATION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
