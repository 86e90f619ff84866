"""bioimage.io model packages (spec 0.5): shared facts, and importing a package as a bundle.

Import reads only data: the YAML (checked by ``bioimageio.spec``, file hashes included) and the
state dict with ``torch.load(weights_only=True)``. A torchscript file is a program (loading it
runs its code), so a package with torchscript weights alone is refused. Export is in
:mod:`.bioimageio_export`.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ModelSpec, Normalization
from ..errors import LabelFreeError
from ..structures import colormap_for
from .safe_load import check_state_dict, sha256, torch_load_data

if TYPE_CHECKING:
    from ..bundle import ModelBundle

PAPER_DOI = "10.1038/s41592-018-0111-2"
PAPER = (
    "Ounkomol C, Seshamani S, Maleckar MM, Collman F, Johnson GR. Label-free prediction of "
    "three-dimensional fluorescence images from transmitted-light microscopy. Nature Methods "
    "15, 917-920 (2018)."
)
LICENSE = "BSD-3-Clause"
CONFIG_KEY = "napari-labelfree"  # our block in the package's config: the full ModelSpec
EPS = 1e-6  # bioimage.io's (x - mean) / (std + eps); z-scoring here has no eps (std >> 1e-6)
ARCH_FILE = "unet.py"
ARCH_CALLABLE = "unet3d"


_UNITS_UM = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3}


def bioimageio_spec():
    try:
        import bioimageio.spec as spec
    except ImportError:
        raise LabelFreeError(
            "bioimage.io packages need the bioimageio.spec package: install "
            "napari-labelfree[bioimageio]"
        ) from None
    import pydantic

    # bioimageio.spec before 0.5.14 fails inside pydantic 2.14 (a ValidationError on every
    # package), and bioimageio.core 0.11.0 pins spec 0.5.12.0: that pair needs pydantic < 2.14
    if _release(spec.__version__) < (0, 5, 14) and _release(pydantic.VERSION) >= (2, 14):
        raise LabelFreeError(
            f"bioimageio.spec {spec.__version__} does not work with pydantic {pydantic.VERSION}: "
            "install 'pydantic<2.14' (as bioimageio.core 0.11.0 needs) or 'bioimageio.spec>=0.5.14'"
        )
    return spec


def _release(version: str) -> tuple[int, ...]:
    """(0, 5, 12) for "0.5.12.0": the first three numbers of a version."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def read_package(path: str | Path) -> tuple[ModelSpec, dict[str, Any]]:
    """The spec and state dict of a bioimage.io package of this package's 3D U-Net.

    Checked by ``bioimageio.spec`` (file hashes included); the state dict is read with
    ``torch.load(weights_only=True)``; nothing from the package is executed.
    """
    from bioimageio.spec.model import v0_5 as bm

    path = Path(path).expanduser()
    if not path.exists():
        raise LabelFreeError(f"{path} does not exist; check the path")
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise LabelFreeError(f"{path} is not a zip file; give a bioimage.io model package (.zip)")
    spec_lib = bioimageio_spec()
    weights_member = _check_rdf(path)
    try:
        descr = spec_lib.load_description(path, perform_io_checks=True, format_version="latest")
    except (ValueError, OSError, KeyError) as e:  # no rdf.yaml, unreadable members
        first = " ".join(str(e).split()).split(". ")[0]
        raise LabelFreeError(
            f"{path} is not a bioimage.io model package ({first}); give a package exported by "
            "napari-labelfree"
        ) from None
    if not isinstance(descr, bm.ModelDescr):
        errors = "; ".join(f"{e.loc}: {e.msg}" for e in descr.validation_summary.errors[:3])
        raise LabelFreeError(
            f"{path} is not a valid bioimage.io model package (spec 0.5){': ' + errors if errors else ''}"
        )
    weights = descr.weights.pytorch_state_dict
    if weights is None:
        if descr.weights.torchscript is not None:
            raise LabelFreeError(
                f"{path} has TorchScript weights only: loading TorchScript runs the program "
                "stored in the file, and napari-labelfree loads model files as data only. Ask for "
                "the package with pytorch_state_dict weights"
            )
        raise LabelFreeError(f"{path} has no PyTorch weights; only PyTorch models can be imported")
    arch = _package_architecture(weights, path)
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise LabelFreeError(f"{path}: the model must have one input and one output")
    flat = arch.name == "unet2d"
    voxel = _voxel_size(descr.inputs[0], path, flat)
    _check_preprocessing(descr.inputs[0], path, flat)
    with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory() as tmp:
        # the member rdf.yaml names, checked to lie inside the package (_check_rdf): the bytes
        # hashed are the bytes loaded
        extracted = Path(z.extract(weights_member or "", tmp))
        if weights.sha256 is not None and sha256(extracted) != str(weights.sha256):
            raise LabelFreeError(
                f"{path}: its weights file {weights_member} does not match the sha256 in rdf.yaml; "
                "the package is damaged or was altered"
            )
        state = check_state_dict(torch_load_data(extracted), arch, path)
    ours = (descr.config.model_extra or {}).get(CONFIG_KEY) or {}
    saved = ModelSpec.from_dict(ours["spec"]) if isinstance(ours.get("spec"), dict) else None
    structure = saved.structure if saved else str(descr.outputs[0].id)
    spec = ModelSpec(
        structure=structure,
        display_name=saved.display_name if saved else descr.name,
        colormap=saved.colormap if saved else colormap_for(structure),
        target=saved.target if saved else "",
        modality=saved.modality if saved else "bright-field",
        voxel_size_um=voxel,
        normalization=Normalization(scope="per-image"),
        architecture=arch,
        provenance={
            **(saved.provenance if saved else {}),
            "imported_from": f"bioimage.io package {descr.name!r}",
            "package": str(path.resolve()),
            "package_sha256": sha256(path),
        },
        metrics=saved.metrics if saved else {},
    )
    return spec, state


def _check_rdf(path: Path) -> str | None:
    """Read a package's rdf.yaml as plain data and check the files it names are in the package.

    Returns the zip member holding the PyTorch weights (None when rdf.yaml names none; the
    validation that follows says what is wrong). bioimage.io's loader would report malformed
    YAML or a ``!!python/...`` tag as a traceback, and would resolve a weights path such as
    ``../../x.pt`` or ``/x.pt`` outside the package: loaded bytes other than those hashed.
    """
    import yaml

    with zipfile.ZipFile(path) as z:
        members = set(z.namelist())
        rdf_name = next((n for n in ("rdf.yaml", "bioimageio.yaml") if n in members), None)
        if rdf_name is None:
            return None  # bioimage.io's loader says what is missing
        text = z.read(rdf_name)
    try:
        rdf = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if isinstance(e, yaml.constructor.ConstructorError):
            raise LabelFreeError(
                f"{path}: its {rdf_name} holds a tag that is not plain data{where} ({problem}); "
                "refused, nothing in it was run"
            ) from None
        raise LabelFreeError(
            f"{path}: its {rdf_name} is not valid YAML{where}: {problem}"
        ) from None
    if not isinstance(rdf, dict):
        raise LabelFreeError(f"{path}: its {rdf_name} is not a bioimage.io description")
    for key, source in _sources(rdf):
        if "://" in source and not key.startswith("weights."):
            continue  # a web address bioimage.io's loader fetches (or refuses)
        if "://" in source or not _inside_package(source):
            raise LabelFreeError(
                f"{path}: its {rdf_name} points {key} outside the package ({source}); only files "
                "inside the package, checked against their sha256, are loaded"
            )
        if source not in members:
            raise LabelFreeError(
                f"{path} lacks the file {source} that its {rdf_name} names ({key}); the package "
                "is incomplete: export it again"
            )
    weights = (rdf.get("weights") or {}).get("pytorch_state_dict")
    source = weights.get("source") if isinstance(weights, dict) else None
    return str(source) if isinstance(source, str) else None


def _sources(node: Any, key: str = "") -> list[tuple[str, str]]:
    """Every ``source`` string of a description, with where it is (``weights.x.source``)."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{key}.{k}" if key else str(k)
            if k == "source" and isinstance(v, str):
                found.append((here, v))
            else:
                found += _sources(v, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _sources(v, f"{key}[{i}]")
    return found


def _inside_package(source: str) -> bool:
    from pathlib import PurePosixPath, PureWindowsPath

    posix = PurePosixPath(source)
    return not (
        posix.is_absolute()
        or PureWindowsPath(source).drive
        or ".." in posix.parts
        or "\\" in source
    )


def _package_architecture(weights, path: Path):
    from bioimageio.spec.model import v0_5 as bm

    from ..config import Architecture

    a = weights.architecture
    keys = {"depth", "width", "in_channels", "out_channels", "name"}
    if (
        not isinstance(a, bm.ArchitectureFromFileDescr)
        or str(a.callable) != ARCH_CALLABLE
        or not set(a.kwargs) <= keys
    ):
        raise LabelFreeError(
            f"{path}: its network ({a.callable}) is not napari-labelfree's 3D U-Net; only "
            "packages exported by napari-labelfree (or with the same network) can be imported"
        )
    try:
        kwargs = {k: v if k == "name" else int(v) for k, v in a.kwargs.items()}
        if kwargs.get("name", "unet3d") not in ("unet3d", "unet2d"):
            raise ValueError(kwargs["name"])
        return Architecture(**kwargs)
    except (TypeError, ValueError, LabelFreeError):
        raise LabelFreeError(f"{path}: unreadable network settings {a.kwargs}") from None


def _voxel_size(tensor, path: Path, flat: bool = False) -> tuple[float, float, float]:
    """Z, Y, X in um from the input's axes (a 2D network's: y, x; its Z is Y, never used)."""
    axes = {str(ax.id): ax for ax in tensor.axes}
    want = ["y", "x"] if flat else ["z", "y", "x"]
    if [str(ax.id) for ax in tensor.axes if str(ax.id) in ("z", "y", "x")] != want:
        raise LabelFreeError(
            f"{path}: the input must be a {'2D y, x' if flat else '3D z, y, x'} image"
        )
    sizes = []
    for name in want:
        unit = getattr(axes[name], "unit", None)
        if str(unit) not in _UNITS_UM:
            raise LabelFreeError(
                f"{path}: axis {name} has no length unit ({unit}); the voxel size is unknown"
            )
        sizes.append(float(axes[name].scale) * _UNITS_UM[str(unit)])
    if flat:
        sizes.insert(0, sizes[0])
    return tuple(sizes)  # type: ignore[return-value]


def _check_preprocessing(tensor, path: Path, flat: bool = False) -> None:
    """Only z-scoring over the whole image (what prediction here does) is accepted."""
    steps = [p for p in tensor.preprocessing if p.id != "ensure_dtype"]
    ok = len(steps) == 1 and steps[0].id == "zero_mean_unit_variance"
    if ok:
        axes = steps[0].kwargs.axes
        ok = axes is None or ({"y", "x"} if flat else {"z", "y", "x"}) <= {str(a) for a in axes}
    if not ok:
        raise LabelFreeError(
            f"{path}: its preprocessing ({', '.join(p.id for p in steps) or 'none'}) is not a "
            "z-score over the whole image, which is the only normalization that can be imported"
        )


def import_package(
    path: str | Path,
    out_dir: str | Path,
    structure: str | None = None,
    colormap: str | None = None,
    overwrite: bool = False,
) -> ModelBundle:
    """Write a bioimage.io package of this package's 3D U-Net as a bundle in ``out_dir``."""
    from ..bundle import open_bundle, save_bundle

    spec, state = read_package(path)
    if structure:
        spec.structure = spec.display_name = structure
        spec.colormap = colormap_for(structure, spec.colormap)
    if colormap:
        spec.colormap = colormap
    save_bundle(out_dir, spec, state, overwrite=overwrite)
    return open_bundle(out_dir)
