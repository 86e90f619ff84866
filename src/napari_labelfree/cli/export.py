"""`labelfree export`: write a model as a bioimage.io model package (.zip)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model as a bioimage.io model package",
        description="Write a bioimage.io model package (spec 0.5, .zip): PyTorch state dict and "
        "TorchScript weights, test tensors, cover, README, citation. Read it back with "
        "`labelfree import NAME.zip`.",
    )
    p.add_argument("model", metavar="MODEL", help="model folder or name of a discovered model")
    p.add_argument("-o", "--output", required=True, metavar="NAME.zip", help="package to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package")
    p.add_argument(
        "--author",
        action="append",
        default=[],
        metavar="NAME",
        help="the model's author as bioimage.io credits it; repeat for several [none: the "
        "package says 'unknown']",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.bundle import resolve_model
    from ..core.interop.bioimageio_export import UNKNOWN_AUTHOR, export_package

    bundle = resolve_model(args.model)
    path = export_package(bundle, args.output, overwrite=args.overwrite, authors=args.author)
    if not args.author:
        print(
            f"note: no --author given: the package names its author as {UNKNOWN_AUTHOR!r}; "
            "export again with --author 'Your Name' before sharing it on bioimage.io",
            file=sys.stderr,
        )
    print(f"wrote {path}: bioimage.io model package of {bundle.spec.structure} ({bundle.path})")
    return 0
