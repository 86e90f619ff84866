"""`labelfree synth`: write a simulated bright-field + fluorescence OME-TIFF (TCZYX)."""

from __future__ import annotations

import argparse
import time

from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="simulate paired transmitted-light / fluorescence data",
        description="Simulate a field of hiPS-like cells: channel 0 is bright-field (or DIC, or "
        "phase contrast) from a "
        "partially coherent weak-object model, then one true fluorescence channel per structure. "
        "Written as an OME-TIFF TCZYX with physical sizes.",
    )
    p.add_argument("output", help="output file (.ome.tif)")
    p.add_argument(
        "--shape", type=_args.shape, default=(32, 128, 128), help="Z,Y,X voxels [32,128,128]"
    )
    p.add_argument(
        "--voxel-size",
        type=_args.voxel_size,
        default=(0.29, 0.108, 0.108),
        help="um Z,Y,X [0.29,0.108,0.108]",
    )
    p.add_argument(
        "--timepoints", type=int, default=1, help="frames; 2 or more include a division [1]"
    )
    p.add_argument(
        "--structures", default=None, help="comma-separated subset of the structures [all]"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same data [0]")
    p.add_argument(
        "--modality",
        choices=["bright-field", "dic", "phase-contrast"],
        default=None,
        help="[bright-field; drawn with --randomize]",
    )
    p.add_argument(
        "--randomize",
        action="store_true",
        help="domain randomization: draw the optics, camera, pixel size, z-step and cells from "
        "the seed (docs/simulation.md); the field's size follows from the drawn voxel size "
        "(--shape and --voxel-size are not used, one time point)",
    )
    p.add_argument(
        "--extent-um",
        type=_args.voxel_size,
        default=None,
        help="with --randomize: the field's size Z,Y,X in um [Z: the cells plus 2-8 um, drawn; "
        "Y,X: 40,40]",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..core.errors import LabelFreeError
    from ..core.files import check_output_location
    from ..core.io import write_ome_tiff
    from ..core.synth import STRUCTURES, simulate

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise LabelFreeError(f"{out} already exists; choose another name or add --overwrite")
    check_output_location(out)
    if args.structures is None:
        structures = list(STRUCTURES)
    else:
        structures = [s.strip() for s in args.structures.split(",") if s.strip()]
    check_memory(args.shape, args.timepoints, len(structures) + 1)
    if args.extent_um is not None and not args.randomize:
        raise LabelFreeError(
            "--extent-um sizes a randomized field: add --randomize, or size a "
            "clean field with --shape and --voxel-size"
        )
    start = time.perf_counter()
    if args.randomize:
        from ..core.synth.randomize import random_settings, render_field

        settings = random_settings(args.seed, modality=args.modality)
        modality = settings.modality  # given, or drawn
        im = render_field(settings, args.seed, args.extent_um, structures=structures)
    else:
        modality = args.modality or "bright-field"
        im = simulate(
            shape=args.shape,
            voxel_size=args.voxel_size,
            structures=structures,
            seed=args.seed,
            timepoints=args.timepoints,
            modality=modality,
        )
    # self-describing, as a microscope's file: the transmitted light's contrast, then the stains
    write_ome_tiff(
        out,
        im.data,
        channel_names=im.channel_names,
        physical_sizes=im.voxel_size,
        overwrite=args.overwrite,
        channel_modalities=[modality] + ["fluorescence"] * (len(im.channel_names) - 1),
    )
    t, c, z, y, x = im.data.shape
    print(
        f"wrote {out}: T={t} C={c} ({', '.join(im.channel_names)}) Z={z} Y={y} X={x} at "
        f"{','.join(f'{v:g}' for v in im.voxel_size)} um in {time.perf_counter() - start:.1f} s"
    )
    return 0


# the optics work on complex fields of the whole volume: about this many float32 volumes at once
WORKING_VOLUMES = 16


def check_memory(shape: tuple[int, int, int], timepoints: int, channels: int) -> None:
    """Refuse a simulation that needs more memory than the machine has, before allocating it."""
    from ..core.errors import LabelFreeError
    from ..core.machine import physical_memory

    voxels = shape[0] * shape[1] * shape[2]
    need = 4 * voxels * (WORKING_VOLUMES + timepoints * channels)
    have = physical_memory()
    if have is not None and need > have:
        raise LabelFreeError(
            f"simulating {timepoints} x {channels} channels of {'x'.join(map(str, shape))} voxels "
            f"needs about {need / 2**30:,.0f} GiB of memory, more than this machine's "
            f"{have / 2**30:,.0f} GiB; choose a smaller --shape or fewer --timepoints"
        )
