"""Training settings (no torch here: the CLI reads the defaults to build its options)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import PRECISIONS
from ..errors import LabelFreeError

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
LOSSES = ("mse", "l1+ms-ssim")
# "torch": PyTorch's default initialisation; "fnet": pytorch_fnet's (conv weights N(0, 0.02),
# BatchNorm weights N(1, 0.02), biases 0), which measured +0.03 r in its loop on real data
WEIGHTS_INITS = ("torch", "fnet")


# The default budget when training starts from a model (adapting a built-in model to a user's
# own pair): the budget measured on the real ISL field (docs/real-cells.md), minutes on a CPU
ADAPTATION: dict[str, object] = {"iterations": 500, "batch_size": 8, "patch_shape": (16, 32, 32)}


@dataclass
class TrainConfig:
    """Training settings.

    The first group is the paper's (Ounkomol et al. 2018: patches of 32x64x64, batch 24, Adam 0.001,
    50,000 iterations). The recipe fields after ``precision`` default to this package's measured
    recipe (docs/training.md, "Recipe"); :meth:`paper` gives the paper's recipe exactly: no
    augmentation, Adam at a constant learning rate, MSE, the last weights kept.
    """

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
    # the recipe (core.train.augment, core.train.recipe); TrainConfig.paper() turns it all off.
    # Augmentation is on request: on the real ISL field at 500 iterations it lowered held-out r
    # (0.68 -> 0.54 on DAPI, docs/real-cells.md); it is meant for long runs on few images.
    augment: bool = False
    optimizer: str = "adamw"
    weight_decay: float = 1e-2  # AdamW only; not on BatchNorm parameters or biases
    schedule: str = "onecycle"
    loss: str = "mse"
    keep_best: bool = True  # with validation data: the model is the best validated weights
    weights_init: str = "torch"  # a new network's initial weights (not used by --init or resume)
    # with no validation data given, this share of each image's width (its right end) is held out
    # as a validation strip (core.train.holdout); 0 trains on everything without validation
    val_strip: float = 0.15
    # fine-tuning (--init) only: each starting weight w becomes shrink * w + perturb * w_new, with
    # w_new this run's own fresh initial weight (shrink and perturb: Ash & Adams, NeurIPS 2020);
    # 1 and 0 copy the starting model as it is (core.train.init.load_init_weights)
    init_shrink: float = 1.0
    init_perturb: float = 0.0
    # fine-tuning only: these weights keep this run's fresh initial values instead of the
    # starting model's: "decoder" (core.train.init.DECODER_PARTS) or name prefixes ("head")
    init_reset: tuple[str, ...] = ()

    @classmethod
    def paper(cls, **overrides: object) -> TrainConfig:
        """The paper's recipe (Ounkomol et al. 2018): Adam 0.001, MSE, constant lr, no augmentation."""
        recipe: dict[str, object] = {
            "augment": False,
            "optimizer": "adam",
            "schedule": "constant",
            "loss": "mse",
            "keep_best": False,
            "val_strip": 0.0,
        }
        return cls(**{**recipe, **overrides})  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        self.patch_shape = tuple(int(v) for v in self.patch_shape)  # type: ignore[assignment]
        self.init_reset = tuple(str(v) for v in self.init_reset)
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
        for name, known in (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("loss", LOSSES),
            ("weights_init", WEIGHTS_INITS),
        ):
            if getattr(self, name) not in known:
                raise LabelFreeError(
                    f"{name} must be one of {', '.join(known)}, got {getattr(self, name)!r}"
                )
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise LabelFreeError(f"weight decay must be 0 or more, got {self.weight_decay}")
        if not (0.0 <= self.val_strip < 0.5):
            raise LabelFreeError(
                f"the validation strip is a share of the image width from 0 (none) to below 0.5, "
                f"got {self.val_strip}"
            )
        if not (0.0 < self.init_shrink <= 1.0):
            raise LabelFreeError(
                f"init_shrink scales the starting model's weights: above 0 and at most 1, got "
                f"{self.init_shrink}"
            )
        if not (0.0 <= self.init_perturb <= 1.0):
            raise LabelFreeError(
                f"init_perturb is the share of fresh initial weights added to the starting "
                f"model's: 0 to 1, got {self.init_perturb}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LabelFreeError(f"the learning rate must be a positive number, got {self.lr}")
