"""ISL condition B as a plate: does training on every position beat training on one?

The real field's four 512x512 quadrants become positions: three (top-left, top-right,
bottom-left) are written as a multi-position phase-contrast file with a DAPI file of the same
positions, the fourth (bottom-right) as a test pair never trained on. The same recipe (the Train
widget's for a one-plane target: 2.5D reading the whole stack, depth 3, width 16, 500 iterations
of 4 x 1x128x128, a new network, its automatic strip) trains once on the first position alone and
once on every position (a table naming the scenes, as the widget's "Every scene of this file"
does), and `labelfree evaluate` scores both on the test position. The data's own voxel size is
unknown (the files hold none): both models work on the pixels as they are. Usage::

    OMP_NUM_THREADS=1 python benchmarks/plate_positions_isl.py [--out DIR] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isl-condition-b"
QUADRANTS = {"TL": (0, 0), "TR": (0, 512), "BL": (512, 0), "BR": (512, 512)}
RECIPE = [
    "--structure", "dna", "--init", "none", "--kind", "2.5d", "--target-projection", "max",
    "--in-planes", "13", "--depth", "3", "--width", "16", "--batch-size", "4",
    "--patch-shape", "1,128,128", "--iterations", "500", "--device", "cpu",
]  # fmt: skip


def write_plate(data: Path, out: Path) -> None:
    """The three training positions as two files of scenes, the test position as a pair."""
    import tifffile

    from napari_labelfree.core.io import open_image

    phase = open_image(data / "phase_contrast_zstack.ome.tif").frame(0, 0)
    dapi = open_image(data / "fluorescence_maxproj.ome.tif").frame(0, 0)[0]

    def meta(name: str | None, channel: str, contrast: str) -> dict:
        m = {"axes": "ZYX", "Channel": {"Name": [channel], "ContrastMethod": [contrast]}}
        return m | ({"Name": name} if name else {})

    with (
        tifffile.TiffWriter(out / "plate_phase.ome.tif", ome=True) as tp,
        tifffile.TiffWriter(out / "plate_dapi.ome.tif", ome=True) as td,
    ):
        for name in ("TL", "TR", "BL"):
            y, x = QUADRANTS[name]
            tp.write(
                phase[:, y : y + 512, x : x + 512].astype(np.uint16),
                metadata=meta(name, "phase", "Phase"),
            )
            td.write(
                dapi[None, y : y + 512, x : x + 512].astype(np.uint16),
                metadata=meta(name, "DAPI", "Fluorescence"),
            )
    y, x = QUADRANTS["BR"]
    tifffile.imwrite(
        out / "test_phase.ome.tif",
        phase[:, y : y + 512, x : x + 512].astype(np.uint16),
        metadata=meta(None, "phase", "Phase"),
    )
    tifffile.imwrite(
        out / "test_dapi.ome.tif",
        dapi[None, y : y + 512, x : x + 512].astype(np.uint16),
        metadata=meta(None, "DAPI", "Fluorescence"),
    )
    head = "signal,target,scene\n"
    (out / "one.csv").write_text(head + "plate_phase.ome.tif,plate_dapi.ome.tif,TL\n")
    (out / "every.csv").write_text(head + "plate_phase.ome.tif,plate_dapi.ome.tif,\n")
    (out / "test.csv").write_text("signal,target\ntest_phase.ome.tif,test_dapi.ome.tif\n")


def labelfree(*args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "napari_labelfree", *args], capture_output=True, text=True
    )
    if run.returncode:
        raise SystemExit(run.stderr)
    return run.stdout + run.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args(argv)
    if not (args.data / "phase_contrast_zstack.ome.tif").is_file():
        print(f"skipped: the real data is not here ({args.data}); it lives in ../shared/data/")
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="labelfree-plate-"))
    out.mkdir(parents=True, exist_ok=True)
    write_plate(args.data, out)
    print("| trained on | seed | positions | strip r | test r (bottom-right position) |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        for arm in ("one", "every"):
            model = out / f"{arm}-{seed}"
            labelfree(
                "train", str(out / f"{arm}.csv"), "-o", str(model), "--seed", str(seed), *RECIPE
            )
            # the before/after line's score: the whole held-out strip(s), as the card keeps it
            card = json.loads((model / "config.json").read_text())
            strip = f"{card['metrics']['val_pearson_r_mean']:.3f}"
            table = labelfree(
                "evaluate", str(model), str(out / "test.csv"), "-o", str(out / f"{arm}-{seed}.csv")
            )
            row = next(ln for ln in table.splitlines() if "r=" in ln)
            r = row.split("r=")[1].split()[0]
            print(f"| {arm} | {seed} | {1 if arm == 'one' else 3} | {strip} | {r} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
