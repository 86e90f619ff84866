"""`labelfree import`: turn a pytorch_fnet model or a bioimage.io package into a model bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import a pytorch_fnet model or a bioimage.io package as a model",
        description="Write a model folder (config.json + weights.safetensors) from a pytorch_fnet "
        "model (its folder, with model.p and train_options.json, or the model.p) or from a "
        "bioimage.io model package (.zip) exported by napari-labelfree. Files are read as data "
        "only; nothing in them is executed.",
    )
    p.add_argument("path", metavar="PATH", help="pytorch_fnet model folder or model.p, or a .zip")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="new model folder")
    p.add_argument(
        "--structure",
        default=None,
        help="structure name [pytorch_fnet: the folder's name, e.g. saved_models/dna -> dna]",
    )
    p.add_argument(
        "--data-voxel-size",
        type=_args.voxel_size,
        default=None,
        metavar="Z,Y,X",
        help="pytorch_fnet: voxel size in um of the images the model was trained on, before any "
        "resizing in train_options.json [0.29,0.108,0.108, the paper's, when it resized them; "
        "required otherwise]",
    )
    p.add_argument("--colormap", default=None, help="napari colormap [by structure]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing MODEL_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.errors import LabelFreeError

    source = Path(args.path).expanduser()
    if source.suffix.lower() == ".zip":
        from ..core.interop.bioimageio import import_package

        if args.data_voxel_size is not None:
            raise LabelFreeError("--data-voxel-size is for pytorch_fnet models; a package has it")
        bundle = import_package(
            source,
            args.output,
            structure=args.structure,
            colormap=args.colormap,
            overwrite=args.overwrite,
        )
        warning = None
    else:
        from ..core.interop.fnet import NeedsDataVoxelSize, import_fnet

        try:
            bundle, warning = import_fnet(
                source,
                args.output,
                structure=args.structure,
                data_voxel_size=args.data_voxel_size,
                colormap=args.colormap,
                overwrite=args.overwrite,
            )
        except NeedsDataVoxelSize as e:
            raise LabelFreeError(f"{e}: add --data-voxel-size Z,Y,X, e.g. 0.29,0.29,0.29") from None
    if warning:
        print(f"labelfree import: warning: {warning} (--data-voxel-size)", file=sys.stderr)
    s = bundle.spec
    vox = ", ".join(f"{v:g}" for v in s.voxel_size_um)
    print(
        f"wrote {bundle.path}: {s.structure} ({s.colormap}), voxel size {vox} um, "
        f"z-score over {s.normalization.scope}, depth {s.architecture.depth}, "
        f"width {s.architecture.width}"
    )
    return 0
