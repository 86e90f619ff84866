"""Training as a generator: random 3D patches, Adam, MSE; atomic checkpoints; exact resume.

``iter_train`` follows the paper (Ounkomol et al. 2018; pytorch_fnet): every image is z-scored and
resampled to the model's voxel size once, up front; each iteration draws a batch of random patches
(uniformly over all patch positions of all training images), and takes one Adam step on the MSE
between the network's output and the target patch.

On CUDA the preprocessed images live on the GPU and patches are cut there (no host-to-device copy
per step). ``TrainConfig.precision`` "auto" runs the forward pass under autocast on CUDA (bf16, or
fp16 with a GradScaler where bf16 is missing) and in fp32 elsewhere. Not bf16 on the CPU, although
it ran the paper network 2.5x faster on a 2-core AVX512-BF16 CPU: there BatchNorm computes its
batch statistics in bf16, and a tiny network on small patches went to NaN within five steps in
NCDHW layout (ask for it with precision "bf16" if you must). Activations are ``channels_last_3d`` on
CPU and CUDA (1.35-1.5x on the CPU in fp32, identical losses). On the CPU a resumed run is
bit-identical to an uninterrupted one.

Files written in ``out_dir``:

* ``config.json`` + ``weights.safetensors``: a usable model bundle (at the end, and when the
  generator is closed early), with the metrics in config.json;
* ``checkpoint.safetensors``: weights, optimizer state and random states as tensors, and the rest
  (iteration, optimizer hyper-parameters, numpy / python random states, settings) as JSON in the
  file's metadata. One file, written to a temporary name and renamed, so it is never half-written;
  reading it never executes code (no pickle);
* ``train_log.csv`` (iteration, train_loss, val_loss, val_pearson_r) and ``loss_curve.png``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import random
import time
from collections import deque
from collections.abc import Generator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .bundle import CONFIG_NAME, WEIGHTS_NAME, ModelBundle, open_bundle
from .config import PRECISIONS, ModelSpec
from .device import compute_dtype, resolve_device
from .errors import LabelFreeError
from .events import Notice
from .files import atomic_file
from .metrics import nl2, pearson_r
from .optimize import prefers_channels_last
from .preprocess import needs_resampling, resampled_shape, resize, zscore

CHECKPOINT_NAME = "checkpoint.safetensors"
LOG_NAME = "train_log.csv"
CURVE_NAME = "loss_curve.png"
LOG_COLUMNS = ("iteration", "train_loss", "val_loss", "val_pearson_r")
_META_KEY = "napari_labelfree_checkpoint"
# Fixed validation patches: enough voxels for a stable r, few enough to keep validation cheap on a CPU.
_MAX_VAL_PATCHES = 16


# --------------------------------------------------------------------------------------------- data
@dataclass
class ImagePair:
    """One registered signal/target pair: ZYX arrays of raw intensities.

    ``voxel_size`` is in um (Z, Y, X); None means the images are already at the model's voxel size.
    """

    signal: np.ndarray
    target: np.ndarray
    voxel_size: tuple[float, float, float] | None = None
    name: str = ""


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's."""

    iterations: int = 50_000
    batch_size: int = 24
    patch_shape: tuple[int, int, int] = (32, 64, 64)
    lr: float = 1e-3
    checkpoint_every: int = 500
    validate_every: int = 500
    seed: int = 0
    precision: str = "auto"  # see core.device.compute_dtype

    def __post_init__(self) -> None:
        self.patch_shape = tuple(int(v) for v in self.patch_shape)  # type: ignore[assignment]
        if len(self.patch_shape) != 3 or min(self.patch_shape) < 1:
            raise LabelFreeError(
                f"patch shape must be three positive integers Z,Y,X, got {self.patch_shape}"
            )
        for name in ("iterations", "batch_size", "checkpoint_every", "validate_every"):
            if int(getattr(self, name)) < 1:
                raise LabelFreeError(
                    f"{name} must be a positive integer, got {getattr(self, name)}"
                )
        if self.precision not in PRECISIONS:
            raise LabelFreeError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LabelFreeError(f"the learning rate must be a positive number, got {self.lr}")


# ------------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class TrainStep:
    """Iteration ``iteration`` (1-based, completed) of ``total``; ``loss`` is that batch's MSE."""

    iteration: int
    total: int
    loss: float
    its_per_s: float


@dataclass(frozen=True)
class Validated:
    """Loss and Pearson r on the fixed validation patches after ``iteration``."""

    iteration: int
    val_loss: float
    val_pearson_r: float


@dataclass(frozen=True)
class CheckpointSaved:
    path: Path


TrainEvent = TrainStep | Validated | CheckpointSaved | Notice


# ------------------------------------------------------------------------------------ preprocessing
def prepare_pair(
    pair: ImagePair, model_voxel: Sequence[float], patch_shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Z-score signal and target, resample them to the model's voxel size, pad up to a patch.

    Returns
    -------
    signal, target, notices
        float32 ZYX arrays of equal shape, at least ``patch_shape``; texts for the user.
    """
    label = pair.name or "an image pair"
    sig = np.asarray(pair.signal)
    tgt = np.asarray(pair.target)
    if sig.ndim != 3 or tgt.ndim != 3:
        raise LabelFreeError(
            f"{label}: signal {sig.shape} and target {tgt.shape} must both be 3D (Z, Y, X) z-stacks"
        )
    if sig.shape != tgt.shape:
        raise LabelFreeError(
            f"{label}: signal shape {sig.shape} and target shape {tgt.shape} differ; "
            "training needs registered pairs of the same shape"
        )
    notices: list[str] = []
    try:
        sig = zscore(sig)
        tgt = zscore(tgt)
    except LabelFreeError as e:
        raise LabelFreeError(f"{label}: {e}") from e
    if pair.voxel_size is not None and needs_resampling(pair.voxel_size, model_voxel):
        shape = resampled_shape(sig.shape, pair.voxel_size, model_voxel)
        sig, tgt = resize(sig, shape), resize(tgt, shape)
    short = [max(0, int(p) - n) for n, p in zip(sig.shape, patch_shape, strict=True)]
    if any(short):
        # Mirror padding keeps image statistics at the border (zero padding would teach the
        # network an artificial edge); the notice tells the user their image is small.
        pad = [(s // 2, s - s // 2) for s in short]
        notices.append(
            f"{label}: {sig.shape} voxels at the model's voxel size is smaller than the patch "
            f"{tuple(patch_shape)}; mirror-padded to fit"
        )
        sig = np.pad(sig, pad, mode="symmetric")
        tgt = np.pad(tgt, pad, mode="symmetric")
    return np.ascontiguousarray(sig), np.ascontiguousarray(tgt), notices


class PatchSampler:
    """Random patch positions, uniform over every valid position of every image.

    An image is drawn with probability proportional to its number of patch positions, then a
    position uniformly within it: every patch of the training set is equally likely, so a large
    image is not under-sampled relative to a small one.
    """

    def __init__(
        self, shapes: Sequence[Sequence[int]], patch_shape: Sequence[int], rng: np.random.Generator
    ) -> None:
        self.patch = tuple(int(p) for p in patch_shape)
        self.ranges = [
            tuple(int(n) - p + 1 for n, p in zip(s, self.patch, strict=True)) for s in shapes
        ]
        counts = np.array([float(np.prod(r)) for r in self.ranges])
        self.p = counts / counts.sum()
        self.rng = rng

    def sample(self, n: int) -> list[tuple[int, int, int, int]]:
        images = self.rng.choice(len(self.ranges), size=n, p=self.p)
        out = []
        for i in images:
            z, y, x = (int(self.rng.integers(0, r)) for r in self.ranges[int(i)])
            out.append((int(i), z, y, x))
        return out


def _cut(
    images: Sequence[torch.Tensor], where: Sequence[tuple[int, int, int, int]], patch: Sequence[int]
) -> torch.Tensor:
    """A (N, 1, Z, Y, X) batch of patches cut from images on whatever device they live on."""
    pz, py, px = patch
    return torch.stack([images[i][z : z + pz, y : y + py, x : x + px] for i, z, y, x in where])[
        :, None
    ]


# ------------------------------------------------------------------------------------ file helpers
def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _save_safetensors_atomic(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    with atomic_file(path) as tmp:
        save_file(
            {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata=metadata,
        )


def write_bundle_files(out_dir: Path, spec: ModelSpec, state_dict: dict[str, torch.Tensor]) -> None:
    """Write config.json and weights.safetensors into ``out_dir`` (each atomically) beside the logs.

    ``bundle.save_bundle`` replaces a whole folder, which would delete the checkpoint and the log,
    so training writes the two bundle files one by one: weights first, so that a config.json on
    disk always has weights beside it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_safetensors_atomic(out_dir / WEIGHTS_NAME, state_dict, {"format": "pt"})
    _write_text_atomic(out_dir / CONFIG_NAME, spec.to_json())


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
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
    _save_safetensors_atomic(
        path, tensors, {"format": "pt", _META_KEY: json.dumps(_json_safe(meta))}
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
    return tensors, json.loads(meta_text)


def _restore(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    patch_rng: np.random.Generator,
    device: torch.device,
) -> int:
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        net.load_state_dict(model_sd)
    except RuntimeError as e:
        raise LabelFreeError(
            "the checkpoint's network does not match this model's architecture; resume with the same "
            f"--depth and --width, or train into a new folder ({str(e).splitlines()[0]})"
        ) from e
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
    net.to(device)
    return int(meta["iteration"])


# ------------------------------------------------------------------------------------- log / curve
def _read_log(path: Path, up_to: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("iteration") and int(r["iteration"]) <= up_to]


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def write_loss_curve(path: Path, rows: Sequence[dict[str, str]], title: str = "") -> None:
    """Training loss (raw and smoothed), validation loss and validation r against iteration."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    it = np.array([int(r["iteration"]) for r in rows])
    loss = np.array([float(r["train_loss"]) for r in rows])
    val = [
        (int(r["iteration"]), float(r["val_loss"]), float(r["val_pearson_r"] or "nan"))
        for r in rows
        if r.get("val_loss")
    ]
    fig = Figure(figsize=(8, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax, ax_r = fig.subplots(1, 2)
    if len(it):
        ax.plot(it, loss, color="0.75", lw=0.6, label="train (batch)")
        k = max(1, min(50, len(loss) // 10))
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(it[k - 1 :], smooth, color="C0", lw=1.5, label=f"train (mean of {k})")
    if val:
        ax.plot(
            [v[0] for v in val], [v[1] for v in val], "o-", color="C1", ms=3, label="validation"
        )
        ax_r.plot([v[0] for v in val], [v[2] for v in val], "o-", color="C2", ms=3)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("MSE (z-scored target)")
    ax.legend(fontsize=8)
    ax_r.set_xlabel("iteration")
    ax_r.set_ylabel("validation Pearson r")
    ax_r.set_ylim(min(0.0, *(v[2] for v in val if math.isfinite(v[2]))) if val else 0.0, 1.0)
    ax_r.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")


# ------------------------------------------------------------------------------------- evaluation
def evaluate_model(
    bundle: ModelBundle, pairs: Sequence[ImagePair], device: str | torch.device = "auto"
) -> list[dict[str, Any]]:
    """Whole-image Pearson r and nl2 of one model on image pairs (the scores of ``labelfree evaluate``).

    Each signal is predicted as a user would predict it (z-scored, resampled to the model's voxel
    size, tiled, resampled back); the prediction is scored against its target at the target's own
    grid (see :mod:`.metrics` for the normalization).

    Returns
    -------
    list of dict
        One ``{"name", "pearson_r", "nl2"}`` per pair.
    """
    from .events import drain
    from .predict import iter_predict_volume

    out = []
    for pair in pairs:
        if np.shape(pair.signal) != np.shape(pair.target):
            raise LabelFreeError(
                f"{pair.name or 'an image pair'}: signal {np.shape(pair.signal)} and target "
                f"{np.shape(pair.target)} differ in shape"
            )
        vox = pair.voxel_size or bundle.spec.voxel_size_um
        pred = drain(iter_predict_volume(np.asarray(pair.signal), [bundle], vox, device=device))
        p = next(iter(pred.values()))
        out.append(
            {"name": pair.name, "pearson_r": pearson_r(p, pair.target), "nl2": nl2(p, pair.target)}
        )
    return out


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


# ------------------------------------------------------------------------------------ the generator
def iter_train(
    train: list[ImagePair],
    spec: ModelSpec,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    val: list[ImagePair] | None = None,
    device: str | torch.device = "auto",
    resume: bool = False,
) -> Generator[TrainEvent, None, ModelBundle]:
    """Train one structure model; yield progress; return the trained bundle in ``out_dir``.

    Parameters
    ----------
    train
        Registered signal/target pairs (ZYX, raw intensities).
    spec
        The model to train: architecture, voxel size (the training grid), structure, colormap.
    out_dir
        Folder for the bundle, checkpoint, log and curve. It must be new (or empty) unless resuming.
    config
        Iterations, batch, patch shape, learning rate, checkpoint / validation intervals, seed.
    val
        Pairs for validation: loss and Pearson r on fixed patches every ``validate_every``
        iterations, and whole-image Pearson r / nl2 in config.json at the end.
    device
        'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.
    resume
        Continue from ``out_dir``'s checkpoint (weights, optimizer, iteration, random states).

    Yields
    ------
    TrainStep, Validated, CheckpointSaved, Notice
        One TrainStep per iteration. Closing the generator (``.close()``) saves a checkpoint and the
        current weights as a usable bundle before it ends.

    Returns
    -------
    ModelBundle
        The trained model in ``out_dir``.
    """
    config = config or TrainConfig()
    out = Path(out_dir)
    if not train:
        raise LabelFreeError("no training images given")
    multiple = spec.architecture.multiple
    if any(p % multiple for p in config.patch_shape):
        raise LabelFreeError(
            f"patch shape {config.patch_shape} must be a multiple of {multiple} on every axis for a "
            f"network of depth {spec.architecture.depth}"
        )
    ckpt_path = out / CHECKPOINT_NAME
    log_path = out / LOG_NAME
    if (
        not resume
        and out.exists()
        and any((out / n).exists() for n in (CONFIG_NAME, WEIGHTS_NAME, CHECKPOINT_NAME, LOG_NAME))
    ):
        raise LabelFreeError(
            f"{out} already holds a model or a training run; choose a new folder, or resume it "
            "(--resume); nothing was overwritten"
        )
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    spec = copy.deepcopy(
        spec
    )  # provenance and metrics are filled in; the caller's spec stays as is

    # ---- preprocess once
    model_voxel = spec.voxel_size_um
    train_arrays, val_arrays = [], []
    for pair in train:
        s, t, notes = prepare_pair(pair, model_voxel, config.patch_shape)
        for n in notes:
            yield Notice(n)
        train_arrays.append((s, t, pair.name))
    for pair in val or []:
        s, t, notes = prepare_pair(pair, model_voxel, config.patch_shape)
        for n in notes:
            yield Notice(n)
        val_arrays.append((s, t, pair.name))
    # Images on the training device: on a GPU every patch is then cut without a host copy.
    sig_dev = [torch.from_numpy(s).to(dev) for s, _, _ in train_arrays]
    tgt_dev = [torch.from_numpy(t).to(dev) for _, t, _ in train_arrays]

    # ---- network, optimizer, precision
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    random.seed(config.seed)
    channels_last = prefers_channels_last(dev)
    net = _build(spec).to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    # CPU bf16 autocast is not numerically safe for training (see the module docstring)
    precision = "fp32" if config.precision == "auto" and dev.type != "cuda" else config.precision
    dtype = compute_dtype(dev, precision)
    amp_dtype = None if dtype == torch.float32 else dtype
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = (
            True  # fixed patch shape: let cuDNN pick its fastest kernels
        )
    scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16)
    autocast = (lambda: torch.autocast(dev.type, dtype=amp_dtype)) if amp_dtype else nullcontext

    def layout(batch: torch.Tensor) -> torch.Tensor:
        return batch.contiguous(memory_format=torch.channels_last_3d) if channels_last else batch

    patch_rng = np.random.default_rng(config.seed)
    sampler = PatchSampler([s.shape for s, _, _ in train_arrays], config.patch_shape, patch_rng)

    # Validation patches are drawn once from their own stream: every validation scores the same
    # voxels, and validating does not move the training random state.
    val_batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    if val_arrays:
        vrng = np.random.default_rng([config.seed, 1])
        vsampler = PatchSampler([s.shape for s, _, _ in val_arrays], config.patch_shape, vrng)
        where = vsampler.sample(min(_MAX_VAL_PATCHES, max(4, 4 * len(val_arrays))))
        vs = [torch.from_numpy(s) for s, _, _ in val_arrays]
        vt = [torch.from_numpy(t) for _, t, _ in val_arrays]
        for k in range(0, len(where), config.batch_size):
            chunk = where[k : k + config.batch_size]
            val_batches.append(
                (
                    layout(_cut(vs, chunk, config.patch_shape).to(dev)),
                    _cut(vt, chunk, config.patch_shape).to(dev),
                )
            )

    # ---- resume
    iteration = 0
    elapsed_before = 0.0
    if resume:
        if ckpt_path.is_file():
            tensors, meta = read_checkpoint(ckpt_path)
            iteration = _restore(tensors, meta, net, optimizer, scaler, patch_rng, dev)
            for group in optimizer.param_groups:
                group["lr"] = (
                    config.lr
                )  # the checkpoint's optimizer state, the learning rate asked for now
            elapsed_before = float(meta.get("train_time_s", 0.0))
            old = meta.get("config", {})
            changed = [
                k
                for k in ("batch_size", "patch_shape", "lr", "seed")
                if k in old and _json_safe(old[k]) != _json_safe(asdict(config)[k])
            ]
            if changed:
                yield Notice(
                    f"resuming with changed {', '.join(changed)}; the run will differ from "
                    "one that was never interrupted"
                )
            yield Notice(f"resumed from iteration {iteration} ({ckpt_path})")
        else:
            yield Notice(f"no checkpoint in {out}; starting from scratch")
    rows = _read_log(log_path, iteration)
    with open(log_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)

    names = {
        "train_images": [n for _, _, n in train_arrays][:100],
        "val_images": [n for _, _, n in val_arrays][:100],
    }
    last_val: dict[str, float] = {}
    recent_loss: deque[float] = deque(maxlen=100)
    times: deque[float] = deque(maxlen=21)
    t_start = time.perf_counter()

    def extra() -> dict[str, Any]:
        return {
            "config": asdict(config),
            "spec": spec.to_dict(),
            "device": str(dev),
            "train_time_s": elapsed_before + time.perf_counter() - t_start,
            **names,
        }

    def checkpoint() -> Path:
        save_checkpoint(ckpt_path, net, optimizer, scaler, iteration, patch_rng, extra())
        return ckpt_path

    def finish(final_metrics: dict[str, Any] | None, interrupted: bool) -> None:
        spec.provenance.update(
            {
                "created_by": "napari-labelfree iter_train",
                "trained": iteration > 0,
                "iterations": iteration,
                "interrupted": interrupted,
                "training": _json_safe(asdict(config)),
                "device": str(dev),
                "train_time_s": round(elapsed_before + time.perf_counter() - t_start, 1),
                "n_train_images": len(train_arrays),
                "n_val_images": len(val_arrays),
            }
        )
        spec.metrics.update(
            {"iterations": iteration, "final_train_loss": _mean(list(recent_loss)), **last_val}
        )
        if final_metrics:
            spec.metrics.update(final_metrics)
        write_bundle_files(out, spec, net.state_dict())
        if rows:
            write_loss_curve(out / CURVE_NAME, rows, f"{spec.structure}: {iteration} iterations")

    log_file = open(log_path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed in finally)
    log = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS)
    net.train()
    try:
        while iteration < config.iterations:
            where = sampler.sample(config.batch_size)
            x = layout(_cut(sig_dev, where, config.patch_shape))
            y = _cut(tgt_dev, where, config.patch_shape)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                pred = net(x)
            loss = F.mse_loss(pred.float(), y)  # loss in fp32 whatever the autocast dtype
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            iteration += 1
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise LabelFreeError(
                    f"the training loss became {loss_value} at iteration {iteration}; lower the learning "
                    "rate (--lr), train in fp32 (--precision fp32) if you chose a reduced precision, "
                    "or check the data for extreme values"
                )
            recent_loss.append(loss_value)
            times.append(time.perf_counter())
            its = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
            row = {
                "iteration": iteration,
                "train_loss": _fmt(loss_value),
                "val_loss": "",
                "val_pearson_r": "",
            }
            validated = None
            if val_batches and (
                iteration % config.validate_every == 0 or iteration == config.iterations
            ):
                vl, vr = _validate(net, val_batches, autocast)
                last_val = {"val_loss": vl, "val_pearson_r": vr}
                row.update(val_loss=_fmt(vl), val_pearson_r=_fmt(vr))
                validated = Validated(iteration, vl, vr)
            log.writerow(row)
            log_file.flush()
            rows.append({k: str(v) for k, v in row.items()})
            saved = None
            if iteration % config.checkpoint_every == 0 or iteration == config.iterations:
                saved = checkpoint()
                write_loss_curve(
                    out / CURVE_NAME, rows, f"{spec.structure}: {iteration} iterations"
                )
            # Every yield sits at an iteration boundary, so a close() there leaves a consistent state.
            yield TrainStep(iteration, config.iterations, loss_value, its)
            if validated is not None:
                yield validated
            if saved is not None:
                yield CheckpointSaved(saved)
    except GeneratorExit:
        log_file.close()
        checkpoint()
        finish(None, interrupted=True)
        raise
    except KeyboardInterrupt:
        # Interrupted inside a step: the optimizer may be half-way, so keep the weights as a bundle
        # but leave the last consistent checkpoint as it is.
        log_file.close()
        finish(None, interrupted=True)
        raise
    finally:
        log_file.close()

    if not ckpt_path.is_file():
        checkpoint()
    final: dict[str, Any] = {}
    if val_arrays:
        # Whole-image scores through the same tiled prediction a user runs.
        finish(None, interrupted=False)
        per_image = evaluate_model(
            open_bundle(out), [ImagePair(s, t, None, n) for s, t, n in val_arrays], dev
        )
        final = {
            "val_images": per_image,
            "val_pearson_r_mean": _mean([r["pearson_r"] for r in per_image]),
            "val_nl2_mean": _mean([r["nl2"] for r in per_image]),
        }
    finish(final, interrupted=False)
    return open_bundle(out)


def _build(spec: ModelSpec) -> torch.nn.Module:
    from .unet import build_network

    if spec.architecture.in_channels != 1 or spec.architecture.out_channels != 1:
        raise LabelFreeError("training supports one input and one output channel")
    return build_network(spec.architecture)


def _validate(
    net: torch.nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], autocast: Any
) -> tuple[float, float]:
    net.eval()
    preds, targets = [], []
    try:
        with torch.no_grad(), autocast():
            for x, y in batches:
                preds.append(net(x).float().cpu())
                targets.append(y.float().cpu())
    finally:
        net.train()
    p = torch.cat(preds).numpy()
    t = torch.cat(targets).numpy()
    return float(np.mean((p - t) ** 2, dtype=np.float64)), pearson_r(p, t)
