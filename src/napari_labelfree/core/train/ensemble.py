"""Training an ensemble (:mod:`..ensemble`): K runs of :func:`.loop.iter_train`, one model folder.

Member i is trained with seed ``config.seed + i`` (its own initial weights and patches), on the
same training images and held-out validation images, into a hidden temporary folder beside the
output. Only when every member is trained is the ensemble written there: its config.json (the
members' spec, ``"ensemble": {"members": K, "seeds": [...], "member_metrics": [...]}`` and the
ensemble's own whole-image validation scores), one weights.safetensors with every member's
tensors, and each member's training log, loss curve and spec (``member.json``) under
``members/member-<i>/``. Ctrl-C or a
failed member removes the temporary folder: the output is as it was (no half-written ensemble, and
a model it held is replaced only when the new one is complete).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Generator
from functools import partial
from pathlib import Path

import torch

from ..bundle import CONFIG_NAME, WEIGHTS_NAME, ModelBundle, open_bundle
from ..config import ModelSpec
from ..data import ImagePair
from ..ensemble import MEMBERS_DIR, check_ensemble_size, member_key, member_seeds
from ..errors import LabelFreeError
from ..events import Notice
from ..files import make_parent, temp_dir_beside, write_error
from .checkpoint import CHECKPOINT_NAME, write_bundle_files
from .config import TrainConfig
from .evaluate import evaluate_model, mean_score
from .events import TrainEvent, TrainStep
from .folder import FolderClaim, check_request
from .holdout import hold_out_strips
from .init import resolve_init, spec_from_init
from .log import CURVE_NAME, LOG_NAME
from .recipe import BEST_NAME

# what a member's folder keeps inside the ensemble's: the record of its training
_MEMBER_RECORD = (LOG_NAME, CURVE_NAME)
MEMBER_SPEC_NAME = "member.json"


def iter_train_ensemble(
    train: list[ImagePair],
    spec: ModelSpec,
    out_dir: str | Path,
    members: int,
    config: TrainConfig | None = None,
    val: list[ImagePair] | None = None,
    device: str | torch.device = "auto",
    overwrite: bool = False,
    init: str | Path | ModelBundle | None = None,
) -> Generator[TrainEvent, None, ModelBundle]:
    """Train an ensemble of ``members`` networks into ``out_dir``; yield progress; return it.

    The arguments are :func:`.loop.iter_train`'s (no resuming: an interrupted ensemble starts
    again). TrainStep events count over all members (``total`` = K x iterations), so one
    progress bar covers the whole run. Closing the generator or a failure leaves ``out_dir``
    untouched.
    """
    from .loop import iter_train

    check_ensemble_size(members)
    config = config or TrainConfig()
    out = Path(out_dir)
    start = resolve_init(init) if init is not None else None
    grid_spec = spec_from_init(spec, start) if start is not None else spec
    val_source = "given" if val else "none"
    if not val and config.val_strip > 0:  # the same strips held out for every member
        vx = grid_spec.voxel_size_um[2]
        train, val, note = hold_out_strips(train, config.val_strip, config.patch_shape[2], vx)
        val_source = "strip" if val else "none"
        yield Notice(note)
    check_request(train, grid_spec, config, out, resume=False, overwrite=overwrite)
    make_parent(out)
    made = not out.exists()
    work = temp_dir_beside(out)
    try:
        with FolderClaim() as claim:  # one run at a time writes into ``out`` (.folder)
            recheck = partial(check_request, train, grid_spec, config, out, False, overwrite)
            # a log alone of an earlier run is kept beside, as a single run keeps it (.folder)
            for note in claim.take(out, recheck, set_aside=not overwrite):
                yield Notice(note)
            trained: list[ModelBundle] = []
            seeds = member_seeds(config.seed, members)
            for i, seed in enumerate(seeds):
                yield Notice(f"ensemble member {i + 1} of {members} (seed {seed})")
                gen = iter_train(
                    train,
                    spec,
                    work / f"member-{i + 1}",
                    dataclasses.replace(config, seed=seed, val_strip=0.0),
                    val=val,
                    device=device,
                    init=start,
                )
                bundle = yield from _counted(gen, i, members)
                trained.append(bundle)
            ensemble = _assemble(work / "ensemble", trained, seeds, val_source)
            if val:
                yield Notice(f"scoring the ensemble of {members} on the validation images")
                per_image = evaluate_model(ensemble, val, device)
                ensemble.spec.metrics.update(
                    {
                        "val_images": per_image,
                        "val_pearson_r_mean": mean_score([r["pearson_r"] for r in per_image]),
                        "val_nl2_mean": mean_score([r["nl2"] for r in per_image]),
                    }
                )
                config_path = ensemble.path / CONFIG_NAME
                config_path.write_text(ensemble.spec.to_json(), encoding="utf-8")
            _install(ensemble.path, out, overwrite)
    except OSError as e:
        raise write_error(out, e) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if made:  # the claim made the folder: an ensemble that was not written leaves none
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty
    return open_bundle(out)


def _counted(
    gen: Generator[TrainEvent, None, ModelBundle], index: int, members: int
) -> Generator[TrainEvent, None, ModelBundle]:
    """A member's events, its TrainSteps counted over the whole ensemble."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, TrainStep):
            event = dataclasses.replace(
                event,
                iteration=index * event.total + event.iteration,
                total=members * event.total,
            )
        try:
            yield event
        except GeneratorExit:
            gen.close()  # the member ends as it would alone; its folder is then removed
            raise


def _assemble(
    folder: Path, trained: list[ModelBundle], seeds: list[int], val_source: str
) -> ModelBundle:
    """The ensemble's folder from its trained members (config, one weights file, their logs)."""
    from safetensors.torch import load_file

    first = trained[0].spec
    spec = dataclasses.replace(first, metrics={}, provenance=dict(first.provenance))
    spec.ensemble = {
        "members": len(trained),
        "seeds": seeds,
        "member_metrics": [
            {
                k: b.spec.metrics.get(k)
                for k in ("iterations", "best_iteration", "val_pearson_r_mean", "val_nl2_mean")
                if b.spec.metrics.get(k) is not None
            }
            for b in trained
        ],
    }
    spec.provenance.update(
        {
            "created_by": "napari-labelfree iter_train_ensemble",
            "train_time_s": round(
                sum(b.spec.provenance.get("train_time_s", 0) for b in trained), 1
            ),
            "interrupted": False,
        }
    )
    spec.metrics = {
        "iterations": first.metrics.get("iterations"),
        "val_source": val_source,
        "final_train_loss": mean_score([b.spec.metrics.get("final_train_loss") for b in trained]),
    }
    state: dict[str, torch.Tensor] = {}
    for i, b in enumerate(trained):
        for name, tensor in load_file(str(b.path / WEIGHTS_NAME), device="cpu").items():
            state[member_key(i, name)] = tensor
    folder.mkdir()
    write_bundle_files(folder, spec, state)
    for i, b in enumerate(trained):
        record = folder / MEMBERS_DIR / f"member-{i + 1}"
        record.mkdir(parents=True)
        for name in _MEMBER_RECORD:
            if (b.path / name).is_file():
                shutil.copy2(b.path / name, record / name)
        # its own spec and scores, under a name no model search takes for a model folder
        (record / MEMBER_SPEC_NAME).write_text(b.spec.to_json(), encoding="utf-8")
    return open_bundle(folder)


def _install(built: Path, out: Path, overwrite: bool) -> None:
    """Move the finished ensemble into ``out`` file by file (its other files kept; a replaced
    run's checkpoint, log and best weights removed, so they are never taken for this model's).
    Weights before config.json, as in training."""
    if not overwrite and any((out / n).exists() for n in (CONFIG_NAME, WEIGHTS_NAME)):
        raise LabelFreeError(f"{out} already holds a model; nothing was overwritten")
    for name in (CHECKPOINT_NAME, BEST_NAME, LOG_NAME, CURVE_NAME):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / MEMBERS_DIR, ignore_errors=True)
    os.replace(built / MEMBERS_DIR, out / MEMBERS_DIR)
    os.replace(built / WEIGHTS_NAME, out / WEIGHTS_NAME)
    os.replace(built / CONFIG_NAME, out / CONFIG_NAME)
