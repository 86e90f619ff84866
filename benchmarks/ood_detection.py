"""Out-of-distribution warning: false alarms on held-out in-domain images, detection of the usual mistakes.

Two models' training statistics (core.trust), no network needed (the check reads only the input):

* ``simulated``: a built-in model's stored statistics (``--simulated-model``), or with
  ``--recompute`` those of the clean simulated bright-field fields, seeds 100-115, 32x192x192 at
  0.29/0.108/0.108 um, as scripts/train_builtin_models.py trains them. In-domain: held-out
  simulated fields, and for a model trained on domain-randomized fields too, held-out randomized
  fields (seeds 1300 and up). Out-of-domain: a fluorescence channel as input, the voxel size wrong
  by 3x (both ways, in Y and X), DIC instead of bright-field, and real images (the ISL
  phase-contrast stack, cut into 256x256 fields) for a simulated-only model. An image is compared
  with the whole training set and each kind of its images (core.trust.ood.references).
* ``isl``: a model trained on the ISL condition-B phase-contrast field (the training part of
  benchmarks/real_data_isl.py's split, its own grid). In-domain: fields of the test part.
  Out-of-domain: a simulated bright-field field, the voxel size wrong by 3x, a fluorescence image
  (the DAPI projection repeated along z).

The threshold is chosen on validation images only (simulated seeds 150-169; the ISL validation
strip): the smallest multiple of 0.5 above every validation image's score. The held-out images
(seeds 300-339, the ISL test part) only measure. The features of statistics version 2 (relief 1
voxel apart, the depth group) were chosen looking at validation fields (seeds 150-157,
bright-field and DIC) and at the left three quarters of the ISL phase stack (12 fields), so the
real-image case is measured on the right quarter (4 fields, x >= 768), and also reported over
all 16 fields for comparison with version 1. Prints one line per case and ``RESULT {json}``.

    OMP_NUM_THREADS=1 python benchmarks/ood_detection.py
    OMP_NUM_THREADS=1 python benchmarks/ood_detection.py --models simulated --n-val 12 \
        --n-test 24 --simulated-model dna --cache /tmp/fields
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

SIM_SHAPE = (32, 192, 192)
SIM_VOXEL = (0.29, 0.108, 0.108)
TRAIN_SEEDS = tuple(range(100, 116))
VAL_SEEDS = tuple(range(150, 170))
TEST_SEEDS = tuple(range(300, 340))
# held-out domain-randomized fields (the built-ins' own use 1000-1023, 1150-1153, 1200-1203)
RANDOM_HELD_OUT = tuple(range(1300, 1340))
DEVELOPMENT_X = 768  # ISL phase fields left of this were looked at when choosing the features


def score(frame, voxel, spec) -> list[tuple[dict, dict, dict]]:
    """Per reference the input is compared with (the whole training set, then each kind of
    training image, core.trust.ood.references): (deviation per group, small-image limit per group,
    calibration scale per group).

    The small-image limit (core.trust.ood.thresholds without the global floor and the scale) does
    not depend on the threshold being chosen; a limit is max(threshold, small) x scale.
    """
    from napari_labelfree.core.trust import ood

    features, n = ood.input_features(frame, voxel, spec)
    scale = ood.limit_scales(spec.input_statistics)
    floor, ood.THRESHOLD = ood.THRESHOLD, 0.0
    try:
        return [
            (ood.compare(features, ref), ood.thresholds(ref, n), scale)
            for ref in ood.references(spec.input_statistics)
        ]
    finally:
        ood.THRESHOLD = floor


def fires(case: list[tuple[dict, dict, dict]], tau: float) -> bool:
    """A warning at ``tau``: the input differs from every reference (as ood.closest decides)."""
    return worst(case, tau) > 1.0


def worst(case: list[tuple[dict, dict, dict]], tau: float) -> float:
    """The largest deviation in units of its limit at ``tau``, for the reference the input is
    most like (above 1: a warning)."""
    return min(
        max(s / (max(tau, small[g]) * scale.get(g, 1.0)) for g, s in scores.items())
        for scores, small, scale in case
    )


def choose_threshold(val: list[tuple[dict, dict, dict]]) -> float:
    """The smallest multiple of 0.5 (at least 2) at which no validation image fires."""
    tau = 2.0
    while any(fires(c, tau) for c in val):
        tau += 0.5
    return tau


def simulated(args) -> dict:
    from napari_labelfree.core.bundle import resolve_model
    from napari_labelfree.core.config import ModelSpec
    from napari_labelfree.core.io import open_image
    from napari_labelfree.core.synth import STRUCTURES, simulate
    from napari_labelfree.core.trust.builtin import simulated_statistics

    spec = ModelSpec(args.simulated_model)
    t0 = time.time()
    from napari_labelfree.core.trust.stats import STATS_VERSION

    builtin = resolve_model(args.simulated_model).spec
    current = (builtin.input_statistics or {}).get("version") == STATS_VERSION
    if builtin.input_statistics and not current:
        print("simulated: the built-in statistics are of an older version: recomputed", flush=True)
    if current and not args.recompute:
        # the built-in models' statistics: these very fields (scripts/add_model_statistics.py)
        spec.input_statistics = builtin.input_statistics
    else:
        spec.input_statistics = simulated_statistics(spec, TRAIN_SEEDS, SIM_SHAPE, SIM_VOXEL)
    kinds = [c["n_images"] for c in spec.input_statistics.get("components", [])]
    print(
        f"simulated: statistics of {args.simulated_model} in {time.time() - t0:.0f} s; kinds of "
        f"training images (images each): {kinds or 'one'}",
        flush=True,
    )

    def field(seed, modality="bright-field"):
        return simulate(SIM_SHAPE, SIM_VOXEL, seed=seed, modality=modality)

    val = [score(field(s).data[0, 0], SIM_VOXEL, spec) for s in VAL_SEEDS[: args.n_val]]
    tau = choose_threshold(val)
    cases: dict[str, list] = {"in-domain": []}
    randomized = (builtin.provenance.get("simulation") or {}).get("randomized")
    if randomized and not args.recompute:
        # a model trained on domain-randomized fields too: they are in its domain as well
        from train_builtin_models import randomized_fields

        share = float(builtin.provenance["simulation"].get("phase_contrast_share", 0.0))
        seeds = RANDOM_HELD_OUT[: args.n_randomized]
        cases["in-domain, randomized"] = [
            score(im.data[0, 0], tuple(im.voxel_size), spec)
            for im in randomized_fields(seeds, [args.simulated_model], args.cache, share)
        ]
    ood = (
        "fluorescence",
        "voxel size 3x too large",
        "voxel size 3x too small",
        "DIC",
        "real (ISL phase), held out",
        "real (ISL phase), all 16",
    )
    for name in ood:
        cases[name] = []
    for k, s in enumerate(TEST_SEEDS[: args.n_test]):
        im = field(s)
        bf = im.data[0, 0]
        cases["in-domain"].append(score(bf, SIM_VOXEL, spec))
        c = 1 + k % len(STRUCTURES)
        cases["fluorescence"].append(score(im.data[0, c], SIM_VOXEL, spec))
        big = (SIM_VOXEL[0], 3 * SIM_VOXEL[1], 3 * SIM_VOXEL[2])
        small = (SIM_VOXEL[0], SIM_VOXEL[1] / 3, SIM_VOXEL[2] / 3)
        cases["voxel size 3x too large"].append(score(bf, big, spec))
        cases["voxel size 3x too small"].append(score(bf, small, spec))
        cases["DIC"].append(score(field(s, "dic").data[0, 0], SIM_VOXEL, spec))
    isl = args.data / "phase_contrast_zstack.ome.tif"
    if isl.is_file():
        phase = open_image(isl).frame(0, 0)
        for y in range(0, 1024, 256):
            for x in range(0, 1024, 256):
                crop = score(phase[:, y : y + 256, x : x + 256], SIM_VOXEL, spec)
                cases["real (ISL phase), all 16"].append(crop)
                if x >= DEVELOPMENT_X:
                    cases["real (ISL phase), held out"].append(crop)
    else:
        del cases["real (ISL phase), held out"], cases["real (ISL phase), all 16"]
    return report("simulated", tau, val, cases)


def isl(args) -> dict | None:
    from real_data_isl import load

    from napari_labelfree.core.config import ModelSpec
    from napari_labelfree.core.preprocess import normalize
    from napari_labelfree.core.synth import simulate
    from napari_labelfree.core.trust.stats import training_statistics

    if not (args.data / "phase_contrast_zstack.ome.tif").is_file():
        print("isl: skipped, the real data is not here", file=sys.stderr)
        return None
    phase, fl = load(args.data, 2)  # as real_data_isl.py: binned 2x, own grid
    w = phase.shape[2]
    split = int(round(w * 0.75))
    train, test = phase[:, :, :split], phase[:, :, split + 16 :]
    cut = train.shape[2] - 64  # the validation strip of real_data_isl.py's "+val" recipes
    val_strip, train = train[:, :, cut:], train[:, :, : cut - 16]
    grid = (1.0, 1.0, 1.0)
    spec = ModelSpec("dapi", voxel_size_um=grid)
    spec.input_statistics = training_statistics([normalize(train)], 0)

    def fields(a, size=64):
        return [
            a[:, y : y + size, x : x + size]
            for y in range(0, a.shape[1] - size + 1, size)
            for x in range(0, a.shape[2] - size + 1, size)
        ]

    val = [score(f, grid, spec) for f in fields(val_strip)]
    tau = choose_threshold(val)
    test_fields = fields(test)
    cases = {
        "in-domain": [score(f, grid, spec) for f in test_fields],
        "voxel size 3x too large": [score(f, (1.0, 3.0, 3.0), spec) for f in test_fields],
        "voxel size 3x too small": [score(f, (1.0, 1 / 3, 1 / 3), spec) for f in test_fields],
        "fluorescence": [
            score(np.repeat(f[None], phase.shape[0], 0), grid, spec)
            for f in fields(fl[0][None, :, split + 16 :])
            for f in [f[0]]
        ],
        "simulated bright-field": [
            score(
                simulate((13, 192, 192), (1.0, 1.0, 1.0), seed=s, structures=()).data[0, 0],
                grid,
                spec,
            )
            for s in TEST_SEEDS[:8]
        ],
    }
    return report("isl", tau, val, cases)


def report(model: str, tau: float, val: list, cases: dict[str, list]) -> dict:
    from napari_labelfree.core.trust.ood import THRESHOLD

    print(
        f"{model}: threshold chosen on {len(val)} validation images: {tau:g}; the code uses "
        f"{THRESHOLD:g}",
        flush=True,
    )
    row = {"model": model, "chosen_threshold": tau, "code_threshold": THRESHOLD}
    for name, found in cases.items():
        s = np.array([worst(c, THRESHOLD) for c in found])
        rate = float(np.mean([fires(c, THRESHOLD) for c in found]))
        what = "false alarms" if name.startswith("in-domain") else "detected"
        print(
            f"  {name:26s} n={len(s):3d}  {what} {rate:6.1%}  score/limit min {s.min():.2f} "
            f"median {np.median(s):.2f} max {s.max():.2f}",
            flush=True,
        )
        row[name] = {
            "n": len(s),
            "rate": round(rate, 3),
            "min": round(float(s.min()), 2),
            "max": round(float(s.max()), 2),
        }
    print("RESULT " + json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    from real_data_isl import DATA

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--n-val", type=int, default=len(VAL_SEEDS))
    ap.add_argument("--n-test", type=int, default=len(TEST_SEEDS))
    ap.add_argument("--models", nargs="+", default=["simulated", "isl"])
    ap.add_argument(
        "--simulated-model",
        default="lamin-b1",
        help="the built-in model whose stored statistics are checked [lamin-b1]; every built-in "
        "now trained on domain-randomized fields too (DIC and phase contrast are in its domain), "
        "so held-out randomized fields are a second in-domain case; --recompute gives the "
        "clean-preset fields' statistics instead",
    )
    ap.add_argument(
        "--recompute", action="store_true", help="recompute the built-in statistics [read them]"
    )
    ap.add_argument(
        "--n-randomized",
        type=int,
        default=12,
        help="held-out domain-randomized fields, for a model trained on them too [12]",
    )
    ap.add_argument(
        "--cache", type=Path, default=None, help="randomized fields' .npz files (reused, kept)"
    )
    args = ap.parse_args(argv)
    if "simulated" in args.models:
        simulated(args)
    if "isl" in args.models:
        isl(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
