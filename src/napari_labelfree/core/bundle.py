"""Model bundles: a folder with config.json (what the model is) and weights.safetensors.

Loading never executes code: the config is JSON and the weights are safetensors. Models are
discovered in the package's built-in folder, a per-user folder and the folders listed in the
NAPARI_LABELFREE_MODELS environment variable. This module never imports torch (discovery, model
lists and `labelfree models` stay quick); the weights are read and written by :mod:`.weights`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ModelSpec
from .errors import LabelFreeError
from .files import (
    atomic_file,
    give_usual_permissions,
    make_parent,
    native_write_errors,
    temp_dir_beside,
    write_error,
)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
ENV_VAR = "NAPARI_LABELFREE_MODELS"
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class ModelBundle:
    """A model folder found on disk: its spec and where it lives."""

    path: Path
    spec: ModelSpec
    source: str = "path"  # "builtin", "user", "env" or "path"

    @property
    def name(self) -> str:
        return self.path.name


def user_models_dir() -> Path:
    """Per-user folder where trained models are saved and found."""
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-labelfree", appauthor=False)) / "models"


def model_search_paths() -> list[tuple[Path, str]]:
    """Folders searched for models, in priority order, with where each comes from."""
    paths: list[tuple[Path, str]] = []
    for entry in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if entry.strip():
            paths.append((Path(entry).expanduser(), "env"))
    paths.append((user_models_dir(), "user"))
    paths.append((BUILTIN_DIR, "builtin"))
    return paths


def is_bundle(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def read_spec(folder: str | Path) -> ModelSpec:
    """The spec in ``folder``'s config.json; every problem is a LabelFreeError naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelFreeError(
            f"model folder {folder} does not exist; give a model folder or a model name"
        )
    if not is_bundle(folder):
        raise LabelFreeError(
            f"{folder} is not a model: it needs {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(make one with `labelfree init-model` or `labelfree train`)"
        )
    try:
        text = (folder / CONFIG_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise LabelFreeError(
            f"cannot read the model config {folder / CONFIG_NAME}: {why}"
        ) from None
    try:
        return ModelSpec.from_json(text)
    except LabelFreeError as e:
        raise LabelFreeError(f"model {folder}: {e}", field=e.fields) from None


def open_bundle(folder: str | Path, source: str = "path") -> ModelBundle:
    folder = Path(folder).resolve()
    return ModelBundle(path=folder, spec=read_spec(folder), source=source)


@dataclass(frozen=True)
class BrokenModel:
    """A folder that looks like a model (it has a config or weights) but cannot be used."""

    path: Path
    source: str
    reason: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class ModelScan:
    """What discovery found: usable models, broken ones with why, search folders that are missing."""

    models: list[ModelBundle]
    broken: list[BrokenModel]
    missing: list[tuple[Path, str]]  # (folder, source) listed but absent or unreadable


def _reason(e: BaseException) -> str:
    if isinstance(e, LabelFreeError):
        return str(e)
    if isinstance(e, OSError):
        return f"{e.strerror or e}" + (f" ({e.filename})" if e.filename else "")
    return f"{e.__class__.__name__}: {e}"


def _candidates(root: Path) -> list[Path]:
    """Model folders under ``root`` (or ``root`` itself); hidden folders (temporaries) never are."""
    if (root / CONFIG_NAME).exists() or (root / WEIGHTS_NAME).exists():
        return [root]
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())


def scan_models() -> ModelScan:
    """Every model folder in the search paths: usable, broken (with the reason) and missing roots.

    One broken folder never hides the others: any failure reading it (a malformed or non-JSON
    config, missing weights, no permission, an I/O error) is recorded and the scan goes on. A name
    found twice keeps the first (highest priority).
    """
    found: dict[str, ModelBundle] = {}
    broken: dict[str, BrokenModel] = {}
    missing: list[tuple[Path, str]] = []
    for root, source in model_search_paths():
        try:
            if not root.is_dir():
                if source == "env":  # the user asked for it; the others may not exist yet
                    missing.append((root, source))
                continue
            candidates = _candidates(root)
        except OSError:
            missing.append((root, source))
            continue
        for folder in candidates:
            if folder.name in found or folder.name in broken:
                continue
            try:
                if not (folder / CONFIG_NAME).exists() and not (folder / WEIGHTS_NAME).exists():
                    continue  # some other folder, not a model
                found[folder.name] = open_bundle(folder, source)
            except Exception as e:  # anything wrong with one folder is that folder's problem
                reason = _reason(e).removeprefix(f"model {folder.resolve()}: ")
                broken[folder.name] = BrokenModel(folder, source, reason)
    return ModelScan(list(found.values()), list(broken.values()), missing)


def discover_models() -> list[ModelBundle]:
    """Every usable model in the search paths (broken ones: :func:`scan_models`)."""
    return scan_models().models


def resolve_model(name_or_path: str | Path) -> ModelBundle:
    """A bundle folder, or the name of a discovered model (folder name or structure)."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return open_bundle(p)
    scan = scan_models()
    for m in scan.models:
        if m.name == str(name_or_path):
            return m
    for m in scan.models:
        if m.spec.structure == str(name_or_path):
            return m
    for b in scan.broken:
        if b.name == str(name_or_path):
            raise LabelFreeError(
                f"model {name_or_path!r} ({b.path}) is broken: {b.reason}", field="models"
            )
    known = ", ".join(sorted(m.name for m in scan.models)) or "none"
    missing = "".join(
        f"; {ENV_VAR} lists {path}, which is missing or unreadable" for path, _ in scan.missing
    )
    raise LabelFreeError(
        f"no model folder or known model named {name_or_path!r} (known models: {known}){missing}; "
        f"give a model folder or add folders to {ENV_VAR}",
        field="models",
    )


def save_weights(path: str | Path, state_dict: dict[str, Any]) -> None:
    """Write a state dict as safetensors (no pickle: loading it never runs code)."""
    from safetensors.torch import save_file  # imports torch: only when weights are written

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with native_write_errors(Path(path)):  # a full disk: OSError, not safetensors' own error
        save_file(tensors, str(path), metadata={"format": "pt"})
    give_usual_permissions(Path(path))


def save_spec(folder: str | Path, spec: ModelSpec) -> None:
    """Rewrite a model folder's config.json with ``spec`` (e.g. a score added to its card),
    atomically: the file is never half-written, the weights are not touched."""
    with atomic_file(Path(folder) / CONFIG_NAME) as tmp:
        Path(tmp).write_text(spec.to_json(), encoding="utf-8")


def save_bundle(
    folder: str | Path,
    spec: ModelSpec,
    state_dict: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write a bundle atomically: into a temporary sibling folder, then renamed into place.

    ``state_dict`` maps parameter names to torch tensors (written as safetensors).
    """
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise LabelFreeError(
            f"{folder} already exists; choose a new folder (nothing was overwritten)"
        )
    make_parent(folder)
    tmp = temp_dir_beside(folder)
    try:
        (tmp / CONFIG_NAME).write_text(spec.to_json(), encoding="utf-8")
        save_weights(tmp / WEIGHTS_NAME, state_dict)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except OSError as e:  # a full disk, a folder turned read-only: one line
        raise write_error(folder, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def init_bundle(
    folder: str | Path, spec: ModelSpec, seed: int = 0, overwrite: bool = False
) -> ModelBundle:
    """An untrained bundle (random weights): the start of training, and handy for tests."""
    import torch

    from .unet import build_network

    torch.manual_seed(seed)
    net = build_network(spec.architecture)
    spec.provenance.setdefault("trained", False)
    save_bundle(folder, spec, net.state_dict(), overwrite=overwrite)
    return open_bundle(folder)
