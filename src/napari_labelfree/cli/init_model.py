"""`labelfree init-model`: write an untrained model bundle (the start of training; handy for tests)."""

from __future__ import annotations

import argparse

from ..core.bundle import init_bundle
from ..core.config import PAPER_VOXEL_SIZE_UM, Architecture, ModelSpec
from ..core.structures import colormap_for
from . import _kind


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init-model", help="write an untrained model bundle")
    p.add_argument("output", metavar="OUT", help="new model folder")
    p.add_argument("--structure", required=True, help="structure name, e.g. dna, lamin-b1, tom20")
    p.add_argument("--depth", type=int, default=4, help="U-Net depth (down-samplings) [4]")
    p.add_argument("--width", type=int, default=32, help="channels at the top level [32]")
    p.add_argument(
        "--voxel-size",
        type=_kind.voxel_size,
        default=PAPER_VOXEL_SIZE_UM,
        metavar="Z,Y,X",
        help="voxel size in um the model works at (Y,X for --kind 2d) [0.29,0.29,0.29]",
    )
    _kind.add_kind_args(p)
    p.add_argument(
        "--colormap", default=None, help="napari colormap for its overlay [by structure]"
    )
    p.add_argument("--display-name", default="", help="name shown in the viewer")
    p.add_argument("--target", default="", help="label / fluorophore of the target, e.g. Hoechst")
    p.add_argument("--modality", default="bright-field", help="input modality [bright-field]")
    p.add_argument("--seed", type=int, default=0, help="random seed of the initial weights [0]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.errors import LabelFreeError

    if args.depth < 1 or args.width < 1:
        raise LabelFreeError("--depth and --width must be positive integers")
    kind = _kind.kind_settings(args, tuple(args.voxel_size))
    spec = ModelSpec(
        structure=args.structure,
        display_name=args.display_name,
        colormap=args.colormap or colormap_for(args.structure),
        target=args.target,
        modality=args.modality,
        voxel_size_um=kind["voxel_size_um"],
        architecture=Architecture(depth=args.depth, width=args.width, **kind["architecture"]),
        target_projection=kind["target_projection"],
        provenance={"created_by": "labelfree init-model", "trained": False, "seed": args.seed},
    )
    bundle = init_bundle(args.output, spec, seed=args.seed)
    print(
        f"wrote untrained model {bundle.path} ({args.structure}, {spec.kind_label}, depth "
        f"{args.depth}, width {args.width})"
    )
    return 0
