"""`labelfree models`: list the models found, and where; broken ones with the reason."""

from __future__ import annotations

import argparse
import sys

from ..core.bundle import ENV_VAR, model_search_paths, scan_models


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list available models",
        description=f"List models in the built-in folder, the user folder and {ENV_VAR}; "
        "model folders that cannot be used are listed as broken, with the reason.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    scan = scan_models()
    for path, source in scan.missing:
        where = f"{ENV_VAR} lists" if source == "env" else f"the {source} model folder"
        print(f"labelfree models: {where} {path}, which is missing or unreadable", file=sys.stderr)
    if not scan.models and not scan.broken:
        print("no models found; searched:")
        for path, source in model_search_paths():
            print(f"  {source:8s} {path}")
        print("make one with `labelfree train` or `labelfree init-model`")
        return 0
    rows = [("NAME", "STRUCTURE", "VOXEL SIZE (um, Z,Y,X)", "SOURCE", "PATH")]
    for m in scan.models:
        vox = ",".join(f"{v:g}" for v in m.spec.voxel_size_um)
        rows.append((m.name, m.spec.structure, vox, m.source, str(m.path)))
    for b in scan.broken:
        rows.append((b.name, "BROKEN", "-", b.source, str(b.path)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    for m in scan.models:
        if m.spec.unknown_keys:
            # written by a newer napari-labelfree in the same schema: usable, but say what is skipped
            print(
                f"note: {m.name} has settings this version does not know "
                f"({', '.join(m.spec.unknown_keys)}); they are ignored (upgrade napari-labelfree "
                "to use them)"
            )
    for b in scan.broken:
        print(f"broken: {b.name}: {b.reason}")
    return 0
