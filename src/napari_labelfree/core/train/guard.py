"""Divergence: a training whose loss turned non-finite or exploded is stopped, not finished.

The loss is read on the host once per log interval (:meth:`.ddp.Ranks.mean_losses`), so a CUDA run does not
wait for the device after every step; the guard then looks at every step's loss of the interval.
A run diverged when a loss is NaN or infinite, when it is absurd for a z-scored target (above
``ABSURD_LOSS``: the untrained network scores about 1), or when the mean of the last
``WINDOW`` losses rose above ``EXPLODE_FACTOR`` times the lowest such mean seen so far. One
unlucky batch (a patch full of bright puncta) moves a mean of ``WINDOW`` steps little; a run
whose loss rose a thousand-fold has lost what it learned.

Only weights that passed the guard are checkpointed (:func:`weights_are_finite` is checked too:
a finite loss can still be followed by an update to NaN), so the last checkpoint is the last good
state, and that is what :mod:`.loop` keeps as the model when a run diverges.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..errors import LabelFreeError
from .checkpoint import load_checkpoint_weights, read_checkpoint

if TYPE_CHECKING:
    from ..config import ModelSpec

EXPLODE_FACTOR = 1e3
ABSURD_LOSS = 1e6
WINDOW = 10
# the window means of the first steps are not a baseline yet: they fall steeply
_WARMUP_WINDOWS = 2


@dataclass(frozen=True)
class Divergence:
    """Why a run diverged: the first bad iteration (1-based) and its loss."""

    iteration: int
    loss: float
    reason: str


class DivergenceGuard:
    """Watches each step's loss, in order; :meth:`check` returns a :class:`Divergence` or None."""

    def __init__(self) -> None:
        self._window: deque[float] = deque(maxlen=WINDOW)
        self._best = math.inf
        self._seen = 0

    def check(self, losses: Sequence[float], first_iteration: int) -> Divergence | None:
        """Check the losses of iterations ``first_iteration``, ``first_iteration + 1``, ...."""
        for k, loss in enumerate(losses):
            it = first_iteration + k
            if not math.isfinite(loss):
                return Divergence(it, loss, f"the loss became {loss}")
            if loss > ABSURD_LOSS:
                return Divergence(it, loss, f"the loss reached {loss:.3g}")
            self._window.append(loss)
            self._seen += 1
            if len(self._window) < WINDOW:
                continue
            mean = sum(self._window) / WINDOW
            if self._seen >= WINDOW * _WARMUP_WINDOWS and mean > EXPLODE_FACTOR * self._best:
                return Divergence(
                    it,
                    loss,
                    f"the loss exploded (mean of the last {WINDOW} steps {mean:.3g}, "
                    f"{mean / self._best:.0f}x its lowest {self._best:.3g})",
                )
            if self._seen >= WINDOW * _WARMUP_WINDOWS:
                self._best = min(self._best, mean)
        return None


def weights_are_finite(net: torch.nn.Module) -> bool:
    """Whether every parameter and buffer holds finite numbers (one synchronization)."""
    flags = [
        torch.isfinite(t).all()
        for t in (*net.parameters(), *net.buffers())
        if t.is_floating_point()
    ]
    return bool(torch.stack(flags).all()) if flags else True


class GuardedRun(Protocol):
    """What :func:`keep_last_good` needs of a run (:class:`.state.RunState` is one; no import of it)."""

    out: Path
    spec: ModelSpec
    engine: Any  # its .net is the network being trained
    iteration: int

    @property
    def ckpt_path(self) -> Path: ...

    def restore_metrics(self, meta: dict) -> None: ...

    def finish(self, final_metrics: dict | None, interrupted: bool) -> Any: ...


def keep_last_good(run: GuardedRun, bad: Divergence) -> LabelFreeError:
    """Put the last checkpoint's weights back as the model; return the error that ends the run.

    The checkpoint itself is left as it is: the run can be resumed from it (with a lower
    learning rate, say). The log keeps the diverged steps, to show what happened.
    """
    what = f"training diverged at iteration {bad.iteration}: {bad.reason}"
    advice = (
        "lower the learning rate, train in fp32 precision if you chose a reduced one, or check "
        "the data for extreme values"
    )
    if not run.ckpt_path.is_file():
        return LabelFreeError(
            f"{what}, before the first checkpoint, so no weights were kept; {advice}",
            field=("lr", "precision"),
        )
    tensors, meta = read_checkpoint(run.ckpt_path)
    load_checkpoint_weights(tensors, run.engine.net)
    run.iteration = int(meta["iteration"])
    run.restore_metrics(meta)
    run.spec.provenance["diverged_at_iteration"] = bad.iteration
    run.finish(None, interrupted=True)
    return LabelFreeError(
        f"{what}; the model in {run.out} keeps the weights of iteration {run.iteration}, its last "
        f"checkpoint; {advice}, then resume",
        field=("lr", "precision", "resume"),
    )
