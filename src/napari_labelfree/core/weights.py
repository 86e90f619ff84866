"""Model weights: reading safetensors into networks, and the one cache of loaded networks.

Kept apart from :mod:`.bundle` (finding, describing and writing model folders) so discovery,
`labelfree models` and the widgets' model lists never import torch; this module does, and builds
on :mod:`.bundle` (never the other way round).

One cache serves every caller. It is keyed by the weights file (path, modification time and size):
a retrained or replaced model is read again. Each entry holds the network as loaded (CPU, fp32,
eval mode), its copies on other devices, and its inference twins (:mod:`.optimize`) per device and
dtype.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .bundle import WEIGHTS_NAME, ModelBundle, read_spec
from .ensemble_net import build_model, inference_twin
from .errors import LabelFreeError
from .unet import UNet3D

if TYPE_CHECKING:
    from .config import ModelSpec

_MAX_FILES = 8


def read_network(folder: str | Path, spec: ModelSpec) -> UNet3D:
    """Build ``spec``'s network and load ``folder``'s weights into it (CPU, eval mode, uncached).

    An ensemble's (``spec.ensemble``) is an :class:`~.ensemble_net.EnsembleNet` of its members.
    """
    folder = Path(folder)
    # built without memory or random init (the weights replace them): 0.1 s less per model
    with torch.device("meta"):
        net = build_model(spec)
    try:
        state = load_file(str(folder / WEIGHTS_NAME), device="cpu")
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
    return net.eval()


def _version_stamp(net: nn.Module) -> tuple:
    # in-place edits (load_state_dict, copy_, an optimizer step) bump a tensor's version counter,
    # so a twin built before such an edit is rebuilt; one tuple per tensor, no arithmetic
    return tuple((t.data_ptr(), t._version) for t in net.state_dict().values())


@dataclass
class _Entry:
    net: UNet3D  # as loaded: CPU, fp32, eval mode
    on_device: dict[str, nn.Module] = field(default_factory=dict)
    twins: dict[tuple[str, torch.dtype], tuple[tuple, nn.Module]] = field(default_factory=dict)


_CACHE: OrderedDict[tuple[str, int, int], _Entry] = OrderedDict()


def _entry(bundle: ModelBundle) -> _Entry:
    weights = bundle.path / WEIGHTS_NAME
    try:
        st = weights.stat()
    except OSError as e:
        raise LabelFreeError(f"cannot read the weights of {bundle.path} ({e})") from e
    key = (str(weights), st.st_mtime_ns, st.st_size)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    # the config is read again: it may have changed with the weights
    entry = _Entry(read_network(bundle.path, read_spec(bundle.path)))
    for old in [k for k in _CACHE if k[0] == key[0]]:
        del _CACHE[old]  # an older version of this file: never asked for again
    _CACHE[key] = entry
    while len(_CACHE) > _MAX_FILES:
        _CACHE.popitem(last=False)
    return entry


def load_network(bundle: ModelBundle) -> UNet3D:
    """The bundle's network in eval mode on the CPU (cached; read again when the weights change)."""
    return _entry(bundle).net


def network_on_device(bundle: ModelBundle, device: torch.device | str) -> nn.Module:
    """The bundle's network in eval mode on ``device`` (on the CPU: the :func:`load_network` one)."""
    entry = _entry(bundle)
    dev = torch.device(device)
    if dev.type == "cpu":
        return entry.net
    if str(dev) not in entry.on_device:
        entry.on_device[str(dev)] = copy.deepcopy(entry.net).to(dev).eval()
    return entry.on_device[str(dev)]


def inference_network(
    bundle: ModelBundle, device: torch.device | str, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """The network prediction runs: BatchNorm folded and lean (:mod:`.optimize`), in ``dtype``.

    Built from the CPU network of :func:`load_network` and cached per (weights file, device,
    dtype); rebuilt when that network is changed in place. Hooks on that network fire on this one.
    """
    entry = _entry(bundle)
    dev = torch.device(device)
    stamp = _version_stamp(entry.net)
    hit = entry.twins.get((str(dev), dtype))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    twin = inference_twin(entry.net, dev)  # an ensemble: each member's twin
    if dtype != torch.float32:
        twin.to_precision(dtype)
    entry.twins[(str(dev), dtype)] = (stamp, twin)
    return twin


def clear_cache() -> None:
    """Forget every loaded network (frees their memory; the next use reads the files again)."""
    _CACHE.clear()
