"""A per-machine cache of ``torch.compile`` artifacts, so that only a machine's first run compiles.

``torch.compile`` (inductor, max-autotune) measured 97 s for the paper network on an H100, paid by
every process without a warm cache. Two caches make later processes cheap:

* PyTorch's own inductor cache (FX graphs, autotuning results, kernels) is pointed into the user
  cache folder (``platformdirs``) instead of ``/tmp``, where a reboot would wipe it;
* the "mega-cache" of ``torch.compiler.save_cache_artifacts`` / ``load_cache_artifacts`` is
  written there as one file per :func:`cache_key`: the torch version, the device's name, the model
  (a hash of its weights and their shapes), the tile shape and the dtype.

Every file starts with a header naming its key and the SHA-256 of its payload: a truncated,
corrupt or foreign file (another torch, another card, another model) is ignored with one line and
compiled afresh, never loaded and never a crash. Reading it never runs code of its own (the
payload goes only to torch's loader, which is what ``torch.compile`` itself reads).

Settings (environment, read when a prediction or training starts; all unmeasured on a GPU so
far, hence off by default): ``LABELFREE_COMPILE=1`` compiles the inference twin per tile shape;
``LABELFREE_COMPILE_CACHE=0`` keeps the cache out; ``LABELFREE_CUDA_GRAPHS=1`` captures fixed tile
shapes as CUDA graphs (:mod:`.fast_tiles`); ``LABELFREE_CUDNN_BENCHMARK=0`` skips cuDNN
autotuning; ``LABELFREE_TRAIN_COMPILE=1`` compiles the training network
(:mod:`napari_labelfree.core.train.engine`); ``LABELFREE_COMPILE_BACKEND`` picks torch.compile's
backend (default inductor; "eager" only traces, to check a model compiles).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import LabelFreeError
from ..files import atomic_file

MAGIC = b"labelfree-compile-cache 1\n"
_ENV_COMPILE = "LABELFREE_COMPILE"
_ENV_CACHE = "LABELFREE_COMPILE_CACHE"
_ENV_GRAPHS = "LABELFREE_CUDA_GRAPHS"
_ENV_FOLDER = "LABELFREE_CACHE_DIR"
_ENV_BACKEND = "LABELFREE_COMPILE_BACKEND"
_ENV_CUDNN = "LABELFREE_CUDNN_BENCHMARK"
_ENV_TRAIN_COMPILE = "LABELFREE_TRAIN_COMPILE"


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return default


@dataclass(frozen=True)
class Acceleration:
    """What the fixed-shape tile runner may use beyond eager PyTorch (see :mod:`.fast_tiles`)."""

    compile: bool = False  # torch.compile of the inference twin per tile shape
    compile_cache: bool = True  # keep compiled artifacts in the user cache folder
    cuda_graphs: bool = False  # capture each fixed tile shape as a CUDA graph
    compile_mode: str = "max-autotune-no-cudagraphs"  # the graphs are ours, when asked for
    compile_backend: str = "inductor"  # "eager" traces without compiling (checks, tests)
    cudnn_benchmark: bool = True  # autotune cuDNN per tile shape (a one-frame run may not repay it)
    train_compile: bool = False  # torch.compile of the training network (core.train.engine)

    @classmethod
    def from_env(cls) -> Acceleration:
        return cls(
            compile=_flag(_ENV_COMPILE, False),
            compile_cache=_flag(_ENV_CACHE, True),
            cuda_graphs=_flag(_ENV_GRAPHS, False),
            compile_backend=os.environ.get(_ENV_BACKEND, "").strip() or "inductor",
            cudnn_benchmark=_flag(_ENV_CUDNN, True),
            train_compile=_flag(_ENV_TRAIN_COMPILE, False),
        )


def cache_folder() -> Path:
    """The user cache folder for compiled artifacts (``LABELFREE_CACHE_DIR`` overrides it)."""
    override = os.environ.get(_ENV_FOLDER)
    if override:
        return Path(override) / "compile"
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-labelfree", appauthor=False)) / "compile"


def device_name(device: torch.device) -> str:
    """The card's (or the CPU's) name: compiled kernels are tuned for exactly this hardware."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"{device.type}:{platform.machine()}:{platform.processor() or 'unknown'}"


def model_hash(net: nn.Module) -> str:
    """SHA-256 of a network's tensors (names, shapes, dtypes, values): the model in the key."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_key(
    torch_version: str,
    device: str,
    model: str,
    tile_shape: Sequence[int],
    dtype: torch.dtype,
) -> dict[str, str]:
    """Everything a compiled artifact depends on, as the header of its file records it."""
    return {
        "torch": torch_version,
        "device": device,
        "model": model,
        "tile": "x".join(str(int(v)) for v in tile_shape),
        "dtype": str(dtype).removeprefix("torch."),
    }


def key_file(key: dict[str, str], folder: Path | None = None) -> Path:
    """The file of one key: a digest of the key, so any change of the key is another file."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return (folder or cache_folder()) / f"{digest}.bin"


# the user's own choice, read before inductor sets its /tmp default into the environment
_USER_INDUCTOR_DIR = os.environ.get("TORCHINDUCTOR_CACHE_DIR")


def point_inductor_cache(folder: Path | None = None) -> None:
    """Send inductor's own on-disk cache to the user cache folder (unless the user chose one)."""
    if _USER_INDUCTOR_DIR is None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str((folder or cache_folder()) / "inductor")


def write_artifacts(path: Path, key: dict[str, str], payload: bytes) -> None:
    """Write ``payload`` under a header naming ``key`` and its SHA-256 (temporary name, renamed)."""
    header = json.dumps({"key": key, "sha256": hashlib.sha256(payload).hexdigest()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Path(tmp).write_bytes(MAGIC + header.encode() + b"\n" + payload)


def read_artifacts(path: Path, key: dict[str, str]) -> tuple[bytes | None, str]:
    """The payload of ``path`` if its header names ``key`` and its checksum holds.

    Returns (payload, "") or (None, why): "" for a missing file, one line for a bad one.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ""
    except OSError as e:
        return None, f"cannot read {path} ({e})"
    if not data.startswith(MAGIC):
        return None, f"{path} is not a compile cache file of this version"
    header, sep, payload = data[len(MAGIC) :].partition(b"\n")
    try:
        meta = json.loads(header) if sep else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        return None, f"{path} has a damaged header"
    if meta.get("key") != key:
        return None, f"{path} was compiled for another setting ({meta.get('key')})"
    if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
        return None, f"{path} is truncated or corrupt"
    return payload, ""


def torch_saves_artifacts() -> bool:
    """Whether this torch has the artifact calls (``torch.compiler.save_cache_artifacts``, 2.7+)."""
    return all(hasattr(torch.compiler, n) for n in ("save_cache_artifacts", "load_cache_artifacts"))


class CompileCache:
    """Load a key's artifacts before compiling; save them after the first compiled run.

    ``say`` receives the one line shown when a cache file is ignored or cannot be written (or,
    once per process, that this torch is too old for the cache: before 2.7 it has no artifact
    calls). Nothing here raises: a cache that does not work only costs the compile it would have
    saved.
    """

    said_too_old = False

    def __init__(
        self,
        key: dict[str, str],
        folder: Path | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.key = key
        self.folder = folder or cache_folder()
        self.path = key_file(key, self.folder)
        self.say = say
        self.loaded = False

    def load(self) -> bool:
        """Hand the key's artifacts to torch; whether a usable file was found."""
        point_inductor_cache(self.folder)
        if not torch_saves_artifacts():
            if not CompileCache.said_too_old:  # once per process, not per tile shape
                CompileCache.said_too_old = True
                self.say(
                    f"compile cache off: it needs torch 2.7 or newer (this is {torch.__version__});"
                    " each process compiles afresh"
                )
            return False
        payload, why = read_artifacts(self.path, self.key)
        if payload is None:
            if why:
                self.say(f"compile cache ignored: {why}; compiling afresh")
            return False
        try:
            torch.compiler.load_cache_artifacts(payload)
        except Exception as e:  # noqa: BLE001 - any failure of torch's loader: compile afresh
            self.say(
                f"compile cache ignored: torch could not load {self.path} ({e}); compiling afresh"
            )
            return False
        self.loaded = True
        return True

    def save(self) -> bool:
        """Write what this process compiled so far under the key; whether a file was written."""
        if not torch_saves_artifacts():
            return False
        try:
            got = torch.compiler.save_cache_artifacts()
        except Exception as e:  # noqa: BLE001
            self.say(f"compile cache not written: torch could not save its artifacts ({e})")
            return False
        if got is None:
            return False
        try:
            write_artifacts(self.path, self.key, got[0])
        except (OSError, LabelFreeError) as e:  # a read-only or full cache folder
            self.say(f"compile cache not written to {self.path} ({e})")
            return False
        return True
