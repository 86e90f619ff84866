"""The network-kind options `labelfree init-model` and `labelfree train` share: --kind, --in-planes,
--target-projection, and a voxel size given as Z,Y,X or (2D) Y,X."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ..core.config import KIND_OPTIONS, PROJECTIONS

DEFAULT_IN_PLANES = 5  # a 2.5D network's window when none is given (VisCy's 2.5D models read 5)
FLAT_PATCH = (1, 128, 128)  # a 2D / 2.5D patch: one output plane, a larger field than 3D's


def voxel_size(text: str) -> tuple[float, ...]:
    """'Z,Y,X' or (a 2D model's) 'Y,X' in um, as a tuple of two or three positive numbers."""
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (2, 3) or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected three positive numbers Z,Y,X (or Y,X for a 2D model), got {text!r}"
        )
    return values


def add_kind_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kind",
        choices=tuple(KIND_OPTIONS),
        default="3d",
        help="network kind: 3d (a z-stack in, a z-stack out), 2d (each plane on its own) or 2.5d "
        "(a window of --in-planes planes in, its centre plane out) [3d]",
    )
    p.add_argument(
        "--in-planes",
        type=int,
        default=None,
        metavar="N",
        help=f"the z-planes a 2.5D network reads per output plane (odd) [{DEFAULT_IN_PLANES}]",
    )
    p.add_argument(
        "--target-projection",
        choices=PROJECTIONS,
        default=None,
        help="train against the z-projection (max or mean) of the target: one plane per stack "
        "(a one-plane target, e.g. a maximum projection, is taken as it is); 2.5D predicts it "
        "from the --in-planes planes around the stack's middle, 3D learns it at every plane "
        "and predicts their maximum (slower; a built-in 3D model can be fine-tuned to it)",
    )


def kind_settings(args: argparse.Namespace, voxel: tuple[float, ...]) -> dict[str, Any]:
    """Architecture keywords (name, in_planes), the spec's target_projection and voxel size.

    Raises LabelFreeError for a combination that cannot be (Y,X for a 3D network, --in-planes
    without 2.5D, ...); the messages name the flags.
    """
    from ..core.errors import LabelFreeError

    name = KIND_OPTIONS[args.kind]
    if len(voxel) == 2:
        if name != "unet2d":
            raise LabelFreeError(
                f"--voxel-size {','.join(map(str, voxel))} gives Y,X only: a {args.kind} network "
                "needs Z,Y,X (Y,X is for --kind 2d)"
            )
        voxel = (voxel[0], *voxel)  # a 2D network never resamples along z: Z is not used
    if args.in_planes is not None and name != "unet2.5d":
        raise LabelFreeError("--in-planes is for --kind 2.5d (a window of planes in)")
    if args.target_projection and name == "unet2d":
        raise LabelFreeError(
            "--target-projection is for --kind 2.5d and 3d (a stack in, one plane out); a 2D "
            "network reads one plane"
        )
    in_planes = (args.in_planes or DEFAULT_IN_PLANES) if name == "unet2.5d" else 1
    return {
        "architecture": {"name": name, "in_planes": in_planes},
        "target_projection": args.target_projection or "",
        "voxel_size_um": voxel,
    }


def data_voxel_size(voxel: tuple[float, ...] | None) -> tuple[float, float, float] | None:
    """A data voxel size given as Y,X (a 2D image) as Z,Y,X (its one plane has no z-step)."""
    if voxel is None or len(voxel) == 3:
        return voxel  # type: ignore[return-value]
    return (voxel[0], voxel[0], voxel[1])
