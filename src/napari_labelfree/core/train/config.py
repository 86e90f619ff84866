"""Training settings (no torch here: the CLI reads the defaults to build its options)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import PRECISIONS
from ..errors import LabelFreeError


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
    precision: str = "auto"  # see core.device.compute_dtype and the note in core.train.loop
    # steps between reads of the loss on the host; 0: every step on the CPU, 25 on a GPU
    # (see core.train.throughput)
    log_every: int = 0

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
        if int(self.log_every) < 0:
            raise LabelFreeError(f"log_every must be 0 (automatic) or more, got {self.log_every}")
        if self.precision not in PRECISIONS:
            raise LabelFreeError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LabelFreeError(f"the learning rate must be a positive number, got {self.lr}")
