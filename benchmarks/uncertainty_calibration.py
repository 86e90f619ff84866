"""Does the uncertainty say where the error is? Per-patch Spearman and AUROC on held-out data.

The uncertainty is ``labelfree predict --uncertainty``'s: the voxel-wise standard deviation of the
predictions of the 8 flips/rotations in YX (core.predict.tta.spread_predictor). Held-out images
are cut into patches; for each, the mean uncertainty and the mean absolute error of the
prediction (z-scored truth); printed:

* Spearman's rank correlation between the two over the patches;
* AUROC of the mean uncertainty for flagging the patches in the worst quartile of error;
* the cost: seconds of prediction with and without the uncertainty, in one run.

Data:

* ``real``: the ISL condition-B field (benchmarks/real_data_isl.py's split, data and citation):
  a small model trained on the training part (DAPI target, the default recipe), scored on the
  test part. The 2D target pairs with the mean of the 3D prediction (and uncertainty) over z.
* ``simulated``: the built-in ``dna`` model on held-out simulated fields (seeds 200, 201, never
  used to train it), against the true DNA channel.

``--figure PATH`` writes prediction, truth, error and uncertainty side by side (docs/trust.md).

``--ensemble K`` (real data) trains an ensemble of K seeds instead (core.train.ensemble) and
scores, on the same patches, its uncertainty (members and variants) beside that of its first
member alone (the same seed and data: TTA only). ``--score-on val`` scores on the training
part's right 64 px strip, kept out of training (validation data), instead of the test part.

    OMP_NUM_THREADS=1 python benchmarks/uncertainty_calibration.py --figure docs/images/trust_calibration.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def zscore(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return (a - a.mean()) / a.std()


def patch_means(a: np.ndarray, size: int) -> np.ndarray:
    """Means of the ``size`` x ``size`` YX patches of a YX (or ZYX: all z) array, one per patch."""
    if a.ndim == 2:
        a = a[None]
    _, h, w = a.shape
    h, w = h // size * size, w // size * size
    a = a[:, :h, :w].reshape(a.shape[0], h // size, size, w // size, size)
    return a.mean(axis=(0, 2, 4)).ravel()


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney U statistic, ties counted half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration(unc: np.ndarray, err: np.ndarray, pred: np.ndarray, size: int) -> dict:
    """Per-patch scores of the uncertainty, and of the predicted brightness as a baseline.

    A flag any user has without an uncertainty is "where the prediction is bright" (errors grow
    with the signal): the uncertainty is worth its 8x cost only where it beats that.
    """
    return scores(patch_means(unc, size), patch_means(err, size), patch_means(pred, size))


def scores(u: np.ndarray, e: np.ndarray, p: np.ndarray) -> dict:
    from scipy.stats import spearmanr

    worst = e >= np.quantile(e, 0.75)
    return {
        "patches": int(u.size),
        "spearman": round(float(spearmanr(u, e).statistic), 3),
        "auroc_worst_quartile": round(auroc(u, worst), 3),
        "baseline_brightness_spearman": round(float(spearmanr(p, e).statistic), 3),
        "baseline_brightness_auroc": round(auroc(p, worst), 3),
    }


def predict_both(volume, bundle, voxel, device):
    """(prediction, uncertainty, seconds with, seconds plain) of one ZYX volume."""
    from napari_labelfree.core.config import TilingConfig
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.predict.run import iter_predict_volume

    name = bundle.spec.structure
    t0 = time.perf_counter()
    out = drain(
        iter_predict_volume(
            volume, [bundle], voxel, TilingConfig(precision="fp32", uncertainty=True), device
        )
    )
    t_with = time.perf_counter() - t0
    t0 = time.perf_counter()
    drain(iter_predict_volume(volume, [bundle], voxel, TilingConfig(precision="fp32"), device))
    t_plain = time.perf_counter() - t0
    return out[name], out[f"{name} (uncertainty)"], t_with, t_plain


def real(args) -> tuple[dict, tuple] | None:
    from real_data_isl import CITATION, load_split, part, train_config

    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.train import ImagePair, iter_train

    data = load_split(args)
    if data is None:
        return None
    sig, tgt, test_sig, truth = part(data, "DAPI")
    if args.score_on == "val":  # the validation strip: never trained on, never the test part
        from real_data_isl import val_strip

        sig, tgt, (strip,) = val_strip(sig, tgt, "DAPI", 64, 16)
        test_sig, truth = strip.signal, np.asarray(strip.target)[0]
    vox = (1.0, 1.0, 1.0)  # unknown pixel size: the data's own grid, as real_data_isl.py
    spec = ModelSpec(
        structure="dna",
        target="DAPI",
        modality="phase contrast",
        voxel_size_um=vox,
        architecture=Architecture(depth=args.depth, width=args.width),
        provenance={"data": CITATION},
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="labelfree-calibration-"))
    if args.model is not None:  # trained before by this script on the same split (--out)
        from napari_labelfree.core.bundle import open_bundle

        return _score_real(args, open_bundle(args.model), test_sig, truth, vox)
    t0 = time.time()
    if args.ensemble:
        return _ensemble_real(args, spec, sig, tgt, out, test_sig, truth, vox)
    bundle = drain(
        iter_train(
            [ImagePair(sig, np.ascontiguousarray(tgt), None, "ISL train, DAPI")],
            spec,
            out / "isl-dapi",
            train_config("default", args, 0),
            device=args.device,
        )
    )
    print(f"real: trained {args.iterations} iterations in {time.time() - t0:.0f} s ({out})")
    return _score_real(args, bundle, test_sig, truth, vox)


def _ensemble_real(args, spec, sig, tgt, out, test_sig, truth, vox) -> tuple[dict, tuple]:
    """An ensemble of ``args.ensemble`` seeds: its scores, and its first member's alone."""
    import dataclasses

    from real_data_isl import train_config
    from safetensors.torch import load_file

    from napari_labelfree.core.bundle import open_bundle, save_bundle
    from napari_labelfree.core.ensemble import MEMBER_PREFIX
    from napari_labelfree.core.events import drain
    from napari_labelfree.core.train import ImagePair
    from napari_labelfree.core.train.ensemble import iter_train_ensemble

    t0 = time.time()
    ens = drain(
        iter_train_ensemble(
            [ImagePair(sig, np.ascontiguousarray(tgt), None, "ISL train, DAPI")],
            spec,
            out / "isl-dapi-ensemble",
            args.ensemble,
            train_config("default", args, 0),
            device=args.device,
        )
    )
    print(
        f"real: trained {args.ensemble} x {args.iterations} iterations in {time.time() - t0:.0f} s"
    )
    first = {
        k.removeprefix(f"{MEMBER_PREFIX}0."): v
        for k, v in load_file(str(ens.path / "weights.safetensors")).items()
        if k.startswith(f"{MEMBER_PREFIX}0.")
    }
    alone = dataclasses.replace(ens.spec, ensemble=None, metrics={})
    member = open_bundle(save_bundle(out / "isl-dapi-member-1", alone, first, overwrite=True))
    row, shown = _score_real(args, ens, test_sig, truth, vox)
    single, _ = _score_real(args, member, test_sig, truth, vox)
    row["members"] = args.ensemble
    row["first_member_alone"] = {
        k: single[k]
        for k in ("spearman", "auroc_worst_quartile", "pearson_r", "seconds_with_uncertainty")
    }
    return row, shown


def _score_real(args, bundle, test_sig, truth, vox) -> tuple[dict, tuple]:
    pred, unc, t_with, t_plain = predict_both(test_sig, bundle, vox, args.device)
    p2, u2 = pred.mean(axis=0), unc.mean(axis=0)
    err = np.abs(p2 - zscore(truth))
    row = {
        "data": f"real (ISL {'validation strip' if args.score_on == 'val' else 'test part'}, "
        f"DAPI){f', ensemble of {args.ensemble}' if args.ensemble else ''}",
        **calibration(u2, err, p2, args.patch),
        "pearson_r": round(float(np.corrcoef(p2.ravel(), truth.ravel())[0, 1]), 3),
        "seconds_with_uncertainty": round(t_with, 2),
        "seconds_plain": round(t_plain, 2),
        "cost_ratio": round(t_with / t_plain, 2),
    }
    return row, (p2, zscore(truth), err, u2)


def simulated(args) -> tuple[dict, tuple]:
    from napari_labelfree.core.bundle import resolve_model
    from napari_labelfree.core.synth import simulate

    bundle = resolve_model("dna")
    sim = bundle.spec.provenance["simulation"]
    shape, voxel = tuple(sim["shape_zyx"]), tuple(sim["voxel_size_um"])
    uncs, errs, preds, shown = [], [], [], None
    t_with = t_plain = 0.0
    for seed in sim["test_seeds"]:
        im = simulate(shape, voxel, structures=["dna"], seed=seed)
        pred, unc, tw, tp = predict_both(im.data[0, 0], bundle, voxel, args.device)
        t_with, t_plain = t_with + tw, t_plain + tp
        err = np.abs(pred - zscore(im.data[0, 1]))
        uncs.append(unc)
        errs.append(err)
        preds.append(pred)
        if shown is None:
            z = shape[0] // 2
            shown = (pred[z], zscore(im.data[0, 1])[z], err[z], unc[z])
    rows = [calibration(*a, args.patch) for a in zip(uncs, errs, preds, strict=True)]
    row = {
        "data": f"simulated (built-in dna, seeds {sim['test_seeds']})",
        **scores(
            *(
                np.concatenate([patch_means(a, args.patch) for a in arrays])
                for arrays in (uncs, errs, preds)
            )
        ),
        "per_field": rows,
        "seconds_with_uncertainty": round(t_with, 2),
        "seconds_plain": round(t_plain, 2),
        "cost_ratio": round(t_with / t_plain, 2),
    }
    return row, shown


def figure(path: Path, panels: list[tuple[str, tuple]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ("prediction", "truth (z-scored)", "|error|", "uncertainty (TTA spread)")
    fig, axes = plt.subplots(len(panels), 4, figsize=(13, 3.4 * len(panels)), squeeze=False)
    for r, (label, images) in enumerate(panels):
        pred, truth, err, unc = images
        lo, hi = np.percentile(truth, [1, 99.5])
        for c, (img, title) in enumerate(zip(images, titles, strict=True)):
            ax = axes[r, c]
            if c < 2:
                im = ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
            else:
                im = ax.imshow(img, cmap="magma", vmin=0, vmax=np.percentile(img, 99.5))
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            ax.set_title(f"{label}: {title}" if c == 0 else title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"figure: {path}")


def main(argv: list[str] | None = None) -> int:
    from real_data_isl import add_data_args

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(ap)
    ap.set_defaults(iterations=300)
    ap.add_argument("--patch", type=int, default=32, help="patch side in pixels [32]")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="keep the trained model here")
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument(
        "--model", type=Path, default=None, help="score this model (trained here before, --out)"
    )
    ap.add_argument("--data-sets", nargs="+", default=["real", "simulated"])
    ap.add_argument(
        "--ensemble",
        type=int,
        default=0,
        metavar="K",
        help="real: an ensemble of K seeds [one model]",
    )
    ap.add_argument(
        "--score-on", choices=("test", "val"), default="test", help="real: which held-out part"
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    panels = []
    for which in args.data_sets:
        result = real(args) if which == "real" else simulated(args)
        if result is None:
            continue
        row, shown = result
        print(
            f"{row['data']}: {row['patches']} patches of {args.patch}x{args.patch} px, Spearman "
            f"{row['spearman']:.3f}, AUROC (worst error quartile) {row['auroc_worst_quartile']:.3f} "
            f"(brightness baseline: {row['baseline_brightness_spearman']:.3f}, "
            f"{row['baseline_brightness_auroc']:.3f}); "
            f"prediction {row['seconds_plain']:.1f} s, with uncertainty "
            f"{row['seconds_with_uncertainty']:.1f} s ({row['cost_ratio']:.1f}x)"
        )
        alone = row.get("first_member_alone")
        if alone:
            print(
                f"  its first member alone (TTA spread only): Spearman {alone['spearman']:.3f}, "
                f"AUROC {alone['auroc_worst_quartile']:.3f}, Pearson r {alone['pearson_r']:.3f}"
            )
        print("RESULT " + json.dumps(row), flush=True)
        panels.append((which, shown))
    if args.figure is not None and panels:
        figure(args.figure, panels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
