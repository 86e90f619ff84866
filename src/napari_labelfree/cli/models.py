"""`labelfree models`: list the models found, and where."""

from __future__ import annotations

import argparse

from ..core.bundle import ENV_VAR, discover_models, model_search_paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list available models",
        description=f"List models in the built-in folder, the user folder and {ENV_VAR}.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    models = discover_models()
    if not models:
        print("no models found; searched:")
        for path, source in model_search_paths():
            print(f"  {source:8s} {path}")
        print("make one with `labelfree train` or `labelfree init-model`")
        return 0
    rows = [("NAME", "STRUCTURE", "VOXEL SIZE (um, Z,Y,X)", "SOURCE", "PATH")]
    for m in models:
        vox = ",".join(f"{v:g}" for v in m.spec.voxel_size_um)
        rows.append((m.name, m.spec.structure, vox, m.source, str(m.path)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return 0
