"""Training / evaluation data: the pair type, and registered pairs read from files or a CSV table.

:class:`ImagePair` is what training and evaluation take (no torch here). Two forms on disk, as in
the paper's data tables:

* an image file holding both channels (CZI, OME-TIFF, TIFF), the signal and target chosen by name
  or index; every time point becomes one pair;
* a CSV table with columns ``signal`` and ``target`` (paths, relative to the CSV's folder) and
  optional ``signal_channel`` / ``target_channel`` columns (name or index, overriding the defaults)
  and ``scene`` (one scene of files of several; empty: every scene).
  Signal and target may be the same file (two channels) or two files.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LabelFreeError
from .io import ImageSource, VoxelSize, open_image
from .io.acquisition import FLUORESCENCE, TRANSMITTED


@dataclass
class ImagePair:
    """One registered signal/target pair: ZYX arrays of raw intensities.

    ``voxel_size`` is in um (Z, Y, X); None means the images are already at the model's voxel size.
    """

    signal: np.ndarray
    target: np.ndarray
    voxel_size: tuple[float, float, float] | None = None
    name: str = ""
    # the signal's contrast method where its file's acquisition metadata says (core.io.acquisition)
    modality: str | None = None


def pairs_up(signal_tzyx: Sequence[int], target_tzyx: Sequence[int]) -> bool:
    """Whether a target of ``target_tzyx`` (T, Z, Y, X) can pair with a signal of ``signal_tzyx``:
    the same time points and field, and as many planes or one (a projection of the stack, which
    a 2.5D network learns from it: core.train.patches.check_one_plane_targets)."""
    (ts, *zyx_s), (tt, *zyx_t) = signal_tzyx, target_tzyx
    return ts == tt and zyx_s[1:] == zyx_t[1:] and zyx_t[0] in (zyx_s[0], 1)


@dataclass(frozen=True)
class PairSpec:
    """Where one pair lives on disk (one row of a data table)."""

    signal: Path
    target: Path
    signal_channel: str | int | None
    target_channel: str | int | None
    # one scene of files of several (name or index; the target's scene of the same index): a
    # plate's wells split into training and test tables; None: every scene
    scene: str | None = None


def _channel(source: ImageSource, channel: str | int | None, role: str) -> int:
    if channel is None and source.n_channels > 1:
        # the file's acquisition metadata may name the only transmitted-light (signal) or
        # fluorescence (target) channel
        channel = source.declared(TRANSMITTED if role == "signal" else FLUORESCENCE)
    if channel is None and source.n_channels > 1:
        names = ", ".join(f"{i}:{n}" for i, n in enumerate(source.channel_names))
        raise LabelFreeError(
            f"{source._label()} has {source.n_channels} channels ({names}); choose the {role} channel "
            f"by name or index (--{role}-channel, or a {role}_channel column in the CSV)"
        )
    try:
        return source.channel_index(channel)
    except LabelFreeError as e:
        raise LabelFreeError(f"{role} channel: {e}") from e


def read_table(
    csv_path: str | Path,
    signal_channel: str | int | None = None,
    target_channel: str | int | None = None,
) -> list[PairSpec]:
    """Rows of a CSV data table (columns signal, target; optional signal_channel,
    target_channel, scene)."""
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip().lower() for c in (reader.fieldnames or [])]
            rows = [
                {(k or "").strip().lower(): (v or "").strip() for k, v in r.items()} for r in reader
            ]
    except OSError as e:
        raise LabelFreeError(f"cannot read the data table {csv_path}: {e}") from e
    if "signal" not in fields or "target" not in fields:
        raise LabelFreeError(
            f"the data table {csv_path} needs columns 'signal' and 'target' (paths); it has {fields}"
        )
    if not rows:
        raise LabelFreeError(f"the data table {csv_path} has no rows")
    out = []
    for i, r in enumerate(rows, start=2):
        if not r["signal"] or not r["target"]:
            raise LabelFreeError(f"{csv_path} line {i}: empty signal or target path")
        out.append(
            PairSpec(
                signal=(csv_path.parent / r["signal"]).resolve(),
                target=(csv_path.parent / r["target"]).resolve(),
                signal_channel=r.get("signal_channel") or signal_channel,
                target_channel=r.get("target_channel") or target_channel,
                scene=r.get("scene") or None,
            )
        )
    return out


def expand(
    paths: Sequence[str | Path], signal_channel: str | int | None, target_channel: str | int | None
) -> list[PairSpec]:
    """DATA arguments (image files or CSV tables) as pair specs."""
    specs: list[PairSpec] = []
    for p in paths:
        p = Path(p)
        if p.suffix.lower() == ".csv":
            specs.extend(read_table(p, signal_channel, target_channel))
        else:  # both channels in one file: a channel not given is the one its metadata names
            specs.append(PairSpec(p, p, signal_channel, target_channel))
    if not specs:
        raise LabelFreeError("no training data given")
    return specs


def load_pairs(
    specs: Sequence[PairSpec],
    voxel_size: VoxelSize | None = None,
) -> tuple[list[ImagePair], list[str]]:
    """Read every pair (all time points) as float32 ZYX arrays.

    Parameters
    ----------
    specs
        Pairs from :func:`expand` / :func:`read_table`.
    voxel_size
        Voxel size (um, Z, Y, X) of the data where the files lack one (or to override theirs).

    Returns
    -------
    pairs, notices
        The pairs (voxel size None where unknown: taken to be the model's) and texts to show the user.
    """
    pairs: list[ImagePair] = []
    notices: list[str] = []
    for spec in specs:
        sig_src = open_image(spec.signal, spec.scene)
        same_file = spec.target == spec.signal
        tgt_src = sig_src if same_file else open_image(spec.target)
        # a file of several scenes (positions): each scene is a pair, with the target's same
        # scene; a table's row may name one scene (a plate's wells split into train and test)
        n_scenes = max(1, len(sig_src.scenes))
        if not same_file and max(1, len(tgt_src.scenes)) != n_scenes:
            raise LabelFreeError(
                f"signal {spec.signal.name} holds {n_scenes} scene(s) and target "
                f"{spec.target.name} {max(1, len(tgt_src.scenes))}; pair files of as many scenes "
                "(each scene of the signal with the same scene of the target)"
            )
        for k in [sig_src.scene] if spec.scene is not None else range(n_scenes):
            if k != sig_src.scene:
                sig_src = open_image(spec.signal, k)
            if same_file:
                tgt_src = sig_src
            elif k != tgt_src.scene:
                tgt_src = open_image(spec.target, k)
            pairs += _scene_pairs(spec, sig_src, tgt_src, voxel_size, notices)
    return pairs, notices


def _scene_pairs(
    spec: PairSpec,
    sig_src: ImageSource,
    tgt_src: ImageSource,
    voxel_size: VoxelSize | None,
    notices: list[str],
) -> list[ImagePair]:
    """One pair per time point of one scene of a signal and target file (notices appended)."""
    cs = _channel(sig_src, spec.signal_channel, "signal")
    ct = _channel(tgt_src, spec.target_channel, "target")
    if sig_src is tgt_src and cs == ct:
        raise LabelFreeError(
            f"{spec.signal}: signal and target are the same channel ({cs}); choose two channels"
        )
    if not pairs_up(
        (sig_src.n_timepoints, *sig_src.shape_zyx), (tgt_src.n_timepoints, *tgt_src.shape_zyx)
    ):
        raise LabelFreeError(
            f"signal {spec.signal.name} (T={sig_src.n_timepoints}, ZYX={sig_src.shape_zyx}) and target "
            f"{spec.target.name} (T={tgt_src.n_timepoints}, ZYX={tgt_src.shape_zyx}) differ in shape; "
            "the pair must be registered images of the same size (the target may be one plane, "
            "a projection of the stack)"
        )
    vox = voxel_size or sig_src.known_voxel_size
    if vox is None:
        notices.append(
            f"{spec.signal.name} has no physical pixel sizes; taking it to be at the model's voxel "
            "size (give --data-voxel-size Z,Y,X if it is not)"
        )
    modality = sig_src.modality_of(cs)
    label = (
        spec.signal.name if spec.target == spec.signal else f"{spec.signal.name}|{spec.target.name}"
    )
    if sig_src.scenes:
        label = f"{label} [{sig_src.scenes[sig_src.scene]}]"
    pairs = []
    for t in range(sig_src.n_timepoints):
        name = label if sig_src.n_timepoints == 1 else f"{label} t={t}"
        pairs.append(ImagePair(sig_src.frame(t, cs), tgt_src.frame(t, ct), vox, name, modality))
    return pairs


NOT_RECORDED = "not recorded"  # a training image whose file did not name its contrast method


def modality_counts(pairs: Sequence[ImagePair]) -> dict[str, int]:
    """How many pairs' signals are of each contrast method their files' metadata names ("not
    recorded" for the rest); {} when no file names one."""
    counts: dict[str, int] = {}
    for pair in pairs:
        key = pair.modality or NOT_RECORDED
        counts[key] = counts.get(key, 0) + 1
    return counts if any(p.modality for p in pairs) else {}


def split_validation(
    pairs: list[ImagePair], fraction: float, seed: int = 0
) -> tuple[list[ImagePair], list[ImagePair]]:
    """Hold out ``fraction`` of the pairs (at least one, at most all but one) for validation."""
    if not 0.0 < fraction < 1.0:
        raise LabelFreeError(f"--val-fraction must be between 0 and 1, got {fraction}")
    if len(pairs) < 2:
        raise LabelFreeError(
            "--val-fraction needs at least two image pairs; give --val DATA instead"
        )
    n_val = min(len(pairs) - 1, max(1, int(round(fraction * len(pairs)))))
    order = np.random.default_rng(seed).permutation(len(pairs))
    val_idx = set(order[:n_val].tolist())
    return (
        [p for i, p in enumerate(pairs) if i not in val_idx],
        [p for i, p in enumerate(pairs) if i in val_idx],
    )
