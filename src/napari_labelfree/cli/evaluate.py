"""`labelfree evaluate`: Pearson r, normalized L2 error, SSIM, PSNR and NRMSE of models on image pairs.

The paper's Fig. 4b (Pearson r, nl2) and the image-quality scores virtual-staining papers report
now; definitions and normalization in :mod:`napari_labelfree.core.metrics`.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import _args

SCORE_NAMES = ("pearson_r", "nl2", "ssim", "psnr", "nrmse")  # core.metrics.SCORES, no import
COLUMNS = ("model", "structure", "set", "image", "n_images", *SCORE_NAMES)
LABELS = {
    "pearson_r": "Pearson r",
    "nl2": "normalized L2 error",
    "ssim": "SSIM",
    "psnr": "PSNR (dB)",
    "nrmse": "NRMSE (range)",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score models on paired images (Pearson r, normalized L2 error, SSIM, PSNR, NRMSE)",
        description="Predict each DATA pair's signal with each MODEL and score it against the target: "
        "Pearson r and nl2 = sum((prediction - z(target))^2) / sum(z(target)^2), the target z-scored "
        "(a blank prediction scores 1.0), and SSIM, PSNR and NRMSE (scikit-image) of the prediction "
        "against the z-scored target, the data range being the z-scored target's. DATA are image files holding both channels or CSV tables "
        "(signal,target[,signal_channel,target_channel]); prefix a DATA with SET= (e.g. train=a.csv "
        "test=b.csv) to score several sets. The target channel defaults to each model's target label "
        "or structure name.",
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="MODEL_OR_DATA",
        help="MODEL [MODEL ...] then DATA [DATA ...] (existing files are data)",
    )
    p.add_argument(
        "--signal-channel", default=None, help="transmitted-light channel (name or index)"
    )
    p.add_argument(
        "--target-channel",
        default=None,
        help="fluorescence channel (name or index) [each model's target or structure name]",
    )
    p.add_argument(
        "-o", "--output", default=None, metavar="CSV", help="write the scores to this CSV"
    )
    p.add_argument(
        "--plot", default=None, metavar="PNG", help="bar plot of the scores per model and set"
    )
    p.add_argument(
        "--data-voxel-size",
        type=_args.voxel_size,
        default=None,
        metavar="Z,Y,X",
        help="voxel size in um of the data, where the files lack it",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _args.add_device(p)
    p.set_defaults(func=run)


def split_items(items: list[str]) -> tuple[list[str], list[tuple[str, Path]]]:
    """Models first, then data: an existing file (or SET=file) starts the data."""
    from ..core.errors import LabelFreeError

    models: list[str] = []
    data: list[tuple[str, Path]] = []
    for item in items:
        set_name, path = "test", Path(item)
        if not path.is_file() and "=" in item:
            left, right = item.split("=", 1)
            if left and Path(right).is_file():
                set_name, path = left, Path(right)
        if path.is_file():
            data.append((set_name, path))
        elif data:
            raise LabelFreeError(
                f"{item} is not a file; give the models first, then the data files"
            )
        else:
            models.append(item)
    if not models:
        raise LabelFreeError("give at least one model (folder or name) before the data")
    if not data:
        raise LabelFreeError(
            "give at least one data file (image with both channels, or a CSV table)"
        )
    return models, data


def run(args: argparse.Namespace) -> int:
    from ..core.bundle import resolve_model
    from ..core.data import expand, load_pairs
    from ..core.errors import LabelFreeError
    from ..core.predict.plan import output_names
    from ..core.train import evaluate_model
    from ..core.train.evaluate import PROJECTED
    from ..core.trust.seen import learned_from, learned_pixels, pixel_fingerprint, seen_note

    models, data = split_items(args.items)
    for out in (args.output, args.plot):
        if out and Path(out).exists() and not args.overwrite:
            raise LabelFreeError(f"{out} already exists; choose another name or add --overwrite")
    bundles = [resolve_model(m) for m in models]
    names = output_names(bundles)
    rows: list[dict[str, Any]] = []
    notices: set[str] = set()
    for bundle, name in zip(bundles, names, strict=True):
        seen_images: list[str] = []  # by their names
        seen_pixels: list[str] = []  # by their pixels, under other names (training's names kept)
        for set_name, path in data:
            target = args.target_channel or _target_channel(path, bundle.spec)
            pairs, more = load_pairs(
                expand([path], args.signal_channel, target), args.data_voxel_size
            )
            for n in more:
                if n not in notices:
                    print(f"labelfree evaluate: {n}", file=sys.stderr)
                    notices.add(n)
            signals = {p.name: p.signal for p in pairs}
            for r in evaluate_model(bundle, pairs, args.device):
                seen = learned_from(bundle.spec, [r["name"]])
                if seen and seen not in seen_images:
                    seen_images.append(seen)
                if not seen and r["name"] in signals:
                    seen = learned_pixels(bundle.spec, [pixel_fingerprint(signals[r["name"]])])
                    if seen and seen not in seen_pixels:
                        seen_pixels.append(seen)
                if r.get(PROJECTED):
                    n = (
                        f"{name} predicts z-stacks and the target of {r['name']} is one plane: "
                        "the maximum projection of the prediction is scored"
                    )
                    if n not in notices:
                        print(f"labelfree evaluate: {n}", file=sys.stderr)
                        notices.add(n)
                rows.append(
                    {
                        "model": name,
                        "structure": bundle.spec.structure,
                        "set": set_name,
                        "image": r["name"],
                        "n_images": 1,
                        **{k: r[k] for k in SCORE_NAMES},
                    }
                )
                print(
                    f"{name:>16s}  {set_name:>6s}  {r['name']:30s}  r={r['pearson_r']:.3f}  "
                    f"nl2={r['nl2']:.3f}  ssim={r['ssim']:.3f}  psnr={r['psnr']:.2f}  "
                    f"nrmse={r['nrmse']:.4f}" + ("  (trained on it)" if seen else ""),
                    file=sys.stderr,
                )
        if seen_images:  # one line per model, after its rows
            print(
                f"labelfree evaluate: {seen_note(name, bundle.spec, seen_images)}", file=sys.stderr
            )
        if seen_pixels:
            note = seen_note(name, bundle.spec, seen_pixels, same_pixels=True)
            print(f"labelfree evaluate: {note}", file=sys.stderr)
    summary = summarize(rows)
    print_table(summary)
    if args.output:
        write_csv(Path(args.output), rows + summary)
        print(f"wrote {args.output}")
    if args.plot:
        plot_scores(Path(args.plot), rows)
        print(f"wrote {args.plot}")
    return 0


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation per (model, set): image "mean" / "std" rows."""
    out = []
    keys = list(dict.fromkeys((r["model"], r["structure"], r["set"]) for r in rows))
    for model, structure, set_name in keys:
        sel = [r for r in rows if (r["model"], r["set"]) == (model, set_name)]
        for stat, fn in (("mean", np.nanmean), ("std", np.nanstd)):
            out.append(
                {
                    "model": model,
                    "structure": structure,
                    "set": set_name,
                    "image": stat,
                    "n_images": len(sel),
                    **{k: _stat(fn, [r[k] for r in sel]) for k in SCORE_NAMES},
                }
            )
    return out


def _stat(fn: Any, values: list[float]) -> float:
    """``fn`` over the finite values (an infinite PSNR of a perfect image is left out); NaN if none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(fn(finite)) if finite else float("nan")


def print_table(summary: list[dict[str, Any]]) -> None:
    head = "".join(f"  {k:>15s}" for k in SCORE_NAMES)
    print(f"{'model':>16s}  {'set':>6s}  {'n':>3s}{head}")
    means = [r for r in summary if r["image"] == "mean"]
    stds = {(r["model"], r["set"]): r for r in summary if r["image"] == "std"}
    for m in means:
        s = stds[(m["model"], m["set"])]
        cells = "".join(f"  {m[k]:7.3f} ± {s[k]:5.3f}" for k in SCORE_NAMES)
        print(f"{m['model']:>16s}  {m['set']:>6s}  {m['n_images']:>3d}{cells}")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from ..core.files import atomic_file, make_parent

    make_parent(path)
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def plot_scores(path: Path, rows: list[dict[str, Any]]) -> None:
    """Bars (mean) with the single images as dots, per model and set, like the paper's Fig. 4b."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(r["model"] for r in rows))
    sets = list(dict.fromkeys(r["set"] for r in rows))
    panel_w = max(2.6, 0.55 * len(models) * max(1, len(sets)) + 1)
    fig = Figure(figsize=(panel_w * len(SCORE_NAMES), 3.6), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(SCORE_NAMES))
    width = 0.8 / len(sets)
    for ax, metric in zip(axes, SCORE_NAMES, strict=True):
        label = LABELS[metric]
        for k, set_name in enumerate(sets):
            xs, means = [], []
            for i, model in enumerate(models):
                vals = [
                    r[metric]
                    for r in rows
                    if r["model"] == model and r["set"] == set_name and math.isfinite(r[metric])
                ]
                if not vals:
                    continue
                x = i - 0.4 + width * (k + 0.5)
                xs.append(x)
                means.append(float(np.mean(vals)))
                ax.plot([x] * len(vals), vals, ".", color="k", ms=3, zorder=3)
            ax.bar(xs, means, width=width * 0.9, label=set_name, color=f"C{k}", alpha=0.8)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        if metric in ("pearson_r", "ssim"):
            ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.0)
        elif metric == "nl2":
            ax.axhline(1.0, color="0.5", lw=0.8, ls="--")  # a blank prediction
    if len(sets) > 1:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    from ..core.files import atomic_file, make_parent

    make_parent(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")


def _target_channel(path: str | Path, spec: Any) -> str | None:
    """The channel of an image file that holds a model's structure (CSV tables name their own).

    The model's target label ("Hoechst 33342") or structure name ("dna") when the file has such a
    channel, else the channel the structure table takes for the same structure ("DAPI" for dna).
    None for a table: its rows' ``target_channel`` column, a one-channel target file or the file's
    acquisition metadata choose (a structure name imposed on every row would refuse a target file
    whose one channel is named otherwise).
    """
    from ..core.errors import LabelFreeError
    from ..core.io import open_image
    from ..core.structures import find_structure

    default = spec.target or spec.structure
    if Path(path).suffix.lower() == ".csv":
        return None
    with open_image(path) as src:
        names = list(src.channel_names)
        for wanted in filter(None, (spec.target, spec.structure)):
            try:
                return names[src.channel_index(wanted)]
            except LabelFreeError:
                continue  # not a channel of this file: try the next name
    mine = find_structure(spec.structure)
    for name in names:
        found = find_structure(name)
        if mine is not None and found is not None and found.name == mine.name:
            return name
    return default
