"""`labelfree models`: list the models found, what each was trained on, and where; broken ones
with the reason. `labelfree models NAME...` prints each model's card (core.model_card)."""

from __future__ import annotations

import argparse
import sys

from ..core.bundle import ENV_VAR, model_search_paths, scan_models


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list available models",
        description=f"List models in the built-in folder, the user folder and {ENV_VAR}, with "
        "what each was trained on (simulated or real data); model folders that cannot be used are "
        "listed as broken, with the reason. With NAMEs: each model's card (its training data and "
        "which score came from which data).",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="show these models' cards")
    p.set_defaults(func=run)


def show_cards(names: list[str]) -> int:
    """Print the card of each named model (a name from the list or a model folder)."""
    from ..core.bundle import resolve_model
    from ..core.model_card import card_lines

    for i, name in enumerate(names):
        bundle = resolve_model(name)
        spec = bundle.spec
        if i:
            print()
        print(f"{bundle.name} ({bundle.source}): predicts {spec.structure} from {spec.modality}")
        for line in card_lines(spec):
            print(f"  {line}")
        print(f"  folder: {bundle.path}")
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "names", None):
        return show_cards(args.names)
    from ..core.model_card import model_card

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
    rows = [("NAME", "STRUCTURE", "KIND", "VOXEL SIZE (um, Z,Y,X)", "SOURCE", "TRAINED ON", "PATH")]
    simulated_only = []
    for m in scan.models:
        vox = ",".join(f"{v:g}" for v in m.spec.voxel_size_um)
        card = model_card(m.spec)
        if card.warning:
            simulated_only.append(m.name)
        kind = m.spec.kind_label  # 3D, 2D, 2.5D (N planes[, projection])
        rows.append((m.name, m.spec.structure, kind, vox, m.source, card.trained_on, str(m.path)))
    for b in scan.broken:
        rows.append((b.name, "BROKEN", "-", "-", b.source, "-", str(b.path)))
    n = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(n)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:n], widths, strict=True)) + "  " + r[n])
    if simulated_only:
        print(
            f"note: {', '.join(simulated_only)} learned from simulated cells only; "
            "`labelfree models NAME` shows which scores came from which data"
        )
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
