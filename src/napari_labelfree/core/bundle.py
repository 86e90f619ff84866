"""Model bundles: a folder with config.json (what the model is) and weights.safetensors.

Loading never executes code: the config is JSON and the weights are safetensors. Models are
discovered in the package's built-in folder, a per-user folder and the folders listed in the
NAPARI_LABELFREE_MODELS environment variable.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelSpec
from .errors import LabelFreeError
from .files import give_usual_permissions, temp_dir_beside
from .unet import UNet3D, build_network

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
    return ModelSpec.from_json((folder / CONFIG_NAME).read_text(encoding="utf-8"))


def open_bundle(folder: str | Path, source: str = "path") -> ModelBundle:
    folder = Path(folder).resolve()
    return ModelBundle(path=folder, spec=read_spec(folder), source=source)


def discover_models() -> list[ModelBundle]:
    """Every readable model in the search paths; a name found twice keeps the first (highest priority)."""
    found: dict[str, ModelBundle] = {}
    for root, source in model_search_paths():
        if not root.is_dir():
            continue
        candidates = [root] if is_bundle(root) else sorted(p for p in root.iterdir() if p.is_dir())
        for folder in candidates:
            if not is_bundle(folder) or folder.name in found:
                continue
            try:
                found[folder.name] = open_bundle(folder, source)
            except LabelFreeError:
                continue  # a broken model must not hide the others; `labelfree models` reports it
    return list(found.values())


def resolve_model(name_or_path: str | Path) -> ModelBundle:
    """A bundle folder, or the name of a discovered model (folder name or structure)."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return open_bundle(p)
    models = discover_models()
    for m in models:
        if m.name == str(name_or_path):
            return m
    for m in models:
        if m.spec.structure == str(name_or_path):
            return m
    known = ", ".join(sorted(m.name for m in models)) or "none"
    raise LabelFreeError(
        f"no model folder or known model named {name_or_path!r} (known models: {known}); "
        f"give a model folder or add folders to {ENV_VAR}"
    )


def save_bundle(
    folder: str | Path,
    spec: ModelSpec,
    state_dict: dict[str, torch.Tensor],
    overwrite: bool = False,
) -> Path:
    """Write a bundle atomically: into a temporary sibling folder, then renamed into place."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise LabelFreeError(
            f"{folder} already exists; choose a new folder (nothing was overwritten)"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(folder)
    try:
        (tmp / CONFIG_NAME).write_text(spec.to_json(), encoding="utf-8")
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        give_usual_permissions(tmp / WEIGHTS_NAME)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_network(bundle: ModelBundle) -> UNet3D:
    """The bundle's network in eval mode on the CPU (cached; refreshed when the weights change)."""
    weights = bundle.path / WEIGHTS_NAME
    stamp = weights.stat().st_mtime_ns
    return _load_network_cached(str(bundle.path), stamp)


@functools.lru_cache(maxsize=16)
def _load_network_cached(folder: str, stamp: int) -> UNet3D:
    spec = read_spec(folder)
    # built without memory or random init (the weights replace them): 0.1 s less per model
    with torch.device("meta"):
        net = build_network(spec.architecture)
    try:
        state = load_file(str(Path(folder) / WEIGHTS_NAME), device="cpu")
    except (SafetensorError, OSError) as e:
        raise LabelFreeError(
            f"cannot read the weights of {folder} ({e}); the file is corrupt, re-export it"
        ) from e
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            s
            for s in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
                f"wrong shape {wrong[:3]}" if wrong else "",
            )
            if s
        )
        raise LabelFreeError(
            f"the weights in {folder} do not fit its config.json architecture "
            f"(depth {spec.architecture.depth}, width {spec.architecture.width}): {detail}. "
            "Fix config.json or re-export the model"
        )
    net.load_state_dict(state, assign=True)
    net.eval()
    return net


def init_bundle(
    folder: str | Path, spec: ModelSpec, seed: int = 0, overwrite: bool = False
) -> ModelBundle:
    """An untrained bundle (random weights): the start of training, and handy for tests."""
    torch.manual_seed(seed)
    net = build_network(spec.architecture)
    spec.provenance.setdefault("trained", False)
    save_bundle(folder, spec, net.state_dict(), overwrite=overwrite)
    return open_bundle(folder)
