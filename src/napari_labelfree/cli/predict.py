"""`labelfree predict`: predict structures from transmitted-light images into OME-TIFF files."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.config import PRECISIONS, TilingConfig
from ..core.errors import LabelFreeError
from ..core.events import FrameDone
from . import _args
from ._progress import drive_prediction

if TYPE_CHECKING:
    import numpy as np

    from ..core.predict import PredictionPlan


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict fluorescence from transmitted-light z-stacks",
        description="Predict one channel per model for every time point of each input; write OME-TIFF "
        "(TCZYX, the input's Z,Y,X shape and physical sizes).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="CZI, OME-TIFF or TIFF z-stacks")
    p.add_argument(
        "-m",
        "--model",
        action="append",
        required=True,
        dest="models",
        metavar="MODEL",
        help="model folder or name of a discovered model (repeat for several)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .ome.tif file, or a folder (several inputs, or a path without a .tif suffix)",
    )
    p.add_argument("--channel", default=None, help="transmitted-light channel, by name or index")
    p.add_argument(
        "--voxel-size",
        type=_args.voxel_size,
        default=None,
        metavar="Z,Y,X",
        help="voxel size in um when the file lacks it or it is wrong",
    )
    p.add_argument(
        "--tile",
        type=_args.shape,
        default=None,
        metavar="Z,Y,X",
        help=f"tile shape in voxels at the model's voxel size [{','.join(map(str, TilingConfig().tile_shape))}]",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=None,
        help=f"tile overlap fraction [{TilingConfig().overlap}]",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="compute precision: auto (bf16/fp16 on CUDA; bf16 on CPUs with native bf16, else "
        "fp32), fp32, bf16 or fp16; bf16 is ~1.8x faster there and matches fp32 at Pearson "
        "r >= 0.9999; fp32 for float-exact output [auto]",
    )
    p.add_argument(
        "--tta",
        action="store_const",
        const="yx",
        default="none",
        help="test-time augmentation: average the predictions of the 8 flips/rotations in YX "
        "(8x the prediction time, no more memory)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--force",
        action="store_true",
        help="go ahead with a resampling that looks like a wrong voxel size (more than 64x the "
        "voxels or 20x on one axis) or needs more memory than the machine has",
    )
    _args.add_device(p)
    p.set_defaults(
        func=run,
        flag_hints=_args.flag_hints(
            "voxel_size", "channel", "force", "device", "tile_shape", "models", "precision"
        ),
    )


# suffixes stripped from an input's name to name its prediction (longest first)
IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".czi", ".zarr")


def image_stem(path: str | Path) -> str:
    """``cell.1.ome.tif`` -> ``cell.1``: only a known image suffix goes, not every dotted part."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(path).stem or name


def _is_folder_target(output: str) -> bool:
    """An existing folder, a path ending in a separator, or one without a TIFF suffix."""
    out = Path(output)
    return (
        out.is_dir()
        or output.endswith(("/", os.sep))
        or not out.name.lower().endswith((".tif", ".tiff"))
    )


def output_paths(inputs: list[str], output: str) -> list[Path]:
    """One output file per input: -o itself for one input and a .tif name, else files in -o."""
    out = Path(output)
    if len(inputs) == 1 and not _is_folder_target(output):
        return [out]
    if out.exists() and not out.is_dir():
        raise LabelFreeError(f"with several inputs, -o must be a folder; {out} is a file")
    stems = [image_stem(i) for i in inputs]
    if len(set(stems)) != len(stems):
        raise LabelFreeError(
            "two inputs have the same file name; predict them into different folders"
        )
    return [out / f"{s}_predicted.ome.tif" for s in stems]


def run(args: argparse.Namespace) -> int:
    from ..core.io import open_image, write_ome_tiff
    from ..core.predict import plan_prediction

    defaults = TilingConfig()
    tiling = TilingConfig(
        tile_shape=args.tile or defaults.tile_shape,
        overlap=defaults.overlap if args.overlap is None else args.overlap,
        precision=args.precision,
        tta=args.tta,
    )
    targets = output_paths(args.inputs, args.output)
    for target in targets:
        if target.exists() and not args.overwrite:
            raise LabelFreeError(
                f"{target} already exists; choose another output or add --overwrite"
            )
    # every input is checked before the first is predicted: a mistake in the last file must not
    # surface after an hour of work on the others
    plans: list[PredictionPlan] = []
    models = args.models
    for src_path in args.inputs:
        plan = plan_prediction(
            open_image(src_path),
            models,
            args.channel,
            args.voxel_size,
            tiling,
            args.device,
            force=args.force,
        )
        models = plan.bundles  # resolved once
        plans.append(plan)
    for src_path, target, plan in zip(args.inputs, targets, plans, strict=True):
        names = list(plan.names)
        label = Path(src_path).name
        write_ome_tiff(
            target,
            _predicted_frames(plan.iter_frames(), names, label, args.flag_hints),
            shape_tczyx=(plan.n_frames, len(names), *plan.shape_zyx),
            channel_names=names,
            # an assumed voxel size is not recorded as if it had been measured
            physical_sizes=plan.output_physical_sizes,
            overwrite=args.overwrite,
        )
        print(f"{target}: {plan.n_frames} time point(s) x {', '.join(names)}")
    return 0


def _predicted_frames(
    gen, names: list[str], label: str, hints: dict[str, str]
) -> Iterator[np.ndarray]:
    """CZYX frames from a prediction generator, in order, for the streaming writer."""
    import numpy as np

    done: list[FrameDone] = []
    while True:
        drive_prediction(_until_frame(gen, done), label, hints=hints)
        if not done:
            return
        event = done.pop()
        yield np.stack([event.arrays[n] for n in names])


def _until_frame(gen, done: list):
    """Forward events of ``gen`` until one FrameDone (stored in ``done``) or the end."""
    while True:
        try:
            event = next(gen)
        except StopIteration:
            return None
        yield event
        if isinstance(event, FrameDone):
            done.append(event)
            return None
