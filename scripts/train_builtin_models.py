"""Train the built-in demo models: one small 3D U-Net per simulated structure.

Data come from ``core.synth.simulate`` at the simulator's training voxel size (0.29, 0.108, 0.108 um,
the paper's training data) and are resampled by the training code to the model's voxel size, the
paper's 0.29 um cube, exactly as user data would be. Each model is trained with this project's
``iter_train`` and scored on held-out simulated fields (seeds never used for training); the scores go
into its config.json (Pearson r, nl2, SSIM, PSNR, NRMSE; and ``best_iteration``, the validated
iteration whose weights ship). Only config.json and weights.safetensors are copied into the package.

The recipe is the package's default (``TrainConfig()``: augmentation, AdamW, one-cycle schedule,
the best validated weights); ``--paper-recipe`` trains with the paper's instead.

Usage (about 30 min on a busy 2-core CPU; run it with ``nice``)::

    nice python scripts/train_builtin_models.py                      # all six, into the package
    nice python scripts/train_builtin_models.py --structures dna --iterations 100 --out /tmp/models
    python scripts/train_builtin_models.py --device cuda --iterations 3000 --train-fields 16
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_labelfree.core.bundle import (
    BUILTIN_DIR,
    CONFIG_NAME,
    WEIGHTS_NAME,
    open_bundle,
    save_spec,
)
from napari_labelfree.core.config import PAPER_VOXEL_SIZE_UM, Architecture, ModelSpec
from napari_labelfree.core.device import resolve_device
from napari_labelfree.core.events import drain
from napari_labelfree.core.metrics import SCORES
from napari_labelfree.core.structures import BY_NAME
from napari_labelfree.core.synth import STRUCTURES, simulate
from napari_labelfree.core.train import ImagePair, TrainConfig, evaluate_model, iter_train

SIM_SHAPE = (32, 192, 192)
SIM_VOXEL = (0.29, 0.108, 0.108)
FIRST_TRAIN_SEED = 100
VAL_SEED = 150
TEST_SEEDS = (200, 201)
RANDOM_FIRST_SEED = 1000  # domain-randomized training fields: seeds 1000...
RANDOM_VAL_SEEDS = (1150, 1151)  # validated during training (best iteration)
RANDOM_TEST_SEEDS = (1200, 1201, 1202, 1203)
# --evaluate: the fields that decide whether a retrained built-in ships (never the test seeds);
# --decision-fields N widens the randomized ones to 1150...1150+N-1 (four fields are few to stand
# for the randomized microscopes), --clean-decision-fields N the clean ones to 150...150+N-1 (two
# clean fields passed a fibrillarin whose clean test score then fell 20 %, docs/models.md)
DECISION_SEEDS = {"clean": (150, 151), "randomized": (1150, 1151, 1152, 1153)}
MAX_DECISION_FIELDS = min(RANDOM_TEST_SEEDS) - RANDOM_VAL_SEEDS[0]
MAX_CLEAN_DECISION_FIELDS = min(TEST_SEEDS) - VAL_SEED
# training fields stay below their kind's validation seeds: clean 100..., randomized 1000...
MAX_CLEAN_FIELDS = VAL_SEED - FIRST_TRAIN_SEED - 1
MAX_RANDOMIZED_FIELDS = RANDOM_VAL_SEEDS[0] - RANDOM_FIRST_SEED
# structures with real paired images at hand to score them zero-shot (benchmarks/real_data_isl.py)
REAL_DATA = {"dna": "ISL condition B (Christiansen et al. 2018), phase contrast -> DAPI"}
NO_REAL_DATA = (
    "no real images of this structure were available to score it (the only real paired data "
    "here, ISL condition B, Christiansen et al. 2018, has DAPI, MAP2 and NFH targets)"
)


def fields(seeds: tuple[int, ...]) -> list:
    return [simulate(shape=SIM_SHAPE, voxel_size=SIM_VOXEL, seed=s) for s in seeds]


def randomized_fields(
    seeds: tuple[int, ...],
    structures: list[str],
    cache: Path | None = None,
    phase_contrast_share: float = 0.0,
) -> list:
    """Domain-randomized fields (core.synth.randomize), one settings draw per seed; cached as .npz.

    The first ``phase_contrast_share`` of the seeds are phase contrast; the rest draw their
    modality (randomize.MODALITY_WEIGHTS).
    """
    from napari_labelfree.core.synth import SimulatedImage
    from napari_labelfree.core.synth.randomize import random_settings, render_field

    out = []
    n_phase = int(round(phase_contrast_share * len(seeds)))
    for i, seed in enumerate(seeds):
        modality = "phase-contrast" if i < n_phase else None
        tag = "-pc" if modality else ""
        path = cache / f"rand-{seed}{tag}-{'-'.join(structures)}.npz" if cache else None
        if path is not None and path.is_file():
            z = np.load(path, allow_pickle=False)
            out.append(
                SimulatedImage(
                    z["data"],
                    list(z["names"]),
                    tuple(z["voxel"]),
                    settings=json.loads(str(z["settings"])),
                )
            )
            continue
        im = render_field(random_settings(seed, modality), seed, structures=structures)
        # (the transmitted light does not depend on ``structures``: only the targets do)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(
                path,
                data=im.data,
                names=np.array(im.channel_names),
                voxel=np.array(im.voxel_size),
                settings=json.dumps(im.settings),
            )
        out.append(im)
    return out


def evaluate(
    dirs: list[Path],
    structures: list[str],
    cache: Path | None,
    device,
    decision_fields: int = len(DECISION_SEEDS["randomized"]),
    record: bool = False,
    clean_decision_fields: int = len(DECISION_SEEDS["clean"]),
) -> int:
    """Score the models DIR/STRUCTURE on the decision (validation) and test fields, by kind.

    With ``record``, the first DIR is the model being replaced: each later DIR's card gets its
    validation scores beside the first's (``metrics.release_check``, shown by ``labelfree
    models``); test fields are scored, never recorded as a reason to ship.
    """
    render = list(STRUCTURES)
    first = DECISION_SEEDS["randomized"][0]
    decision_randomized = tuple(range(first, first + decision_fields))
    first = DECISION_SEEDS["clean"][0]
    decision_clean = tuple(range(first, first + clean_decision_fields))
    sets = {
        "val clean": (decision_clean, fields(decision_clean)),
        "val randomized": (
            decision_randomized,
            randomized_fields(decision_randomized, render, cache),
        ),
        "test clean": (TEST_SEEDS, fields(TEST_SEEDS)),
        "test randomized": (
            RANDOM_TEST_SEEDS,
            randomized_fields(RANDOM_TEST_SEEDS, render, cache),
        ),
    }
    for structure in structures:
        replaced = None
        for d in dirs:
            bundle = open_bundle(d / structure)
            row = {"model": str(d / structure)}
            for kind, (seeds, ims) in sets.items():
                sc = evaluate_model(bundle, pairs(ims, structure, seeds), device)
                row[kind] = round(float(np.mean([x["pearson_r"] for x in sc])), 4)
                row[kind + " per field"] = [round(x["pearson_r"], 4) for x in sc]
            print("EVAL " + json.dumps(row), flush=True)
            if record and replaced is not None:
                record_release_check(d / structure, row, replaced, sets)
            if replaced is None:
                replaced = row
    return 0


VALIDATION_WORDS = {
    "val clean": "simulated validation fields (clean preset)",
    "val randomized": "simulated validation fields (domain-randomized)",
}


def record_release_check(model_dir: Path, row: dict, replaced: dict, sets: dict) -> None:
    """Write the validation scores that decided a retrained model's release into its card."""
    spec = open_bundle(model_dir).spec
    entries = []
    for kind, words in VALIDATION_WORDS.items():
        seeds = sets[kind][0]
        entries.append(
            {
                "data": f"{len(seeds)} {words}, seeds {seeds[0]}-{seeds[-1]}",
                "pearson_r": row[kind],
                "replaced_pearson_r": replaced[kind],
            }
        )
    spec.metrics["release_check"] = entries
    save_spec(model_dir, spec)


def pairs(ims: list, structure: str, seeds: tuple[int, ...]) -> list[ImagePair]:
    out = []
    for im, seed in zip(ims, seeds, strict=True):
        c = im.channel_names.index(structure)
        out.append(
            ImagePair(im.data[0, 0], im.data[0, c], tuple(im.voxel_size), f"simulated seed {seed}")
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", nargs="+", default=list(STRUCTURES), choices=STRUCTURES)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--patch-shape", type=int, nargs=3, default=(16, 32, 32))
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument(
        "--train-fields", type=int, default=4, help="simulated training fields (seeds 100...) [4]"
    )
    ap.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto [cpu]")
    ap.add_argument("--paper-recipe", action="store_true", help="the paper's recipe, not ours")
    ap.add_argument("--out", type=Path, default=BUILTIN_DIR, help="folder for the model folders")
    ap.add_argument("--work", type=Path, default=None, help="keep checkpoints and logs here")
    ap.add_argument(
        "--randomized",
        action="store_true",
        help="train on domain-randomized fields (core.synth.randomize) plus --clean-fields of the "
        "clean preset; test on both kinds",
    )
    ap.add_argument("--clean-fields", type=int, default=4, help="with --randomized [4]")
    ap.add_argument(
        "--phase-contrast-share",
        type=float,
        default=0.0,
        help="with --randomized: this fraction of the randomized training fields is phase "
        "contrast; the rest draw their modality [0]",
    )
    ap.add_argument("--cache", type=Path, default=None, help="keep simulated fields here (.npz)")
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start each structure from the model in INIT/STRUCTURE (e.g. a copy of the shipped "
        "models) instead of new weights",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads; 1 is fastest on a shared, busy machine (no spin-waiting) [1]",
    )
    ap.add_argument(
        "--evaluate",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="train nothing: score DIR/STRUCTURE on the validation fields that decide whether a "
        "retrained model ships (clean seeds 150, 151; randomized 1150-1153; see "
        "--clean-decision-fields and --decision-fields) and on the test fields, Pearson r by kind",
    )
    ap.add_argument(
        "--record",
        action="store_true",
        help="with --evaluate FIRST DIR...: write each later DIR's validation scores, beside "
        "FIRST's (the model it would replace), into its card (metrics.release_check)",
    )
    ap.add_argument(
        "--decision-fields",
        type=int,
        default=len(DECISION_SEEDS["randomized"]),
        help="with --evaluate: this many randomized validation fields (seeds 1150...) "
        f"[{len(DECISION_SEEDS['randomized'])}]",
    )
    ap.add_argument(
        "--clean-decision-fields",
        type=int,
        default=len(DECISION_SEEDS["clean"]),
        help="with --evaluate: this many clean-preset validation fields (seeds 150...) "
        f"[{len(DECISION_SEEDS['clean'])}]",
    )
    args = ap.parse_args(argv)
    # imported now, not when the first validation needs them: a long run is not broken by a
    # source file edited (or half-edited) while it trains
    import napari_labelfree.core.predict.run  # noqa: F401

    most = MAX_RANDOMIZED_FIELDS if args.randomized else MAX_CLEAN_FIELDS
    if not 1 <= args.train_fields <= most:
        ap.error(
            f"--train-fields must be 1 to {most}"
            + (" with --randomized" if args.randomized else "")
        )
    if args.randomized and not 0 <= args.clean_fields <= MAX_CLEAN_FIELDS:
        ap.error(f"--clean-fields must be 0 to {MAX_CLEAN_FIELDS}")
    if not 1 <= args.decision_fields <= MAX_DECISION_FIELDS:
        ap.error(f"--decision-fields must be 1 to {MAX_DECISION_FIELDS}")
    if not 1 <= args.clean_decision_fields <= MAX_CLEAN_DECISION_FIELDS:
        ap.error(f"--clean-decision-fields must be 1 to {MAX_CLEAN_DECISION_FIELDS}")
    if args.record and (not args.evaluate or len(args.evaluate) < 2):
        ap.error("--record needs --evaluate REPLACED NEW...: the model replaced, then the new ones")
    torch.set_num_threads(max(1, args.threads))
    device = resolve_device(args.device)
    if args.evaluate:
        return evaluate(
            args.evaluate,
            list(args.structures),
            args.cache,
            device,
            args.decision_fields,
            record=args.record,
            clean_decision_fields=args.clean_decision_fields,
        )
    n_clean = min(args.clean_fields, args.train_fields) if args.randomized else args.train_fields
    train_seeds = tuple(range(FIRST_TRAIN_SEED, FIRST_TRAIN_SEED + n_clean))

    t0 = time.time()
    train_ims, val_ims, test_ims = fields(train_seeds), fields((VAL_SEED,)), fields(TEST_SEEDS)
    val_seeds, test_sets = (VAL_SEED,), {"clean": (TEST_SEEDS, test_ims)}
    if args.randomized:  # randomized fields train; the clean preset keeps --clean-fields of them
        clean_seeds = train_seeds
        rand_seeds = tuple(range(RANDOM_FIRST_SEED, RANDOM_FIRST_SEED + args.train_fields))
        rand_val, rand_test = RANDOM_VAL_SEEDS, RANDOM_TEST_SEEDS
        structures = list(STRUCTURES)  # all targets rendered: one cache serves every structure
        train_ims = train_ims + randomized_fields(
            rand_seeds, structures, args.cache, args.phase_contrast_share
        )
        val_ims = val_ims + randomized_fields(rand_val, structures, args.cache)
        train_seeds, val_seeds = clean_seeds + rand_seeds, val_seeds + rand_val
        test_sets["randomized"] = (rand_test, randomized_fields(rand_test, structures, args.cache))
    print(
        f"simulated {len(train_seeds)} training, {len(val_seeds)} validation and "
        f"{sum(len(v[0]) for v in test_sets.values())} test fields in {time.time() - t0:.0f} s",
        flush=True,
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="labelfree-builtin-"))
    rows = []
    for structure in args.structures:
        known = BY_NAME[structure]  # the package's one table: name, colour, label
        spec = ModelSpec(
            structure=structure,
            display_name=known.display_name,
            colormap=known.colormap,
            target=known.label,
            # bioimage.io takes the modality as a channel identifier: one word
            modality="transmitted-light" if args.randomized else "bright-field",
            voxel_size_um=PAPER_VOXEL_SIZE_UM,
            architecture=Architecture(depth=args.depth, width=args.width),
            provenance={
                "data": (
                    "simulated only: domain-randomized fields (napari_labelfree.core.synth."
                    "randomize) and clean-preset fields (core.synth.simulate); no real cell"
                    if args.randomized
                    else "simulated (napari_labelfree.core.synth.simulate)"
                ),
                "simulation": {
                    "shape_zyx": list(SIM_SHAPE),
                    "voxel_size_um": list(SIM_VOXEL),
                    "train_seeds": list(train_seeds),
                    "val_seed": VAL_SEED,
                    "val_seeds": list(val_seeds),
                    "test_seeds": list(TEST_SEEDS),
                    "randomized": args.randomized,
                    **(
                        {"phase_contrast_share": args.phase_contrast_share}
                        if args.randomized
                        else {}
                    ),
                    **(
                        {"randomized_test_seeds": list(test_sets["randomized"][0])}
                        if args.randomized
                        else {}
                    ),
                },
                "script": "scripts/train_builtin_models.py",
                "command": "python scripts/train_builtin_models.py "
                + " ".join(str(a) for a in (sys.argv[1:] if argv is None else argv)),
                "note": "demo model trained on simulated cells; retrain on real data for real use",
            },
        )
        cfg = (TrainConfig.paper if args.paper_recipe else TrainConfig)(
            iterations=args.iterations,
            batch_size=args.batch_size,
            patch_shape=tuple(args.patch_shape),
            checkpoint_every=args.iterations,
            validate_every=max(1, args.iterations // 10),
            seed=0,
        )
        run_dir = work / structure
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t = time.time()
        bundle = drain(
            iter_train(
                pairs(train_ims, structure, train_seeds),
                spec,
                run_dir,
                cfg,
                val=pairs(val_ims, structure, val_seeds),
                device=device,
                init=args.init / structure if args.init else None,
            )
        )
        train_s = time.time() - t
        test = evaluate_model(bundle, pairs(test_ims, structure, TEST_SEEDS), device)
        r = float(np.mean([s["pearson_r"] for s in test]))
        e = float(np.mean([s["nl2"] for s in test]))
        final = bundle.spec
        if "randomized" in test_sets:
            seeds, ims = test_sets["randomized"]
            rt = evaluate_model(bundle, pairs(ims, structure, seeds), device)
            final.metrics.update(
                {
                    "randomized_test_images": rt,
                    "randomized_test_pearson_r": float(np.mean([x["pearson_r"] for x in rt])),
                    "randomized_test_nl2": float(np.mean([x["nl2"] for x in rt])),
                    "randomized_test_set": f"held-out simulated fields (domain-randomized), seeds {list(seeds)}",
                }
            )
            print(
                f"{structure}: randomized held-out r {final.metrics['randomized_test_pearson_r']:.3f}"
            )
        final.metrics.update(
            {
                "test_images": test,
                "test_pearson_r": r,
                "test_nl2": e,
                **{
                    f"test_{k}": float(np.mean([s[k] for s in test]))
                    for k in SCORES
                    if k != "pearson_r" and k != "nl2"
                },
                "test_set": f"held-out simulated fields (clean preset), seeds {list(TEST_SEEDS)}",
            }
        )
        final.metrics.pop("val_images", None)
        if structure not in REAL_DATA:
            final.metrics["real_data_note"] = NO_REAL_DATA
        dest = args.out / structure
        tmp = args.out / f".{structure}.new"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copy2(run_dir / WEIGHTS_NAME, tmp / WEIGHTS_NAME)
        (tmp / CONFIG_NAME).write_text(final.to_json(), encoding="utf-8")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        open_bundle(dest)  # it must load
        size_mb = (dest / WEIGHTS_NAME).stat().st_size / 1e6
        rows.append((structure, size_mb, args.iterations, train_s, r, e))
        print(
            f"{structure:12s} {size_mb:5.1f} MB  {args.iterations} it  {train_s:6.0f} s  "
            f"test r {r:.3f}  nl2 {e:.3f}",
            flush=True,
        )
    print("\n| structure | size (MB) | iterations | time (s) | held-out Pearson r | held-out nl2 |")
    print("|---|---|---|---|---|---|")
    for s, mb, it, ts, r, e in rows:
        print(f"| {s} | {mb:.1f} | {it} | {ts:.0f} | {r:.3f} | {e:.3f} |")
    print(f"\ntotal {time.time() - t0:.0f} s; logs and checkpoints in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
