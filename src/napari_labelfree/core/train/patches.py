"""Training images as the network sees them: z-scored, at the model's voxel size, cut into patches.

A 2D network trains on patches one or more planes thick (each plane its own sample). A 2.5D
network reads ``window`` planes per output plane: its signal patches are ``window - 1`` planes
thicker than their target patches (:func:`signal_patch`), cut from signals whose ends repeat their
end planes as prediction does (:func:`pad_planes`). With a projection target the signal is the
``window`` planes around the stack's middle and the target its one projected plane (a 3D
network's: the whole stack, and the plane repeated at every plane).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..config import ModelSpec, Normalization
from ..data import ImagePair
from ..errors import LabelFreeError
from ..preprocess import (
    needs_resampling,
    normalize,
    resampled_shape,
    resize,
    z_projection,
    zscore,
)


def prepare_pair(
    pair: ImagePair,
    model_voxel: Sequence[float],
    patch_shape: Sequence[int],
    normalization: Normalization | None = None,
    kind: str = "unet3d",
    window: int = 1,
    projection: str = "",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Z-score signal and target, resample them to the model's voxel size, pad up to a patch.

    The signal is normalized as the model's ``normalization`` says (prediction does the same;
    the paper's per-image z-score by default), the target always per image.

    ``kind``, ``window`` and ``projection`` are the model's (``spec.kind``,
    ``architecture.in_planes``, ``spec.target_projection``): a 2D model keeps the images' z-step;
    with a projection the target (one plane, or a stack projected here) pairs with the signal's
    ``window`` planes around its middle (a 3D network's: every plane, the plane repeated).

    Returns
    -------
    signal, target, notices
        float32 ZYX arrays of equal shape (a 2.5D projection: the target one plane, the signal
        ``window``), at least ``patch_shape``; texts for the user.
    """
    label = pair.name or "an image pair"
    sig = np.asarray(pair.signal)
    tgt = np.asarray(pair.target)
    if sig.ndim != 3 or tgt.ndim != 3:
        raise LabelFreeError(
            f"{label}: signal {sig.shape} and target {tgt.shape} must both be 3D (Z, Y, X) z-stacks"
        )
    if kind == "unet2d" and pair.voxel_size is not None:
        model_voxel = (pair.voxel_size[0], *model_voxel[1:])  # planes are never resampled
    if projection:
        return _prepare_projection(
            pair, sig, tgt, model_voxel, normalization, window, projection, patch_shape, kind
        )
    if sig.shape != tgt.shape:
        raise LabelFreeError(
            f"{label}: signal shape {sig.shape} and target shape {tgt.shape} differ; "
            "training needs registered pairs of the same shape"
        )
    notices: list[str] = []
    sig, tgt = _at_model_grid(pair, sig, tgt, model_voxel, normalization)
    sig, tgt = _pad_to_patch(sig, tgt, patch_shape, label, notices)
    return np.ascontiguousarray(sig), np.ascontiguousarray(tgt), notices


def _at_model_grid(
    pair: ImagePair,
    sig: np.ndarray,
    tgt: np.ndarray,
    model_voxel: Sequence[float],
    normalization: Normalization | None,
    flat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The signal normalized as the model says, the target z-scored per image, both resampled
    to the model's voxel size (a ``flat`` target, one projected plane, in Y and X only)."""
    try:
        sig_n = normalize(sig, normalization, pair.voxel_size, model_voxel)
        tgt_n = zscore(tgt)
    except LabelFreeError as e:
        raise LabelFreeError(f"{pair.name or 'an image pair'}: {e}") from e
    if pair.voxel_size is not None and needs_resampling(pair.voxel_size, model_voxel):
        shape = resampled_shape(sig_n.shape, pair.voxel_size, model_voxel)
        sig_n, tgt_n = resize(sig_n, shape), resize(tgt_n, (1, *shape[1:]) if flat else shape)
    return sig_n, tgt_n


def _pad_to_patch(
    sig: np.ndarray,
    tgt: np.ndarray,
    patch_shape: Sequence[int],
    label: str,
    notices: list[str],
    flat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror-pad a pair up to the patch (Y and X only for a ``flat``, one-plane target).

    Mirror padding keeps image statistics at the border (zero padding would teach the network an
    artificial edge); the notice tells the user their image is small.
    """
    patch = tuple(int(p) for p in patch_shape)
    if flat:  # the signal's planes are the model's window, the target one plane
        patch = (1, *patch[1:])
    short = [max(0, p - n) for n, p in zip(tgt.shape, patch, strict=True)]
    if not any(short):
        return sig, tgt
    notices.append(
        f"{label}: {'x'.join(map(str, tgt.shape))} voxels at the model's voxel size is smaller "
        f"than the patch {tuple(patch_shape)}; mirror-padded to fit"
    )
    pad = [(s // 2, s - s // 2) for s in short]
    return np.pad(sig, pad, mode="symmetric"), np.pad(tgt, pad, mode="symmetric")


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
        """``n`` positions as (image index, z, y, x) of the patch's first voxel."""
        images = self.rng.choice(len(self.ranges), size=n, p=self.p)
        out = []
        for i in images:
            z, y, x = (int(self.rng.integers(0, r)) for r in self.ranges[int(i)])
            out.append((int(i), z, y, x))
        return out


def cut_patches(
    images: Sequence[torch.Tensor], where: Sequence[tuple[int, int, int, int]], patch: Sequence[int]
) -> torch.Tensor:
    """A (N, 1, Z, Y, X) batch of patches cut from images on whatever device they live on."""
    pz, py, px = patch
    return torch.stack([images[i][z : z + pz, y : y + py, x : x + px] for i, z, y, x in where])[
        :, None
    ]


def _prepare_projection(
    pair: ImagePair,
    sig: np.ndarray,
    tgt: np.ndarray,
    model_voxel: Sequence[float],
    normalization: Normalization | None,
    window: int,
    projection: str,
    patch_shape: Sequence[int],
    kind: str = "unet2.5d",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Signal: its ``window`` planes around the middle; target: one plane, its projection. A 3D
    network's signal is the whole stack, and its target the projection repeated at every plane
    (what it learns at each plane; prediction takes the maximum over z)."""
    label = pair.name or "an image pair"
    if sig.shape[1:] != tgt.shape[1:]:
        raise LabelFreeError(
            f"{label}: signal {sig.shape} and target {tgt.shape} differ in Y, X; training needs "
            "registered pairs"
        )
    notices: list[str] = []
    plane = z_projection(tgt, projection)
    sig, tgt = _at_model_grid(pair, sig, plane, model_voxel, normalization, flat=True)
    if kind == "unet3d":
        tgt = np.broadcast_to(tgt, sig.shape)
        sig, tgt = _pad_to_patch(sig, tgt, patch_shape, label, notices)
        return np.ascontiguousarray(sig), np.ascontiguousarray(tgt), notices
    z = sig.shape[0]
    planes = z // 2 + np.arange(window) - window // 2
    if planes[0] < 0 or planes[-1] >= z:
        notices.append(
            f"{label}: {z} planes at the model's z-step, fewer than the {window} the model reads; "
            "the end planes are repeated (as prediction does)"
        )
    sig = sig[np.clip(planes, 0, z - 1)]
    sig, tgt = _pad_to_patch(sig, tgt, patch_shape, label, notices, flat=True)
    return np.ascontiguousarray(sig), np.ascontiguousarray(tgt), notices


def planes_at_grid(
    shape_zyx: Sequence[int], voxel_size: Sequence[float] | None, model_voxel: Sequence[float]
) -> int:
    """The planes of a stack once at the model's voxel size (as :func:`prepare_pair` resamples)."""
    if voxel_size is not None and needs_resampling(voxel_size, model_voxel):
        return resampled_shape(shape_zyx, voxel_size, model_voxel)[0]
    return int(shape_zyx[0])


def whole_stack_window(planes: int) -> int:
    """A 2.5D window reading every plane of a stack (odd: an even stack repeats an end plane)."""
    return planes if planes % 2 else planes + 1


def check_one_plane_targets(pairs: Sequence[ImagePair], spec: ModelSpec) -> None:
    """Refuse, before any work, a one-plane target (a projection, a single widefield plane)
    beside a signal stack for a network that learns planes from planes: only a network trained
    against the projection (``spec.target_projection``; 2.5D or 3D) learns one plane from a
    stack."""
    for pair in pairs:
        planes, target_planes = np.shape(pair.signal)[0], np.shape(pair.target)[0]
        if target_planes == 1 < planes and not spec.target_projection:
            window = whole_stack_window(
                planes_at_grid(np.shape(pair.signal), pair.voxel_size, spec.voxel_size_um)
            )
            raise LabelFreeError(
                f"{pair.name or 'an image pair'}: the target is one plane and the signal a stack of "
                f"{planes}; a {spec.kind_label} network learns a stack from a stack. A 2.5D network "
                f"learns the plane from the whole stack: --kind 2.5d --target-projection max "
                f"--in-planes {window} (the Train widget's Network: the whole stack in, its "
                "projection out); a 3D network learns it at every plane, slower: --kind 3d "
                "--target-projection max",
                field="kind",
            )


def signal_patch(patch_shape: Sequence[int], window: int = 1) -> tuple[int, int, int]:
    """The signal patch giving a ``patch_shape`` output: ``window - 1`` planes more for 2.5D."""
    pz, py, px = (int(p) for p in patch_shape)
    return (pz + window - 1, py, px)


def pad_planes(signal: torch.Tensor, target_planes: int, window: int) -> torch.Tensor:
    """A ZYX signal with ``window // 2`` copies of its end planes at each end, unless it already
    has the ``window - 1`` planes more than its target that a 2.5D network reads (a projection)."""
    h = window // 2
    if h == 0 or signal.shape[0] == target_planes + 2 * h:
        return signal
    return torch.cat([signal[:1].expand(h, -1, -1), signal, signal[-1:].expand(h, -1, -1)])
