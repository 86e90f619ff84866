"""`labelfree predict`: predict structures from transmitted-light images into OME-TIFF or OME-Zarr.

Output naming and writing live in :mod:`._outputs`; running on a Dask cluster in :mod:`._cluster`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.config import PRECISIONS, TilingConfig
from ..core.errors import LabelFreeError
from . import _args, _kind
from ._outputs import (
    FORMATS,
    TIFF,
    ZARR,
    check_targets,
    image_stem,
    output_paths,
    source_label,
    write_tiff,
    write_zarr,
)

if TYPE_CHECKING:
    from ..core.predict.plan import PredictionPlan

__all__ = ["image_stem", "output_paths", "register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict fluorescence from transmitted-light z-stacks",
        description="Predict one channel per model for every time point of each input; write "
        "OME-TIFF or OME-Zarr (TCZYX, the input's Z,Y,X shape and physical sizes), here or on a "
        "Dask cluster.",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="CZI, OME-TIFF, TIFF or OME-Zarr z-stacks"
    )
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
        "--scene",
        default=None,
        metavar="SCENE",
        help="of inputs holding several scenes (positions, tiles, series: a multi-position CZI), "
        "the one to predict, by name or index, or 'all': every scene, each into its own output "
        "in the folder -o [the first, said in one line]",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .ome.tif file or .ome.zarr store, or a folder (several inputs, or a path "
        "without a .tif/.zarr suffix) that gets NAME_predicted.ome.tif (or .ome.zarr) per input",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="format of the outputs in a folder -o [ome-tiff; ome-zarr with --scheduler/--workers]; "
        "a file -o takes the format of its suffix",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="OME-Zarr: finish the frames an interrupted run left missing (its partial store is "
        "kept beside the output)",
    )
    p.add_argument(
        "--channel",
        default=None,
        help="transmitted-light channel, by name or index [the only channel, or the one the "
        "file's acquisition metadata says is transmitted light]",
    )
    p.add_argument(
        "--voxel-size",
        type=_kind.voxel_size,
        default=None,
        metavar="Z,Y,X",
        help="voxel size in um when the file lacks it or it is wrong (Y,X with 2D models)",
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
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="add per model an output '<structure> (uncertainty)': the voxel-wise spread of the "
        "predictions of the 8 flips/rotations in YX (8x the prediction time; see docs/trust.md)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--timings",
        action="store_true",
        help="print the time of start-up, reading, prediction and writing",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="go ahead with a resampling that looks like a wrong voxel size (more than 64x the "
        "voxels or 20x on one axis) or needs more memory than the machine has, or from a channel "
        "the file's acquisition metadata says is fluorescence",
    )
    _args.add_device(p)
    cluster = p.add_argument_group(
        "Dask cluster (OME-Zarr output; each worker writes its frames into the store)"
    )
    cluster.add_argument(
        "--scheduler",
        type=_scheduler,
        default=None,
        metavar="tcp://HOST:PORT",
        help="send the frames to a running Dask scheduler and its workers",
    )
    cluster.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N|auto",
        help="start a local cluster of N worker processes (auto: one per GPU, pinned to it)",
    )
    cluster.add_argument(
        "--block",
        type=_args.shape,
        default=None,
        metavar="Z,Y,X",
        help="cut each frame into blocks of this many voxels, one task each (for frames too big "
        "for one worker; the image must be at the models' voxel size)",
    )
    p.set_defaults(
        func=run,
        flag_hints=_args.flag_hints(
            "voxel_size", "channel", "force", "device", "tile_shape", "models", "precision"
        ),
    )


def _scheduler(text: str) -> str:
    """A Dask scheduler address, checked for its form before any work (not yet reached)."""
    address = text.strip()
    scheme, sep, location = address.rpartition("://")
    host, colon, port = location.rpartition(":")
    ok = (
        (not sep or scheme in ("tcp", "tls", "ucx", "ws", "wss"))
        and colon
        and host.strip("[]")
        and port.isdigit()
        and 1 <= int(port) <= 65535
    )
    if not ok:
        raise argparse.ArgumentTypeError(
            f"expected a Dask scheduler address tcp://HOST:PORT (port 1-65535), got {text!r}"
        )
    return address if sep else f"tcp://{address}"


def _workers(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    if text.strip().isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a number of workers or auto, got {text!r}")


def run(args: argparse.Namespace) -> int:
    import time

    from ..core.io import open_image
    from ..core.predict.plan import plan_prediction
    from ._timings import ReadAhead, Timings, process_seconds

    t_run = time.perf_counter()
    before_run = process_seconds() if args.timings else None
    on_cluster = bool(args.scheduler or args.workers)
    _check_flags(args, on_cluster)
    defaults = TilingConfig()
    tiling = TilingConfig(
        tile_shape=args.tile or defaults.tile_shape,
        overlap=defaults.overlap if args.overlap is None else args.overlap,
        precision=args.precision,
        tta=args.tta,
        uncertainty=args.uncertainty,
    )
    inputs, scenes, tags = _scene_items(args.inputs, args.scene)
    plate = _plate_output(args, inputs, scenes)
    if plate is not None:  # a plate's every image into a plate of the same layout
        targets, fmt = [Path(args.output) / name for name in plate], ZARR
    else:
        targets, fmt = output_paths(
            inputs,
            args.output,
            args.format,
            default_fmt=ZARR if on_cluster else TIFF,
            scenes=tags,
        )
    if fmt == TIFF and (on_cluster or args.resume):
        why = "--resume" if args.resume else "a Dask cluster (--scheduler, --workers)"
        raise LabelFreeError(
            f"{why} needs OME-Zarr output; name it {image_stem(targets[0])}.ome.zarr "
            "or give a folder with --format ome-zarr"
        )
    check_targets(targets, args.overwrite, args.resume)
    # every input is checked before the first is predicted: a mistake in the last file must not
    # surface after an hour of work on the others
    plans: list[PredictionPlan] = []
    models = args.models
    for src_path, scene in zip(inputs, scenes, strict=True):
        source = open_image(src_path, scene)
        if args.scene is None and source.scenes_note():
            print(f"labelfree predict: {source.scenes_note()}", file=sys.stderr)
        plan = plan_prediction(
            source,
            models,
            args.channel,
            args.voxel_size,
            tiling,
            # on a cluster each worker resolves the device (it may have GPUs this machine lacks)
            "cpu" if on_cluster else args.device,
            force=args.force,
        )
        models = plan.bundles  # resolved once
        source.close()  # opened again at its turn: a plate of 96 scenes holds no 96 open files
        plans.append(plan)
    if on_cluster:
        from ._cluster import predict_on_cluster

        predict_on_cluster(args, plans, targets)
    else:
        # several images: each line once, and a warning about an image names it
        said: set[str] | None = set() if len(plans) > 1 else None
        for i, (target, plan) in enumerate(zip(targets, plans, strict=True)):
            label = source_label(plan.source)
            # frame t + 1 is read while t is predicted (and, into a TIFF, predicted while t is written)
            timings = Timings()
            if i == 0:
                timings.start_up = time.perf_counter() - t_run + (before_run or 0.0)
            plan.source = reader = ReadAhead(plan.source, timings)
            t_file = time.perf_counter()
            try:
                if fmt == ZARR:
                    write_zarr(
                        plan, target, args.resume, args.overwrite, label, args.flag_hints, said
                    )
                else:
                    write_tiff(plan, target, args.overwrite, label, args.flag_hints, timings, said)
            finally:
                reader.close()  # no read left running when the command ends (or is interrupted)
            if args.timings:
                timings.total = time.perf_counter() - t_file + timings.start_up
                timings.writing = timings.total - timings.start_up - timings.waiting
                print(f"{target.name}: {timings.line()}", file=sys.stderr)
    for target, plan in zip(targets, plans, strict=True):
        print(f"{target}: {plan.n_frames} time point(s) x {', '.join(plan.output_names)}")
    if plate is not None:
        from ..core.io.hcs import write_plate_layout

        write_plate_layout(Path(args.output), plate)
        print(f"{args.output}: an OME-Zarr plate of {len(plate)} images, as {inputs[0]}'s")
    return 0


def _plate_output(
    args: argparse.Namespace, inputs: list[str], scenes: list[str | int | None]
) -> list[str] | None:
    """The image paths ("A/1/0", ...) of the plate to write, where every image of one OME-Zarr
    plate is predicted (``--scene all``) into an output named ``.zarr``; None otherwise."""
    from ..core.io.hcs import plate_images
    from ._outputs import format_of

    every = (args.scene or "").strip().lower() == "all"
    if not every or len(set(inputs)) != 1 or format_of(args.output) != ZARR or None in scenes:
        return None
    images = plate_images(Path(inputs[0]))
    if not images:
        return None
    if args.format == TIFF:
        raise LabelFreeError(
            f"the predictions of a plate go into an OME-Zarr plate; name the output "
            f"{image_stem(args.output)}.ome.zarr without --format ome-tiff, or give a folder"
        )
    out = Path(args.output)
    if out.exists() and not (args.overwrite or args.resume):
        raise LabelFreeError(f"{out} already exists; choose another output or add --overwrite")
    return [images[int(k)] for k in scenes]  # type: ignore[arg-type]


def _scene_items(
    inputs: list[str], scene: str | None
) -> tuple[list[str], list[str | int | None], list[str | None]]:
    """What to predict: per item its input, the scene to open and the scene's part of the
    output's name (None: none). ``scene`` "all" makes an item of every scene of each input."""
    if scene is None or scene.strip().lower() != "all":
        return list(inputs), [scene] * len(inputs), [scene] * len(inputs)
    from ..core.io import open_image
    from ._outputs import scene_tag

    items: tuple[list[str], list[str | int | None], list[str | None]] = ([], [], [])
    for path in inputs:
        with open_image(path) as first:
            names = first.scenes
        if len(names) < 2:  # a file of one scene: its output is named as without --scene
            indices, tags = [None], [None]
        else:  # named after the scenes, or numbered where two names would make one file name
            indices = list(range(len(names)))
            distinct = len({scene_tag(n).lower() for n in names}) == len(names)
            tags = list(names) if distinct else [str(k) for k in indices]
        items[0].extend([path] * len(indices))
        items[1].extend(indices)
        items[2].extend(tags)
    return items


def _check_flags(args: argparse.Namespace, on_cluster: bool) -> None:
    """Combinations of flags that cannot work together, told before any file is opened."""
    if args.scheduler and args.workers:
        raise LabelFreeError("give either --scheduler (an existing cluster) or --workers, not both")
    if args.block and not on_cluster:
        raise LabelFreeError(
            "--block cuts frames into tasks for a Dask cluster; add --workers N or --scheduler"
        )
