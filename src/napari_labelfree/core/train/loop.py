"""Training as a generator: random 3D patches, Adam, MSE; atomic checkpoints; exact resume.

``iter_train`` follows the paper (Ounkomol et al. 2018; pytorch_fnet): every image is z-scored and
resampled to the model's voxel size once, up front; each iteration draws a batch of random patches
(uniformly over all patch positions of all training images), and takes one Adam step on the MSE
between the network's output and the target patch.

On CUDA the preprocessed images live on the GPU and patches are cut there (no host-to-device copy
per step); precision and memory layout are :mod:`.engine`'s. On the CPU a resumed run is
bit-identical to an uninterrupted one.

Files written in ``out_dir``: ``config.json`` + ``weights.safetensors``, a usable model bundle (at
the end, and when the generator is closed early) with the metrics in config.json (:mod:`.state`);
``checkpoint.safetensors`` (:mod:`.checkpoint`); ``train_log.csv`` and ``loss_curve.png``
(:mod:`.log`).
"""

from __future__ import annotations

import copy
import functools
import time
from collections import deque
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bundle import CONFIG_NAME, ModelBundle, open_bundle
from ..config import ModelSpec
from ..data import ImagePair, modality_counts
from ..device import resolve_device, resolve_precision
from ..events import Notice
from ..io.acquisition import TRANSMITTED_MODALITIES
from ..trust.seen import training_pixels
from ..trust.stats import training_statistics
from ..voxel_size import format_voxel_size
from .checkpoint import CHECKPOINT_NAME
from .config import TrainConfig
from .ddp import NullLog, Ranks
from .engine import Batch, Engine
from .evaluate import evaluate_model, mean_score
from .events import CheckpointSaved, TrainEvent, TrainStep, Validated
from .folder import FolderClaim, check_request
from .guard import Divergence, DivergenceGuard, keep_last_good, weights_are_finite
from .holdout import hold_out_strips
from .init import (
    adaptation_grid,
    init_scores,
    load_init_weights,
    resolve_init,
    spec_from_init,
    warm_start_provenance,
)
from .log import LOG_NAME, TrainLog, fmt
from .patches import (
    PatchSampler,
    check_one_plane_targets,
    cut_patches,
    pad_planes,
    prepare_pair,
    signal_patch,
)
from .recipe import BEST_NAME, Recipe
from .state import Prepared, RunState
from .throughput import log_interval

# Fixed validation patches: enough voxels for a stable r, few enough to keep validation cheap on a CPU.
_MAX_VAL_PATCHES = 16


MAX_NAMES_KEPT = 50  # training images named in a model's provenance (the count is kept too)


def iter_train(
    train: list[ImagePair],
    spec: ModelSpec,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    val: list[ImagePair] | None = None,
    device: str | torch.device = "auto",
    resume: bool = False,
    overwrite: bool = False,
    init: str | Path | ModelBundle | None = None,
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
        A run already at ``config.iterations`` is left as it is.
    overwrite
        Replace a model or run already in ``out_dir`` (when not resuming, or resuming a folder
        that holds a model but no checkpoint).

    Yields
    ------
    TrainStep, Validated, CheckpointSaved, Notice
        One TrainStep per iteration (on a GPU they come in bursts, one per ``log_every`` steps).
        Closing the generator (``.close()``) saves a checkpoint and the current weights as a
        usable bundle before it ends. A diverged run raises LabelFreeError after keeping the
        last checkpoint's weights (which passed the divergence guard) as the bundle.

    Returns
    -------
    ModelBundle
        The trained model in ``out_dir``.
    """
    # the output folder is held from its check to the end, however the run ends (core.train.folder)
    with FolderClaim() as claim:
        return (
            yield from _train(
                claim, train, spec, out_dir, config, val, device, resume, overwrite, init
            )
        )


def _train(
    claim: FolderClaim,
    train: list[ImagePair],
    spec: ModelSpec,
    out_dir: str | Path,
    config: TrainConfig | None,
    val: list[ImagePair] | None,
    device: str | torch.device,
    resume: bool,
    overwrite: bool,
    init: str | Path | ModelBundle | None,
) -> Generator[TrainEvent, None, ModelBundle]:
    """:func:`iter_train` with its output folder's ``claim``, taken before anything is written."""
    config = config or TrainConfig()
    out = Path(out_dir)
    # provenance and metrics are filled in; the caller's spec stays as is
    spec = copy.deepcopy(spec)
    start = resolve_init(init) if init is not None else None  # fine-tuning (core.train.init)
    if start is not None:
        spec = spec_from_init(spec, start)
        spec.provenance["init"].update(
            warm_start_provenance(config.init_shrink, config.init_perturb, config.init_reset)
        )
        # images coarser than the starting model's grid are not upsampled (core.train.init)
        grid = adaptation_grid(spec.voxel_size_um, [p.voxel_size for p in [*train, *(val or [])]])
        if grid != tuple(spec.voxel_size_um):
            spec.provenance["init"]["grid"] = {
                "voxel_size_um": list(grid),
                "starting_model_voxel_size_um": list(spec.voxel_size_um),
                "why": "the training images are coarser than the starting model's grid: "
                "trained at their own voxel size, not upsampled",
            }
            spec.voxel_size_um = grid
            yield Notice(
                f"fine-tuning at the images' own voxel size ({format_voxel_size(grid)} um): "
                f"they are coarser than {start.name}'s grid "
                f"({format_voxel_size(start.spec.voxel_size_um)} um), and upsampling them would "
                "add voxels, not detail"
            )
    # which images, by the names the user gave them (files, or napari layers): the model card
    # says what a user model learned from (a fine-tuned one also what it started from)
    named = [p for p in train if p.name]
    if named:
        names = [p.name for p in named]
        spec.provenance["training_images"] = names[:MAX_NAMES_KEPT]
        # and by their pixels, which a renamed copy keeps (core.trust.seen)
        spec.provenance["training_pixels"] = training_pixels(names, [p.signal for p in named])
    # what the training images are, where their files say (prediction compares an input's)
    modalities = modality_counts([*train, *(val or [])])
    if modalities:
        spec.provenance["input_modalities"] = modalities
        if start is None and set(modalities) <= set(TRANSMITTED_MODALITIES):
            # the card's "predicts dna from ..." says what the files said, not the default
            only = len(modalities) == 1
            spec.modality = next(iter(modalities)) if only else "transmitted-light"
    check_one_plane_targets([*train, *(val or [])], spec)
    # no validation data: one image still gets a held-out score (core.train.holdout)
    if not val and config.val_strip > 0:
        vx = spec.voxel_size_um[2]
        train, val, note = hold_out_strips(train, config.val_strip, config.patch_shape[2], vx)
        spec.metrics["val_source"] = "strip" if val else "none"
        # a command adds its options: --val, --val-strip (none cut: the images were too narrow)
        yield Notice(note, field="val_strip" if val else "val")
    check_request(train, spec, config, out, resume, overwrite)
    ranks = Ranks.current()
    if ranks.main:
        # under the lock: another run may have finished a model here since the check above
        recheck = functools.partial(check_request, train, spec, config, out, resume, overwrite)
        for note in claim.take(out, recheck, set_aside=not overwrite):
            yield Notice(note)
        if overwrite and not resume:
            # a checkpoint (or best weights) of the replaced run must never be taken for this run's
            (out / CHECKPOINT_NAME).unlink(missing_ok=True)
            (out / BEST_NAME).unlink(missing_ok=True)
    ranks.barrier()  # every rank has checked the folder before rank 0 writes into it
    dev = ranks.device(resolve_device(device))

    train_arrays = yield from _prepare_all(train, spec, config)
    val_arrays = yield from _prepare_all(val or [], spec, config)
    # what the network is trained on, for prediction's out-of-distribution check (core.trust)
    spec.input_statistics = training_statistics([s for s, _, _ in train_arrays], config.seed)
    # Images on the training device: on a GPU every patch is then cut without a host copy.
    window = spec.architecture.in_planes  # 2.5D: each output plane reads this many (.patches)
    signals = [
        pad_planes(torch.from_numpy(s).to(dev), t.shape[0], window) for s, t, _ in train_arrays
    ]
    targets = [torch.from_numpy(t).to(dev) for _, t, _ in train_arrays]

    engine = Engine.build(spec, config, dev)
    engine.net.pad_z = False  # 2.5D: a signal patch's window planes give its target planes
    changed = resolve_precision(dev, config.precision)[1]  # e.g. bf16 asked on an AVX2-only CPU
    if changed:
        yield Notice(changed, field="precision")
    if start is not None:
        load_init_weights(
            engine.net, start, config.init_shrink, config.init_perturb, config.init_reset
        )
    patch_rng = ranks.patch_rng(config.seed)
    ranks.reseed(config.seed, 0, patch_rng)
    sampler = PatchSampler(
        [tuple(s.shape) for s in signals], signal_patch(config.patch_shape, window), patch_rng
    )
    val_batches = _validation_batches(val_arrays, config, engine, dev, window)
    run = RunState(out, spec, config, dev, engine, patch_rng, train_arrays, val_arrays, ranks)
    run.recipe = Recipe(config, out, patch_rng, dev, bool(val_batches))
    if resume:
        yield from run.resume()
        ranks.reseed(config.seed, run.iteration, patch_rng)
        if run.iteration >= config.iterations and (out / CONFIG_NAME).is_file():
            yield Notice(
                f"{out} is already trained for {run.iteration} iterations; nothing to do "
                f"(ask for more than {run.iteration} iterations to continue)"
            )
            return open_bundle(out)
    engine.ddp = ranks.wrap(engine.net, dev)
    run.log = log = TrainLog(out / LOG_NAME, run.iteration) if ranks.main else NullLog()
    run.t_start = time.perf_counter()

    yield from _iterate(run, log, sampler, signals, targets, val_batches)

    if not run.ckpt_path.is_file():
        run.checkpoint()
    final: dict[str, Any] = {}
    if val_arrays and ranks.main:
        # Whole-image scores through the same tiled prediction a user runs.
        run.finish(None, interrupted=False)
        if spec.target_projection:  # a 3D network's target, repeated at every plane: one plane
            val_arrays = [(s, t[:1], n) for s, t, n in val_arrays]  # (the start is scored alike)
        per_image = evaluate_model(
            open_bundle(out), [ImagePair(s, t, None, n) for s, t, n in val_arrays], dev
        )
        final = {
            "val_images": per_image,
            "val_pearson_r_mean": mean_score([r["pearson_r"] for r in per_image]),
            "val_nl2_mean": mean_score([r["nl2"] for r in per_image]),
        }
        if start is not None:  # the starting model on the same held-out data: before/after
            final.update(init_scores(start, val_arrays, dev, spec.voxel_size_um))
    run.finish(final, interrupted=False)
    ranks.barrier()  # the bundle is complete before any rank opens it
    return open_bundle(out)


def _prepare_all(
    pairs: Sequence[ImagePair], spec: ModelSpec, config: TrainConfig
) -> Generator[Notice, None, list[Prepared]]:
    """Every pair z-scored, at the model's voxel size and at least a patch big; notices yielded."""
    out = []
    for pair in pairs:
        s, t, notes = prepare_pair(
            pair,
            spec.voxel_size_um,
            config.patch_shape,
            spec.normalization,
            spec.kind,
            spec.architecture.in_planes,
            spec.target_projection,
        )
        for n in notes:
            yield Notice(n)
        out.append((s, t, pair.name))
    return out


def _validation_batches(
    val_arrays: Sequence[Prepared],
    config: TrainConfig,
    engine: Engine,
    dev: torch.device,
    window: int = 1,
) -> list[Batch]:
    """Fixed validation patches, cut once and kept on the device.

    They are drawn from their own random stream: every validation scores the same voxels, and
    validating does not move the training random state.
    """
    if not val_arrays:
        return []
    vrng = np.random.default_rng([config.seed, 1])
    vs = [pad_planes(torch.from_numpy(s), t.shape[0], window) for s, t, _ in val_arrays]
    sig_patch = signal_patch(config.patch_shape, window)
    vsampler = PatchSampler([tuple(s.shape) for s in vs], sig_patch, vrng)
    where = vsampler.sample(min(_MAX_VAL_PATCHES, max(4, 4 * len(val_arrays))))
    vt = [torch.from_numpy(t) for _, t, _ in val_arrays]
    batches = []
    for k in range(0, len(where), config.batch_size):
        chunk = where[k : k + config.batch_size]
        x = engine.layout(cut_patches(vs, chunk, sig_patch).to(dev))
        batches.append((x, cut_patches(vt, chunk, config.patch_shape).to(dev)))
    return batches


def _iterate(
    run: RunState,
    log: TrainLog | NullLog,
    sampler: PatchSampler,
    signals: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    val_batches: Sequence[Batch],
) -> Generator[TrainEvent, None, None]:
    """Train until ``config.iterations``; closing or Ctrl-C keeps the weights as a bundle.

    The losses stay on the device and are read every ``log_every`` steps, and at every validation,
    checkpoint and the end; the divergence guard sees each of them before a checkpoint is written.
    """
    config, engine, ranks = run.config, run.engine, run.ranks
    every = log_interval(config.log_every, run.dev)
    guard = DivergenceGuard()
    pending: list[torch.Tensor] = []
    times: deque[tuple[int, float]] = deque(maxlen=21)
    times.append((run.iteration, time.perf_counter()))
    engine.net.train()
    sig_patch = signal_patch(config.patch_shape, run.spec.architecture.in_planes)
    try:
        while run.iteration < config.iterations:
            where = sampler.sample(config.batch_size)
            x = cut_patches(signals, where, sig_patch)
            y = cut_patches(targets, where, config.patch_shape)
            x, y = run.recipe.batch(x, y)  # augmentation (core.train.recipe hooks)
            run.recipe.before_step(engine.optimizer, run.iteration)
            pending.append(engine.step(engine.layout(x), y))
            run.iteration += 1
            it = run.iteration
            last = it == config.iterations
            validate = bool(val_batches) and (it % config.validate_every == 0 or last)
            save = it % config.checkpoint_every == 0 or last
            if not (validate or save or it % every == 0):
                continue
            losses = ranks.mean_losses(pending)  # the one wait for the device in this interval
            pending = []
            first = it - len(losses) + 1
            bad = guard.check(losses, first)
            if bad is None and save and not weights_are_finite(engine.net):
                bad = Divergence(it, losses[-1], "the weights became non-finite")
            if bad is not None:
                log.close()
                raise keep_last_good(run, bad)
            run.recent_loss.extend(losses)
            times.append((it, time.perf_counter()))
            its = (times[-1][0] - times[0][0]) / max(times[-1][1] - times[0][1], 1e-9)
            rows = [
                {"iteration": first + k, "train_loss": fmt(v), "val_loss": "", "val_pearson_r": ""}
                for k, v in enumerate(losses)
            ]
            validated = None
            if validate and ranks.main:
                vl, vr = engine.validate(val_batches)
                run.recipe.validated(engine.net, it, vl)  # keeps the best weights
                run.last_val = {"val_loss": vl, "val_pearson_r": vr}
                rows[-1].update(val_loss=fmt(vl), val_pearson_r=fmt(vr))
                validated = Validated(it, vl, vr)
            for row in rows:
                log.append(row)
            saved = None
            if save:
                saved = run.checkpoint()
                run.write_curve()
            # Every yield sits at an iteration boundary, so a close() there leaves a consistent state.
            for k, v in enumerate(losses):
                yield TrainStep(first + k, config.iterations, v, its)
            if validated is not None:
                yield validated
            if saved is not None and ranks.main:
                yield CheckpointSaved(saved)
    except GeneratorExit:
        log.close()
        run.checkpoint()
        run.finish(None, interrupted=True)
        raise
    except KeyboardInterrupt:
        # Interrupted inside a step: the optimizer may be half-way, so keep the weights as a bundle
        # but leave the last consistent checkpoint as it is.
        log.close()
        run.finish(None, interrupted=True)
        raise
    finally:
        log.close()
