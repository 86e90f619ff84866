"""`labelfree demo`: the main job end to end on a simulated bright-field time-lapse.

Simulate a time-lapse of cells (one dividing) at another magnification (0.065 um/px) than the
built-in models were trained at, as in the paper's time-lapse figure; predict every frame with every
built-in model; write the predictions as OME-TIFF and a PNG montage (bright-field | merged colour
prediction | merged ground truth, a few time points), and print each structure's Pearson r / nl2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.files import atomic_file
from . import _args

# the paper's time-lapse: 0.065 um/px laterally, models trained at 0.108 um/px resampled to 0.29 um
DEMO = {
    "shape": (24, 256, 256),
    "voxel_size": (0.29, 0.065, 0.065),
    "seed": 3,
    "timepoints": 5,
    "cell_height": 5.5,
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a bright-field time-lapse, predict it with all built-in models, show the result",
        description="The main job on simulated data: a bright-field time-lapse (a dividing cell, "
        "taken at 0.065 um/px) is predicted frame by frame with every built-in model; writes "
        "predictions.ome.tif, simulated.ome.tif (input and true fluorescence), montage.png and "
        "scores.csv into OUT_DIR and prints each structure's Pearson r and nl2.",
    )
    p.add_argument(
        "-o",
        "--output",
        default="labelfree-demo",
        metavar="OUT_DIR",
        help="output folder [labelfree-demo]",
    )
    p.add_argument(
        "--timepoints", type=int, default=DEMO["timepoints"], help=f"[{DEMO['timepoints']}]"
    )
    p.add_argument(
        "--shape",
        type=_args.shape,
        default=DEMO["shape"],
        metavar="Z,Y,X",
        help=f"simulated stack, voxels [{','.join(map(str, DEMO['shape']))}]",
    )
    p.add_argument("--seed", type=int, default=DEMO["seed"], help=f"[{DEMO['seed']}]")
    p.add_argument(
        "-m",
        "--model",
        action="append",
        dest="models",
        default=None,
        metavar="MODEL",
        help="use this model instead of the built-in ones (repeat for several)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace files in OUT_DIR")
    _args.add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.bundle import discover_models, resolve_model
    from ..core.errors import LabelFreeError
    from ..core.io import from_array, write_ome_tiff
    from ..core.metrics import nl2, pearson_r
    from ..core.predict.plan import output_names
    from ..core.predict.run import iter_predict
    from ..core.synth import STRUCTURES, simulate
    from ._progress import drive_prediction

    out = Path(args.output)
    files = {
        k: out / v
        for k, v in (
            ("pred", "predictions.ome.tif"),
            ("sim", "simulated.ome.tif"),
            ("montage", "montage.png"),
            ("scores", "scores.csv"),
        )
    }
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not args.overwrite:
        raise LabelFreeError(
            f"{', '.join(existing)} already exist; choose another -o or add --overwrite"
        )
    if args.timepoints < 1:
        raise LabelFreeError("--timepoints must be at least 1")
    if args.models:
        bundles = [resolve_model(m) for m in args.models]
        unknown = [b.spec.structure for b in bundles if b.spec.structure not in STRUCTURES]
        if unknown:
            raise LabelFreeError(
                f"the simulator has no ground truth for {unknown}; use models of "
                f"{', '.join(STRUCTURES)}"
            )
    else:
        builtin = [m for m in discover_models() if m.source == "builtin"]
        by_structure = {m.spec.structure: m for m in builtin}
        bundles = [by_structure[s] for s in STRUCTURES if s in by_structure]
    if not bundles:
        raise LabelFreeError(
            "no built-in models found; reinstall napari-labelfree or run "
            "scripts/train_builtin_models.py"
        )
    structures = [b.spec.structure for b in bundles]
    names = output_names(bundles)

    t0 = time.perf_counter()
    params = {**DEMO, "shape": args.shape, "seed": args.seed, "timepoints": args.timepoints}
    print(
        f"simulating a bright-field time-lapse: {args.timepoints} frames of {tuple(args.shape)} voxels "
        f"at {params['voxel_size']} um (Z, Y, X) ...",
        file=sys.stderr,
        flush=True,
    )
    im = simulate(structures=structures, **params)
    t_sim = time.perf_counter() - t0
    bf = im.data[:, 0]
    source = from_array(bf[:, None], "TCZYX", ["bright-field"], im.voxel_size)
    print(
        f"predicting {', '.join(structures)} (models at {bundles[0].spec.voxel_size_um} um) ...",
        file=sys.stderr,
        flush=True,
    )
    t1 = time.perf_counter()
    pred = drive_prediction(iter_predict(source, bundles, 0, device=args.device), "demo")
    t_pred = time.perf_counter() - t1

    out.mkdir(parents=True, exist_ok=True)
    stack = np.stack([pred[n] for n in names], axis=1)  # TCZYX
    write_ome_tiff(
        files["pred"],
        stack,
        channel_names=names,
        physical_sizes=im.voxel_size,
        overwrite=args.overwrite,
    )
    write_ome_tiff(
        files["sim"],
        im.data,
        channel_names=im.channel_names,
        physical_sizes=im.voxel_size,
        overwrite=args.overwrite,
    )

    rows = []
    for name, b in zip(names, bundles, strict=True):
        c = im.channel_names.index(b.spec.structure)
        rs = [pearson_r(pred[name][t], im.data[t, c]) for t in range(args.timepoints)]
        es = [nl2(pred[name][t], im.data[t, c]) for t in range(args.timepoints)]
        rows.append(
            (name, float(np.mean(rs)), float(np.mean(es)), b.spec.metrics.get("test_pearson_r"))
        )
    _write_scores(files["scores"], rows)
    montage(files["montage"], im, pred, bundles, names)

    print(
        f"\n{'structure':>12s}  {'Pearson r':>9s}  {'nl2':>6s}  (mean over {args.timepoints} frames; "
        "built-in test r in brackets)"
    )
    for name, r, e, test_r in rows:
        ref = f"  [{test_r:.2f}]" if isinstance(test_r, (int, float)) else ""
        print(f"{name:>12s}  {r:9.3f}  {e:6.3f}{ref}")
    print(f"\nwrote {files['pred']}, {files['sim']}, {files['montage']}, {files['scores']}")
    print(
        f"simulation {t_sim:.0f} s, prediction {t_pred:.0f} s; open them in napari: "
        f"napari {files['sim']} {files['pred']}"
    )
    return 0


def _write_scores(path: Path, rows: list[tuple[str, float, float, Any]]) -> None:
    lines = ["structure,pearson_r,nl2"] + [f"{n},{r:.4f},{e:.4f}" for n, r, e, _ in rows]
    with atomic_file(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _norm(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Percentile contrast stretch to [0, 1] (limits from all frames so brightness is comparable)."""
    p0, p1 = np.percentile(a, [lo, hi])
    return np.clip((a - p0) / max(float(p1 - p0), 1e-6), 0.0, 1.0)


def merge(channels: list[np.ndarray], colours: list[tuple[float, float, float]]) -> np.ndarray:
    """Additive colour merge of [0, 1] images (as napari's additive blending), clipped to [0, 1]."""
    rgb = np.zeros((*channels[0].shape, 3), np.float32)
    for ch, col in zip(channels, colours, strict=True):
        rgb += ch[..., None] * np.asarray(col, np.float32)
    return np.clip(rgb, 0.0, 1.0)


def montage(
    path: Path,
    im: Any,
    pred: dict[str, np.ndarray],
    bundles: list,
    names: list[str],
    n_rows: int = 4,
) -> None:
    """Rows: time points; columns: bright-field | merged prediction | merged ground truth (mid-slice)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..core.structures import rgb_for

    n_t = im.data.shape[0]
    ts = sorted(set(np.linspace(0, n_t - 1, min(n_rows, n_t)).round().astype(int).tolist()))
    # the z-plane through the middle of the nuclei: where the true DNA (or all light) is brightest
    ci = im.channel_names.index("dna") if "dna" in im.channel_names else 1
    z = int(np.argmax(im.data[0, ci].sum(axis=(1, 2))))
    colours = [rgb_for(b.spec.colormap) for b in bundles]
    pred_ch, true_ch = [], []
    for name, b in zip(names, bundles, strict=True):
        c = im.channel_names.index(b.spec.structure)
        pred_ch.append(_norm(pred[name][:, z], 1.0, 99.7))
        true_ch.append(_norm(im.data[:, c, z], 1.0, 99.7))
    bf = _norm(im.data[:, 0, z], 0.5, 99.5)
    fig = Figure(figsize=(9.6, 3.2 * len(ts) + 0.9), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(ts), 3, squeeze=False)
    extent_um = (0, im.data.shape[-1] * im.voxel_size[2], im.data.shape[-2] * im.voxel_size[1], 0)
    for row, t in enumerate(ts):
        panels = [
            (bf[t], "bright-field (input)", "gray"),
            (merge([p[t] for p in pred_ch], colours), "prediction (from bright-field)", None),
            (merge([c[t] for c in true_ch], colours), "ground truth (fluorescence)", None),
        ]
        for col, (img, title, cmap) in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, extent=extent_um, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=10)
            if col == 0:
                ax.set_ylabel(f"t = {t}", fontsize=10)
        # 5 um scale bar on the bright-field panel
        ax = axes[row][0]
        x0 = extent_um[1] * 0.06
        y0 = extent_um[2] * 0.92
        ax.plot([x0, x0 + 5.0], [y0, y0], color="white", lw=3)
    legend = "   ".join(f"{b.spec.structure}: {b.spec.colormap}" for b in bundles)
    fig.suptitle(
        f"label-free prediction of a simulated bright-field time-lapse, z-plane {z} "
        f"({z * im.voxel_size[0]:.1f} um); scale bar 5 um\n{legend}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
