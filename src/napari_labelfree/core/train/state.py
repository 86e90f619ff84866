"""What one training run has done so far, and how it is saved: checkpoint, bundle, log, curve.

:mod:`.loop` drives the iterations; this keeps their outcome (iteration, recent losses, last
validation, time) and writes it: the checkpoint a resumed run starts from and the model bundle
with its provenance and metrics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ModelSpec
from ..events import Notice
from .checkpoint import (
    CHECKPOINT_NAME,
    json_safe,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    write_bundle_files,
)
from .config import TrainConfig
from .ddp import NullLog, Ranks
from .engine import Engine
from .evaluate import mean_score
from .guard import weights_are_finite
from .log import CURVE_NAME, TrainLog, write_loss_curve
from .recipe import Recipe

# (signal, target, name) of one preprocessed pair
Prepared = tuple[np.ndarray, np.ndarray, str]


@dataclass
class RunState:
    """What one run has done so far, and how it is saved: checkpoint, bundle, log, curve."""

    out: Path
    spec: ModelSpec
    config: TrainConfig
    dev: torch.device
    engine: Engine
    patch_rng: np.random.Generator
    train_arrays: list[Prepared]
    val_arrays: list[Prepared]
    ranks: Ranks = field(default_factory=Ranks)
    iteration: int = 0
    elapsed_before: float = 0.0
    log: TrainLog | NullLog | None = None
    recipe: Recipe | None = None
    last_val: dict[str, float] = field(default_factory=dict)
    recent_loss: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    t_start: float = field(default_factory=time.perf_counter)

    @property
    def ckpt_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    def train_time_s(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start

    def resume(self) -> Generator[Notice, None, None]:
        """Continue from the checkpoint in ``out``, saying what differs; from scratch without one."""
        if not self.ckpt_path.is_file():
            yield Notice(f"no checkpoint in {self.out}; starting from scratch")
            return
        tensors, meta = read_checkpoint(self.ckpt_path)
        e = self.engine
        self.iteration = restore_checkpoint(
            tensors, meta, e.net, e.optimizer, e.scaler, self.patch_rng, self.dev
        )
        for group in e.optimizer.param_groups:
            group["lr"] = self.config.lr  # the checkpoint's optimizer state, the lr asked for now
        self.elapsed_before = float(meta.get("train_time_s", 0.0))
        self.restore_metrics(meta)
        old = meta.get("config", {})
        now = asdict(self.config)
        changed = [
            k
            for k in ("batch_size", "patch_shape", "lr", "seed")
            if k in old and json_safe(old[k]) != json_safe(now[k])
        ]
        if changed:
            yield Notice(
                f"resuming with changed {', '.join(changed)}; the run will differ from "
                "one that was never interrupted"
            )
        yield Notice(f"resumed from iteration {self.iteration} ({self.ckpt_path})")

    def restore_metrics(self, meta: dict[str, Any]) -> None:
        """The recent losses and last validation of a checkpoint: the bundle reports them."""
        self.recent_loss.clear()
        self.recent_loss.extend(float(v) for v in meta.get("recent_loss", []))
        self.last_val = {k: float(v) for k, v in meta.get("last_val", {}).items()}

    def checkpoint(self) -> Path:
        if not self.ranks.main or not weights_are_finite(self.engine.net):
            return self.ckpt_path  # rank 0 alone writes; weights gone bad are not saved
        extra = {
            "recent_loss": list(self.recent_loss),
            "last_val": self.last_val,
            "config": asdict(self.config),
            "spec": self.spec.to_dict(),
            "device": str(self.dev),
            "train_time_s": self.train_time_s(),
            "train_images": [n for _, _, n in self.train_arrays][:100],
            "val_images": [n for _, _, n in self.val_arrays][:100],
        }
        e = self.engine
        save_checkpoint(
            self.ckpt_path, e.net, e.optimizer, e.scaler, self.iteration, self.patch_rng, extra
        )
        return self.ckpt_path

    def write_curve(self) -> None:
        if not self.ranks.main:
            return
        rows = self.log.rows if self.log else []
        if rows:
            title = f"{self.spec.structure}: {self.iteration} iterations"
            write_loss_curve(self.out / CURVE_NAME, rows, title)

    def finish(self, final_metrics: dict[str, Any] | None, interrupted: bool) -> None:
        """Write the current weights as a bundle, with provenance and metrics; redraw the curve."""
        if not self.ranks.main:
            return
        self.spec.provenance.update(
            {
                "created_by": "napari-labelfree iter_train",
                "trained": self.iteration > 0,
                "iterations": self.iteration,
                "interrupted": interrupted,
                "training": json_safe(asdict(self.config)),
                "device": str(self.dev),
                "train_time_s": round(self.train_time_s(), 1),
                "n_train_images": len(self.train_arrays),
                "n_val_images": len(self.val_arrays),
            }
        )
        self.spec.metrics.update(
            {
                "iterations": self.iteration,
                "final_train_loss": mean_score(list(self.recent_loss)),
                **self.last_val,
            }
        )
        net = self.engine.net
        weights = net.state_dict()
        if self.recipe is not None:  # the best validated weights, where kept
            self.spec.metrics.update(self.recipe.metrics(interrupted))
            weights = self.recipe.bundle_weights(net, interrupted)
        if final_metrics:
            self.spec.metrics.update(final_metrics)
        write_bundle_files(self.out, self.spec, weights)
        self.write_curve()
