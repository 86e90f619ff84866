"""Checkpoints and the bundle beside them: atomic files that never execute code when read.

``checkpoint.safetensors`` holds the weights, optimizer state and random states as tensors, and
the rest (iteration, optimizer hyper-parameters, numpy / python random states, settings) as JSON in
the file's metadata. One file, written to a temporary name and renamed, so it is never
half-written; reading it never executes code (no pickle).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..bundle import CONFIG_NAME, WEIGHTS_NAME, save_bundle
from ..config import ModelSpec
from ..errors import LabelFreeError
from ..files import atomic_file, native_write_errors, temp_dir_beside, write_error
from .throughput import optimizer_kind, set_optimizer_kind

CHECKPOINT_NAME = "checkpoint.safetensors"
_META_KEY = "napari_labelfree_checkpoint"
# what restore_checkpoint needs from the metadata (the rest has defaults)
_REQUIRED_META = frozenset({"iteration", "param_groups", "rng_patches", "rng_numpy", "rng_python"})


def write_bundle_files(out_dir: Path, spec: ModelSpec, state_dict: dict[str, torch.Tensor]) -> None:
    """Write config.json and weights.safetensors into ``out_dir`` beside the checkpoint and the log.

    ``bundle.save_bundle`` replaces a whole folder, which would delete the checkpoint and the log,
    so it writes the bundle into a hidden temporary folder inside ``out_dir``, and its two files are
    then renamed into place one by one: weights first, so that a config.json on disk always has
    weights beside it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out_dir / "bundle")
    try:
        written = save_bundle(tmp / "bundle", spec, state_dict)
        os.replace(written / WEIGHTS_NAME, out_dir / WEIGHTS_NAME)
        os.replace(written / CONFIG_NAME, out_dir / CONFIG_NAME)
    except OSError as e:
        raise write_error(out_dir, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def json_safe(value: Any) -> Any:
    """``value`` with numpy and torch scalars and arrays turned into plain JSON types."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def save_checkpoint(
    path: Path,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    iteration: int,
    patch_rng: np.random.Generator,
    extra: dict[str, Any],
) -> None:
    """Everything needed to continue exactly, in one safetensors file (tensors + JSON metadata)."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in net.state_dict().items()}
    opt_sd = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for pid, state in opt_sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                opt_scalars.setdefault(str(pid), {})[name] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "iteration": int(iteration),
        "param_groups": opt_sd["param_groups"],
        "optimizer_scalars": opt_scalars,
        "scaler": scaler.state_dict(),
        "rng_patches": patch_rng.bit_generator.state,
        "rng_numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
        **extra,
    }
    with atomic_file(path) as tmp, native_write_errors(tmp):
        save_file(
            {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"format": "pt", _META_KEY: json.dumps(json_safe(meta))},
        )


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and JSON metadata of a checkpoint; reading executes no code."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta_text = (f.metadata() or {}).get(_META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError) as e:
        raise LabelFreeError(
            f"cannot read the checkpoint {path} ({e}); it is corrupt, start afresh"
        ) from e
    if meta_text is None:
        raise LabelFreeError(f"{path} is not a napari-labelfree training checkpoint")
    try:
        meta = json.loads(meta_text)
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or not _REQUIRED_META.issubset(meta):
        raise LabelFreeError(
            f"the checkpoint {path} has unreadable training metadata; it is damaged or from "
            "another program: start afresh in a new folder"
        )
    return tensors, meta


def load_checkpoint_weights(tensors: dict[str, torch.Tensor], net: torch.nn.Module) -> None:
    """Load only a checkpoint's network weights into ``net``."""
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        net.load_state_dict(model_sd)
    except RuntimeError as e:
        raise LabelFreeError(
            "the checkpoint's network does not match this model's architecture; resume with the same "
            f"network depth and width, or train into a new folder ({str(e).splitlines()[0]})"
        ) from e


def restore_checkpoint(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    patch_rng: np.random.Generator,
    device: torch.device,
) -> int:
    """Load a checkpoint's weights, optimizer, scaler and random states; return its iteration."""
    load_checkpoint_weights(tensors, net)
    try:
        return _restore_state(tensors, meta, optimizer, scaler, patch_rng)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise LabelFreeError(
            f"the checkpoint's training state is incomplete or damaged ({type(e).__name__}: {e}); "
            "start afresh in a new folder"
        ) from e
    finally:
        net.to(device)


def _restore_state(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, patch_rng: np.random.Generator,
) -> int:  # fmt: skip
    kind = optimizer_kind(optimizer)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, scalars in meta.get("optimizer_scalars", {}).items():
        state.setdefault(int(pid), {}).update(scalars)
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    # fused or not is this machine's choice, not the checkpoint's (it may come from another device)
    set_optimizer_kind(optimizer, kind)
    if meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    patch_rng.bit_generator.state = meta["rng_patches"]
    n = meta["rng_numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    p = meta["rng_python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    return int(meta["iteration"])
