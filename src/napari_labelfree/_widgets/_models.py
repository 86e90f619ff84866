"""Models as the widgets present them: where each comes from, what it is, importing, new names.

No Qt here. The importers are the core's (``core.interop``); this module only picks the folder
they write into (the per-user model folder, under a name no other model has).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core import bundle as bundles
from ..core.bundle import ModelBundle
from ..core.model_card import card_lines
from ..core.structures import find_structure
from ..core.voxel_size import format_voxel_size

#: How the model list names where a model comes from (``ModelBundle.source``).
ORIGIN = {"builtin": "built-in", "user": "user", "env": "env", "path": "added"}


def display_name(bundle: ModelBundle) -> str:
    """A model's name for people: its own display name, else the structure table's ("DNA" for an
    imported "dna"), else its structure."""
    spec = bundle.spec
    if spec.display_name and spec.display_name != spec.structure:
        return spec.display_name
    known = find_structure(spec.structure)  # a plain structure name (the default display name)
    return known.display_name if known else spec.structure


def model_label(bundle: ModelBundle) -> str:
    """One line of the model list: display name, folder when it differs, where it comes from."""
    spec = bundle.spec
    name = display_name(bundle)
    folder = "" if bundle.name in (spec.structure, name) else f" [{bundle.name}]"
    usual = spec.kind == "unet3d" and not spec.ensemble and not spec.target_projection
    kind = "" if usual else f", {spec.kind_label}"  # 2D, 2.5D, a projection said; 3D is usual
    return f"{name}{folder} ({ORIGIN.get(bundle.source, bundle.source)}{kind})"


def _fmt_vox(vox: Any) -> str:
    return format_voxel_size(vox)  # rounded: an imported 0.290003 reads 0.29


def trust_line(spec: Any) -> str:
    """What the model details say about its out-of-distribution check (core.trust)."""
    from ..core.trust.ood import has_statistics

    if has_statistics(spec):
        return (
            "training-image statistics stored: Predict warns when an image is unlike them "
            "(no warning is no proof the prediction is right)"
        )
    return "no training-image statistics: Predict cannot check an image against its training data"


def describe_model(bundle: ModelBundle) -> str:
    """What a model is, in a few lines: structure, voxel size, normalization, scores, notes."""
    spec, prov = bundle.spec, bundle.spec.provenance
    norm = spec.normalization
    lines = [
        f"{display_name(bundle)}: predicts {spec.structure}"
        + (f" ({spec.target})" if spec.target else "")
        + f" from {spec.modality}",
        f"voxel size {_fmt_vox(spec.voxel_size_um)} um (Z, Y, X); images are resampled to it",
        f"normalization: {norm.method} {norm.scope}"
        + (f" ({norm.center_slices} centre slices)" if "center" in norm.scope else ""),
        f"{spec.kind_label} U-Net depth {spec.architecture.depth}, width {spec.architecture.width}",
    ]
    # what it learned from and which score came from which data (core.model_card, as the CLI)
    lines += card_lines(spec)
    if prov.get("note"):
        lines.append(f"note: {prov['note']}")
    if prov.get("imported_from"):
        lines.append(f"imported from {prov['imported_from']}")
    if prov.get("interrupted"):
        lines.append("training was stopped early")
    if not prov.get("trained", True):
        lines.append("untrained (random weights)")
    lines.append(trust_line(spec))  # whether an image can be checked against its training data
    lines.append(f"{ORIGIN.get(bundle.source, bundle.source)} model in {bundle.path}")
    return "\n".join(lines)


def taken_names() -> set[str]:
    """Names of every discovered model (folder names and structures)."""
    names: set[str] = set()
    for b in bundles.discover_models():
        names.update((b.name, b.spec.structure))
    return names


def unique_model_folder(parent: Path, name: str) -> Path:
    """``parent/name``, or ``name-2``, ``-3``...: the first folder that neither exists nor would
    shadow a discovered model (a user model named like a built-in one would hide it)."""
    name = name.strip() or "model"
    taken = taken_names() if parent.resolve() == bundles.user_models_dir().resolve() else set()
    candidate, k = parent / name, 2
    while candidate.exists() or candidate.name in taken:
        candidate, k = parent / f"{name}-{k}", k + 1
    return candidate


def import_model(
    path: str | Path,
    structure: str | None = None,
    data_voxel_size: tuple[float, float, float] | None = None,
) -> tuple[ModelBundle, str | None]:
    """Import a pytorch_fnet model (folder or model.p) or a bioimage.io package (.zip) into the
    per-user model folder; returns the new bundle and a warning (an assumed voxel size) or None.

    Runs in a worker thread (it reads weights with torch).
    """
    import shutil
    import tempfile

    from ..core.bundle import open_bundle

    path = Path(path).expanduser()
    parent = bundles.user_models_dir()
    parent.mkdir(parents=True, exist_ok=True)
    # written under a temporary name first: the final name depends on the structure it holds
    with tempfile.TemporaryDirectory(prefix=".importing-", dir=parent) as tmp:
        staged = Path(tmp) / "model"
        warning = None
        if path.suffix.lower() == ".zip":
            from ..core.interop.bioimageio import import_package

            bundle = import_package(path, staged, structure=structure)
        else:
            from ..core.interop.fnet import import_fnet

            bundle, warning = import_fnet(
                path, staged, structure=structure, data_voxel_size=data_voxel_size
            )
        out = unique_model_folder(parent, structure or bundle.spec.structure)
        shutil.move(str(staged), str(out))
    return open_bundle(out, "user"), warning
