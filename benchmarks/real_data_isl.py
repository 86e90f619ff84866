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

Every run prints one line ``RESULT {json}`` (recipe, target, seed, scores) and appends it to
``--results FILE`` (JSON lines) when given, so that runs in several processes can be tabulated
together with ``--table FILE``. ``fnet_reference_train.py`` shares the data, split and scoring.

Usage::

    python benchmarks/real_data_isl.py --recipe paper default+val --seeds 0 1 2 --results isl.jsonl
    python benchmarks/real_data_isl.py --table isl.jsonl

"default+val" is the package's default recipe as a user runs it (with validation data: the right
end of the training part; best validated weights); docs/real-cells.md has the comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isl-condition-b"
TARGETS = ("DAPI", "MAP2", "NFH")
# Split positions: the test part is the last (1 - train_fraction) of the field at this end. The
# field is flipped / transposed so that the test part always ends up on the right; the networks
# are trained from scratch on what they are given, so this changes nothing but which pixels test.
SPLITS = ("right", "left", "bottom", "top")
ISL_NAME = "ISL condition B (Christiansen et al. 2018)"
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


#: The issue-15 network (a network of another size is labelled with it: :func:`size_label`).
DEPTH, WIDTH = 3, 16


def add_data_args(ap: argparse.ArgumentParser) -> None:
    """The data, split and budget options shared with ``fnet_reference_train.py``.

    Defaults are the issue-15 budget: depth 3, width 16, 500 iterations of batch 8 of 16x32x32.
    """
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--patch-shape", type=int, nargs=3, default=(16, 32, 32))
    ap.add_argument("--depth", type=int, default=DEPTH)
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--bin", type=int, default=2, help="lateral binning for speed [2]")
    ap.add_argument(
        "--train-fraction", type=float, default=0.75, help="left part of the field [0.75]"
    )
    ap.add_argument("--gap", type=int, default=16, help="pixels between train and test parts [16]")
    ap.add_argument(
        "--split",
        nargs="+",
        default=["right"],
        choices=SPLITS,
        help="where the test part lies: the right, left, bottom or top end of the field [right]",
    )
    ap.add_argument("--threads", type=int, default=1, help="CPU threads [1]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    ap.add_argument("--results", type=Path, default=None, help="append RESULT lines here (JSONL)")
    ap.add_argument(
        "--skip-done",
        action="store_true",
        help="skip every run (recipe, target, split, seed) already in --results: an interrupted "
        "matrix of runs resumes where it stopped",
    )


def model_label(model: str) -> str:
    """A model name as it is, a model folder by its folder name (a RESULT line's recipe label)."""
    return Path(model).name if ("/" in model or "\\" in model) else model


def already_done(args: argparse.Namespace, recipe: str, target: str, split: str, seed: int) -> bool:
    """True where ``--skip-done`` is on and ``--results`` already holds this run (says so)."""
    if not getattr(args, "skip_done", False) or args.results is None or not args.results.is_file():
        return False
    for line in args.results.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        key = (r["recipe"], r["target"], r.get("split", "right"), r["seed"])
        if key == (recipe, target, split, seed):
            print(f"skipped (in {args.results}): {recipe} {target} {split} seed {seed}")
            return True
    return False


def oriented(a: np.ndarray, split: str) -> np.ndarray:
    """``a`` (..., Y, X) turned so that the ``split`` end of the field is on the right."""
    if split == "left":
        a = a[..., ::-1]
    elif split in ("bottom", "top"):
        a = np.swapaxes(a, -1, -2)
        if split == "top":
            a = a[..., ::-1]
    return np.ascontiguousarray(a)


def load_split(args: argparse.Namespace, split: str = "right") -> dict | None:
    """The field loaded, binned and split; None (with a message) where the data is absent."""
    if not (args.data / "phase_contrast_zstack.ome.tif").is_file():
        print(
            f"skipped: the real data is not here ({args.data}); it lives in ../shared/data/",
            file=sys.stderr,
        )
        return None
    print(CITATION)
    phase, fl = load(args.data, args.bin)
    split_name = split
    phase, fl = oriented(phase, split), oriented(fl, split)
    z, h, w = phase.shape
    split = int(round(w * args.train_fraction))
    test_x0 = split + args.gap
    print(
        f"phase stack {phase.shape} (after {args.bin}x{args.bin} binning), targets {fl.shape}; "
        f"split '{split_name}': train x < {split}, test x >= {test_x0} (a {args.gap}-pixel gap, "
        "the field turned so that the test end is on the right)"
    )
    _ARGS["args"] = args
    _ARGS["split"] = split_name
    return {
        "phase": phase,
        "fl": fl,
        "split": split,
        "test_x0": test_x0,
        "args": args,
        "name": split_name,
    }


def part(data: dict, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training signal ZYX, training target ZYX (the 2D target repeated along z), test signal, truth YX."""
    phase, fl, split, x0 = data["phase"], data["fl"], data["split"], data["test_x0"]
    c = TARGETS.index(name)
    target3d = np.broadcast_to(fl[c], phase.shape)
    return (
        np.ascontiguousarray(phase[:, :, :split]),
        np.ascontiguousarray(target3d[:, :, :split]),
        np.ascontiguousarray(phase[:, :, x0:]),
        fl[c][:, x0:],
    )


def val_strip(sig: np.ndarray, tgt: np.ndarray, name: str, width: int, gap: int):
    """(training signal, training target, [validation pair]): the right ``width`` px of the
    training part validate; ``gap`` px between them keep training patches off the strip."""
    from napari_labelfree.core.train import ImagePair

    cut = sig.shape[2] - width
    val = [ImagePair(sig[:, :, cut:], tgt[:, :, cut:], None, f"{name} val strip")]
    return sig[:, :, : cut - gap], tgt[:, :, : cut - gap], val


def report(
    recipe: str, name: str, seed: int, pred: np.ndarray, truth: np.ndarray, seconds: float, **extra
) -> dict:
    """Score the max projection of a 3D prediction against the 2D truth; print and keep a RESULT line."""
    from napari_labelfree.core.metrics import pearson_r, score_all

    scores = score_all(pred.max(axis=0), truth)
    row = {
        "recipe": recipe,
        "target": name,
        "split": _ARGS.get("split", "right"),
        "seed": seed,
        **{k: round(v, 4) for k, v in scores.items()},
        "r_mean_proj": round(pearson_r(pred.mean(axis=0), truth), 4),
        "seconds": round(seconds, 1),
        **extra,
    }
    print("RESULT " + json.dumps(row), flush=True)
    args = _ARGS.get("args")
    if args is not None and args.results is not None:
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


_ARGS: dict = {}


def pivot(paths: list[str], target: str = "DAPI") -> str:
    """One Markdown table of test Pearson r: a row per split, a column per recipe label, each cell
    mean +- std over seeds with the seeds' own values (several RESULT files, e.g. width 16 and 8,
    their labels told apart by a ``FILE=`` prefix: ``w8=s2r.jsonl``)."""
    cells: dict[tuple[str, str], list[float]] = {}
    for spec in paths:
        prefix, _, name = str(spec).rpartition("=")
        for line in Path(name).read_text().splitlines():
            r = json.loads(line) if line.strip() else None
            if r is None or r["target"] != target:
                continue
            label = f"{prefix} {r['recipe']}".strip()
            cells.setdefault((r.get("split", "right"), label), []).append(r["pearson_r"])
    labels = sorted({label for _, label in cells})
    lines = ["| split | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for split in SPLITS:
        if not any(s == split for s, _ in cells):
            continue
        row = []
        for label in labels:
            v = np.array(cells.get((split, label), []), dtype=float)
            if len(v) == 0:
                row.append("not run")
            elif len(v) == 1:
                row.append(f"{v[0]:.3f} (1 run)")
            else:
                each = " / ".join(f"{x:.3f}" for x in v)
                row.append(f"{v.mean():.3f} +- {v.std():.3f} ({each})")
        lines.append(f"| {split} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def table(path: Path) -> str:
    """A Markdown table of mean +- std over seeds per recipe and target, from a RESULT file."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["recipe"], r["target"], r.get("split", "right")), []).append(r)
    cols = ("pearson_r", "nl2", "ssim", "psnr", "nrmse")
    lines = [
        "| recipe | target | split | seeds | " + " | ".join(cols) + " |",
        "|---|---|---|---|" + "---|" * len(cols),
    ]
    order = sorted(groups.items(), key=lambda kv: (kv[0][1], SPLITS.index(kv[0][2]), kv[0][0]))
    for (recipe, target, split), rs in order:
        cells = []
        for c in cols:
            v = np.array([r[c] for r in rs], dtype=float)
            cells.append(f"{v.mean():.3f} +- {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}")
        seeds = ",".join(str(r["seed"]) for r in rs)
        lines.append(f"| {recipe} | {target} | {split} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Recipes compared (TrainConfig fields). "paper": Ounkomol et al. as this package runs it;
# "default": this package's TrainConfig defaults. A recipe with validation ("val") holds out the
# right end of the training part (after a gap), never the test part.
RECIPES: dict[str, dict] = {
    "paper": {"paper": True},
    "default": {},
    # ablations: which part of the default recipe helps or hurts at a short budget
    "paper+augment": {"paper": True, "augment": True},
    "default-augment": {"augment": False},
    # the default with augmentation on: against the warm start's faster overfitting (issue 24)
    "default+augment": {"augment": True},
    # choosing the default's settings: scored on a validation strip of the training part (the
    # RESULT line's val_r), never on the test part
    "default+val": {"val": True},
    "default-lr2+val": {"val": True, "lr": 2e-3},
    "default-lr4+val": {"val": True, "lr": 4e-3},
    "default-l1ssim+val": {"val": True, "loss": "l1+ms-ssim"},
    "default-fnetinit+val": {"val": True, "weights_init": "fnet"},
    "paper+val": {"paper": True, "val": True},
    # the default as a user runs it now: no validation data given, so the trainer holds out its
    # own strip (core.train.holdout); and the same without that strip
    "default-nostrip": {"val_strip": 0.0},
}
# the clean preset's nucleus (2 x 0.325 x 10 um cells): a real field's pixel size for a
# simulation-trained model is chosen so that its nuclei have this diameter (training part only)
NUCLEUS_UM = 6.5
Z_STEP_CANDIDATES_UM = (0.5, 1.0, 2.0)
CHOICE_CROP = 192  # pixels of the training part (its top-left corner) that score each z-step


def nuclear_diameter_px(dapi: np.ndarray) -> float:
    """Median equivalent diameter (pixels) of the nuclei in a 2D DAPI image (Otsu, labelled)."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(dapi.astype(np.float32), 1.0)
    mask = ndi.binary_opening(smooth > threshold_otsu(smooth), iterations=1)
    labels, n = ndi.label(mask)
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas >= 20]  # specks are not nuclei
    return float(np.median(2 * np.sqrt(areas / np.pi))) if len(areas) else float("nan")


def record_real_score(model_dir: Path, entry: dict) -> None:
    """Add one real-data score to a model folder's card (``metrics.real_data`` in config.json).

    An entry for the same kind and data replaces the old one; the file is rewritten atomically.
    """
    from napari_labelfree.core.bundle import open_bundle, save_spec

    bundle = open_bundle(model_dir)
    spec = bundle.spec
    kept = [
        e
        for e in spec.metrics.get("real_data", [])
        if (e.get("kind"), e.get("data")) != (entry["kind"], entry["data"])
    ]
    spec.metrics["real_data"] = [*kept, entry]
    save_spec(model_dir, spec)


def choose_voxel(data: dict, bundle, predict) -> tuple[tuple[float, float, float], dict]:
    """The field's voxel size for a simulation-trained model, from the training part only.

    Lateral: nuclei of the training part's DAPI measured and scaled to NUCLEUS_UM; z-step: the
    candidate whose zero-shot prediction of the training part correlates best with its DAPI.
    """
    from napari_labelfree.core.metrics import pearson_r

    sig, _, _, _ = part(data, "DAPI")
    dapi = data["fl"][TARGETS.index("DAPI")][:, : data["split"]]
    d_px = nuclear_diameter_px(dapi)
    px = NUCLEUS_UM / d_px
    tried = {}
    crop = (slice(None), slice(0, CHOICE_CROP), slice(0, CHOICE_CROP))  # a quick look suffices
    for dz in Z_STEP_CANDIDATES_UM:
        pred = predict(np.ascontiguousarray(sig[crop]), bundle, None, (dz, px, px))
        tried[dz] = round(pearson_r(pred.max(axis=0), dapi[crop[1:]]), 4)
    dz = max(tried, key=tried.get)
    forced = getattr(data["args"], "z_step", None)
    if forced is not None:  # a grid asked for (to compare grids on the validation strip)
        dz = float(forced)
    return (dz, px, px), {"nucleus_px": round(d_px, 2), "z_step_train_r": tried, "z_step": dz}


def strip_score(bundle, train: list, cfg, data_vox, predict) -> float | None:
    """Max-projection r of the trainer's own automatic strip (core.train.holdout), or None.

    The strip is cut exactly as the trainer cut it (a pure function of the images) and predicted
    through the user's path at the data's grid, so the score compares runs on different grids
    (the trainer's own strip r is 3D at the model's grid: not comparable across grids).
    """
    from napari_labelfree.core.metrics import pearson_r
    from napari_labelfree.core.train.holdout import hold_out_strips

    if cfg.val_strip <= 0:
        return None
    vx = bundle.spec.voxel_size_um[2]
    _, val, _ = hold_out_strips(train, cfg.val_strip, cfg.patch_shape[2], vx)
    if not val:
        return None
    pred = predict(val[0].signal, bundle, None, data_vox)
    return round(pearson_r(pred.max(axis=0), val[0].target[0]), 4)


def train_config(recipe: str, args: argparse.Namespace, seed: int):
    """The TrainConfig of a recipe at the benchmark's budget."""
    from napari_labelfree.core.train import TrainConfig

    settings = dict(RECIPES[recipe])
    base = TrainConfig.paper() if settings.pop("paper", False) else TrainConfig()
    settings.pop("val", None)
    from dataclasses import replace

    return replace(
        base,
        iterations=args.iterations,
        batch_size=args.batch_size,
        patch_shape=tuple(args.patch_shape),
        checkpoint_every=args.iterations,
        validate_every=min(base.validate_every, args.iterations),
        seed=seed,
        **settings,
    )


def config_overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig settings given on the command line (--lr, --init-*, --validate-every)."""
    given = {
        "lr": args.lr,
        "init_shrink": args.init_shrink,
        "init_perturb": args.init_perturb,
        "init_reset": tuple(args.init_reset) if args.init_reset else None,
        "validate_every": args.validate_every,
    }
    return {key: value for key, value in given.items() if value is not None}


def size_label(args: argparse.Namespace) -> str:
    """``-d3w8`` for a network of another size than the issue-15 one, else "": a run's label
    carries its size, so that ``--skip-done`` never takes one size's run for another's."""
    if (args.depth, args.width) == (DEPTH, WIDTH):
        return ""
    return f"-d{args.depth}w{args.width}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train and score on the ISL condition-B field.")
    add_data_args(ap)
    ap.add_argument("--recipe", nargs="+", default=["paper", "default+val"], choices=list(RECIPES))
    ap.add_argument(
        "--val-width", type=int, default=64, help="held-out validation strip of the train part [64]"
    )
    ap.add_argument("--tta", action="store_true", help="also score test-time augmentation")
    ap.add_argument(
        "--init",
        default=None,
        help="fine-tune from this model (name or folder); the field's voxel size is chosen "
        "from the training part (choose_voxel) so that it meets the model at its grid",
    )
    ap.add_argument(
        "--zero-shot",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="only score these models as they are on the test part (voxel size chosen from the "
        "training part); no training",
    )
    ap.add_argument(
        "--record",
        action="store_true",
        help="write the zero-shot scores (and with --init, the mean fine-tuned score over seeds) "
        "into the model folder's card (metrics.real_data)",
    )
    ap.add_argument(
        "--z-step",
        type=float,
        default=None,
        help="with --init: this z-step (um) for the field instead of the one chosen by "
        "training-part r (the lateral pixel size stays the nuclear-size one)",
    )
    ap.add_argument(
        "--init-grid",
        choices=("chosen", "native"),
        default="chosen",
        help="with --init: the field resampled to the starting model's grid at the voxel size "
        "choose_voxel picks (chosen), or trained on its own grid as it is (native) [chosen]",
    )
    ap.add_argument(
        "--lr", type=float, default=None, help="peak learning rate instead of the recipe's"
    )
    ap.add_argument(
        "--init-shrink",
        type=float,
        default=None,
        help="with --init: shrink and perturb, the starting weights' factor (TrainConfig.init_shrink)",
    )
    ap.add_argument(
        "--init-perturb",
        type=float,
        default=None,
        help="with --init: shrink and perturb, the fresh weights' factor (TrainConfig.init_perturb)",
    )
    ap.add_argument(
        "--init-reset",
        nargs="+",
        default=None,
        metavar="PREFIX",
        help="with --init: weights whose names start with these keep fresh values (e.g. head)",
    )
    ap.add_argument(
        "--validate-every",
        type=int,
        default=None,
        help="validate (and offer the best weights) every N iterations instead of at the end",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=None, help="keep the trained models here")
    ap.add_argument(
        "--table", type=Path, default=None, help="only print the table of a RESULT file"
    )
    ap.add_argument(
        "--pivot",
        nargs="+",
        default=None,
        metavar="[LABEL=]FILE",
        help="only print test r per split (rows) and recipe (columns) of RESULT files (--targets' "
        "first target)",
    )
    args = ap.parse_args(argv)
    if args.table is not None:
        print(table(args.table))
        return 0
    if args.pivot:
        print(pivot(args.pivot, args.targets[0]))
        return 0
    if load_split(args) is None:
        return 0

    import torch

    from napari_labelfree.core.bundle import resolve_model
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import drain

    try:
        from napari_labelfree.core.predict.run import iter_predict_volume
    except ImportError:  # before the prediction package
        from napari_labelfree.core.predict import iter_predict_volume

    def predict(signal: np.ndarray, bundle, tiling, data_vox=None) -> np.ndarray:
        """The one structure's prediction of a ZYX signal, through the user's prediction path.

        ``data_vox`` None: the data is on the model's own grid (a model trained here with no
        voxel size): no resampling. Otherwise the data's voxel size (resampled to the model's).
        """
        grid = tuple(data_vox or bundle.spec.voxel_size_um)
        tiling = tiling or TilingConfig(precision="fp32")
        outputs = drain(
            iter_predict_volume(signal, [bundle], grid, tiling=tiling, device=args.device)
        )
        return next(iter(outputs.values()))

    torch.set_num_threads(max(1, args.threads))
    out = args.out or Path(tempfile.mkdtemp(prefix="labelfree-isl-"))
    vox = (1.0, 1.0, 1.0)  # unknown physical size: the model works on the data's own grid
    for split in args.split:
        data = load_split(args, split)
        for model in args.zero_shot:
            label = f"zero-shot:{model_label(model)}"
            if all(already_done(args, label, n, split, 0) for n in args.targets):
                continue
            bundle = resolve_model(model)
            t0 = time.time()
            data_vox, chosen = choose_voxel(data, bundle, predict)
            for name in args.targets:
                _, _, test_sig, truth = part(data, name)
                pred = predict(test_sig, bundle, None, data_vox)
                extra = {"voxel_um": [round(v, 4) for v in data_vox], **chosen}
                row = report(label, name, 0, pred, truth, time.time() - t0, **extra)
                if args.record:
                    record_real_score(
                        bundle.path,
                        {
                            "kind": "zero-shot",
                            "data": f"{ISL_NAME}, phase contrast -> {name}, {split} quarter (test part)",
                            "pearson_r": row["pearson_r"],
                            "nl2": row["nl2"],
                            "how": "max projection of the 3D prediction; voxel size "
                            f"{', '.join(f'{v:.2f}' for v in data_vox)} um chosen on the training "
                            "part only (nuclear size; z-step by training-part r)",
                        },
                    )
        if args.zero_shot:
            continue
        data_vox, chosen = None, {}
        if args.init and args.init_grid == "native":  # no resampling: the field's own grid
            chosen = {"grid": "native"}
        elif args.init:  # the field meets the starting model at its grid
            data_vox, chosen = choose_voxel(data, resolve_model(args.init), predict)
        run_recipes(args, data, out, vox, data_vox, chosen, predict)
    print(f"\nmodels in {out}\n{CITATION}")
    if args.results is not None:
        print(table(args.results))
    return 0


def run_recipes(args, data, out, vox, data_vox, chosen, predict) -> None:
    """Train every recipe x target x seed on one split; report each on the test part."""
    from dataclasses import replace

    from napari_labelfree.core.config import Architecture, ModelSpec, TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.metrics import pearson_r
    from napari_labelfree.core.train import ImagePair, iter_train

    for recipe in args.recipe:
        for name in args.targets:
            rows = []
            label = recipe + (f"+init:{model_label(args.init)}" if args.init else "")
            if args.init and args.init_grid == "native":
                label += "@native"
            elif args.init and args.z_step is not None:
                label += f"@dz{args.z_step:g}"
            if not args.init:  # with --init the starting model sets the size
                label += size_label(args)
            if args.lr is not None:
                label += f"-lr{args.lr:g}"
            if args.init and (args.init_shrink is not None or args.init_perturb is not None):
                label += f"-sp{args.init_shrink or 1:g},{args.init_perturb or 0:g}"
            if args.init and args.init_reset:
                label += "-reset:" + ",".join(args.init_reset)
            if args.validate_every is not None:
                label += f"-val{args.validate_every}"
            for seed in args.seeds:
                if already_done(args, label, name, data["name"], seed):
                    continue
                sig, tgt, test_sig, truth = part(data, name)
                val = None
                if RECIPES[recipe].get("val"):
                    sig, tgt, val = val_strip(sig, tgt, name, args.val_width, args.gap)
                if val is not None and data_vox is not None:
                    val = [ImagePair(v.signal, v.target, data_vox, v.name) for v in val]
                train = [ImagePair(sig, np.ascontiguousarray(tgt), data_vox, f"ISL train, {name}")]
                spec = ModelSpec(
                    structure=name.lower(),
                    display_name=name,
                    target=name,
                    modality="phase contrast",
                    voxel_size_um=vox,
                    architecture=Architecture(depth=args.depth, width=args.width),
                    provenance={"data": CITATION, "note": "2D max-projection target along z"},
                )
                cfg = replace(train_config(recipe, args, seed), **config_overrides(args))
                run_dir = out / f"{recipe}-{name}-{data['name']}-{seed}"
                kwargs = {"init": args.init} if args.init else {}
                t0 = time.time()
                bundle = drain(
                    iter_train(train, spec, run_dir, cfg, val=val, device=args.device, **kwargs)
                )
                seconds = time.time() - t0
                tilings = [("", TilingConfig(precision="fp32"))]
                if args.tta:
                    tilings.append(("+tta", TilingConfig(precision="fp32", tta="yx")))
                for suffix, tiling in tilings:
                    pred = predict(test_sig, bundle, tiling, data_vox)
                    m = bundle.spec.metrics
                    extra = {"best_iteration": m.get("best_iteration"), **chosen}
                    if val is not None:  # scored like the test part: max projection vs the 2D truth
                        val_pred = predict(val[0].signal, bundle, tiling, data_vox)
                        val_r = pearson_r(val_pred.max(axis=0), val[0].target[0])
                        extra["val_r"] = round(val_r, 4)
                    elif m.get("val_source") == "strip":  # the trainer's own strip (3D r)
                        extra["strip_r3d"] = round(m["val_pearson_r_mean"], 4)
                        if m.get("init_val_pearson_r_mean") is not None:
                            extra["strip_r3d_init"] = round(m["init_val_pearson_r_mean"], 4)
                        # the same strip, max projection at the data's grid (like the test part)
                        extra["strip_r"] = strip_score(bundle, train, cfg, data_vox, predict)
                    row = report(label + suffix, name, seed, pred, truth, seconds, **extra)
                    if not suffix:  # the plain prediction (not the TTA variant) is recorded
                        rows.append(row)
            if args.record and args.init and rows:
                from napari_labelfree.core.bundle import resolve_model

                rs = [r["pearson_r"] for r in rows]
                record_real_score(
                    resolve_model(args.init).path,
                    {
                        "kind": "fine-tuned",
                        "data": f"{ISL_NAME}, phase contrast -> {name}, {data['name']} quarter "
                        "(test part)",
                        "pearson_r": round(float(np.mean(rs)), 4),
                        "how": f"mean of seeds {', '.join(map(str, args.seeds))} (r "
                        f"{', '.join(f'{r:.3f}' for r in rs)}): fine-tuned {args.iterations} "
                        f"iterations of batch {args.batch_size} on the training part (recipe "
                        f"{recipe})",
                    },
                )


if __name__ == "__main__":
    sys.exit(main())
