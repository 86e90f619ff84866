"""Reading torch pickles without running code in them, and hashing the files imported."""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LabelFreeError

if TYPE_CHECKING:
    from ..config import Architecture


def torch_load_data(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, dicts, lists, strings and numbers only.

    A file whose pickle names any other class or function would run that code when loaded
    (a model file can carry a program); it is refused with the reason, never executed.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except IsADirectoryError:
        raise LabelFreeError(f"{path} is a folder, not a model file") from None
    except Exception as e:  # a pickle reader raises many types (KeyError, IndexError...) on junk
        found = re.search(r"Unsupported (?:global|operand)[^\n.]*", str(e))
        if isinstance(e, pickle.UnpicklingError) and found:
            raise LabelFreeError(
                f"{path} cannot be read without running code stored in it "
                f"({found.group(0).strip()}): model files are read as data only (tensors, "
                "numbers, text), so it was not loaded. Save the network's state_dict (a dict of "
                "tensors) from the software that made it and import that"
            ) from None
        first = str(e).splitlines()[0] if str(e) else ""
        why = f"{type(e).__name__}: {first}" if first else type(e).__name__
        if "Weights only load failed" in first:
            why = "not a pickle torch can read"
        raise LabelFreeError(
            f"{path} is not a readable torch file ({why}); it may be truncated or of another kind"
        ) from None


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (recorded so an imported model can be traced to its source)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_state_dict(state: Any, arch: Architecture, source: Path) -> dict[str, Any]:
    """``state`` if it is exactly UNet3D(arch)'s state dict (names and shapes), else refused."""
    import torch

    from ..unet import build_network

    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LabelFreeError(f"{source}: the weights are not a state dict (names -> tensors)")
    with torch.device("meta"):
        expected = build_network(arch).state_dict()
    unknown = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    broken = sorted(
        k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())
    )
    if broken and not (unknown or missing or wrong):
        raise LabelFreeError(
            f"{source}: the weights hold NaN or infinite values ({', '.join(broken[:3])}"
            f"{', ...' if len(broken) > 3 else ''}); the model is broken (training diverged?) "
            "and cannot be imported"
        )
    if unknown or missing or wrong:
        detail = "; ".join(
            f"{what} {names[:3]}"
            for what, names in (("unknown", unknown), ("missing", missing), ("wrong shape", wrong))
            if names
        )
        raise LabelFreeError(
            f"{source}: the weights are not those of napari-labelfree's 3D U-Net (depth "
            f"{arch.depth}, width {arch.width}): {detail}; this network cannot be imported"
        )
    return state
