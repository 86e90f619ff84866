"""The opened image: named TCZYX axes, channel names and physical sizes, read frame by frame.

An :class:`ImageSource` is what every reader in this package returns and what prediction, training
and the napari reader consume. Pixels are read one (T, C) frame at a time, so memory stays bounded
by a frame, not by the file; a source backed by a file keeps that file open across frames and is
closed with :meth:`ImageSource.close` (or a ``with`` block).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelFreeError

VoxelSize = tuple[float, float, float]


@dataclass
class ImageSource:
    """An opened image: TCZYX shape, channel names and physical sizes (um, Z, Y, X; None if unknown)."""

    path: Path | None
    shape_tczyx: tuple[int, int, int, int, int]
    channel_names: list[str]
    physical_sizes: tuple[float | None, float | None, float | None]
    backend: str = "array"  # what reads the pixels: "tifffile", "bioio" or "array"
    _read_frame: Callable[[int, int], np.ndarray] | None = field(default=None, repr=False)
    _array: np.ndarray | None = field(default=None, repr=False)
    _close: Callable[[], None] | None = field(default=None, repr=False)
    dtype: np.dtype | None = (
        None  # of the stored pixels, where the reader says (frames are float32)
    )
    # per channel what the file's acquisition metadata says it is (acquisition.TRANSMITTED or
    # FLUORESCENCE; None: not said) and its contrast method ("bright-field", "phase-contrast",
    # "dic", "fluorescence", ...); () where the file says nothing
    channel_light: tuple[str | None, ...] = ()
    channel_modality: tuple[str | None, ...] = ()
    # a file of several scenes (positions, tiles, series): their names, and the one opened
    scenes: tuple[str, ...] = ()
    scene: int = 0

    def scenes_note(self) -> str | None:
        """One line saying which scene of several was opened and how to choose another; None for
        a file of one scene."""
        if len(self.scenes) < 2:
            return None
        listed = ", ".join(f"{i}: {n}" for i, n in enumerate(self.scenes[:6]))
        more = f", ... ({len(self.scenes)} in all)" if len(self.scenes) > 6 else ""
        return (
            f"{self._label(scene=False)} holds {len(self.scenes)} scenes ({listed}{more}); this is scene "
            f"{self.scene} ({self.scenes[self.scene]}): choose another with --scene NAME or INDEX, "
            "or predict every one with --scene all"
        )

    @property
    def n_timepoints(self) -> int:
        return self.shape_tczyx[0]

    @property
    def n_channels(self) -> int:
        return self.shape_tczyx[1]

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.shape_tczyx[2:]  # type: ignore[return-value]

    @property
    def known_voxel_size(self) -> VoxelSize | None:
        """Physical voxel size if all three are known, else None."""
        if any(v is None or not np.isfinite(v) or v <= 0 for v in self.physical_sizes):
            return None
        return tuple(float(v) for v in self.physical_sizes)  # type: ignore[return-value]

    def light_of(self, c: int) -> str | None:
        """What the file's acquisition metadata says channel ``c`` is (None: not said)."""
        return self.channel_light[c] if c < len(self.channel_light) else None

    def modality_of(self, c: int) -> str | None:
        """The contrast method the file's acquisition metadata names for channel ``c``."""
        return self.channel_modality[c] if c < len(self.channel_modality) else None

    def declared(self, light: str) -> int | None:
        """The only channel the file's acquisition metadata says is ``light``
        (acquisition.TRANSMITTED or FLUORESCENCE); None when it names none or several."""
        found = [c for c, said in enumerate(self.channel_light) if said == light]
        return found[0] if len(found) == 1 else None

    def channel_index(self, channel: str | int | None) -> int:
        """Index of a channel given by name (case-insensitive) or index; None means the only one."""
        names = ", ".join(f"{i}:{n}" for i, n in enumerate(self.channel_names))
        if channel is None:
            if self.n_channels == 1:
                return 0
            raise LabelFreeError(
                f"{self._label()} has {self.n_channels} channels ({names}); "
                "choose the transmitted-light one by name or index",
                field="channel",
            )
        if isinstance(channel, str) and channel.strip().lstrip("-").isdigit():
            channel = int(channel)
        if isinstance(channel, int):
            if -self.n_channels <= channel < self.n_channels:
                return channel % self.n_channels
            raise LabelFreeError(
                f"{self._label()} has no channel {channel}; its channels are {names}",
                field="channel",
            )
        lowered = [n.lower() for n in self.channel_names]
        if channel.lower() in lowered:
            return lowered.index(channel.lower())
        raise LabelFreeError(
            f"{self._label()} has no channel named {channel!r}; its channels are {names}",
            field="channel",
        )

    def frame(self, t: int, c: int) -> np.ndarray:
        """One ZYX volume (time point t, channel c), as float32."""
        if self._array is not None:
            return np.asarray(self._array[t, c], dtype=np.float32)
        return self._read_frame(t, c)

    def close(self) -> None:
        """Release the open file (if any). Reading a frame afterwards opens it again."""
        if self._close is not None:
            self._close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _label(self, scene: bool = True) -> str:
        """The image as messages name it: its path, and which scene of several ("wells.czi
        [Position 3]": a plate's channel error names the position); ``scene`` False for what
        is said of the file as a whole."""
        label = str(self.path) if self.path else "the image"
        if scene and len(self.scenes) > 1:
            label += f" [{self.scenes[self.scene]}]"
        return label


def from_array(
    data: np.ndarray,
    axes: str = "TCZYX",
    channel_names: Sequence[str] | None = None,
    physical_sizes: Sequence[float | None] | None = None,
) -> ImageSource:
    """Wrap an in-memory array (axes a subset of TCZYX, in that order) as an ImageSource."""
    axes = axes.upper()
    if any(a not in "TCZYX" for a in axes) or len(set(axes)) != len(axes) or data.ndim != len(axes):
        raise LabelFreeError(f"axes {axes!r} do not describe an array of shape {data.shape}")
    order = [a for a in "TCZYX" if a in axes]
    arr = np.moveaxis(data, [axes.index(a) for a in order], range(len(order)))
    for i, a in enumerate("TCZYX"):
        if a not in axes:
            arr = np.expand_dims(arr, i)
    n_c = arr.shape[1]
    names = list(channel_names) if channel_names else [f"channel {i}" for i in range(n_c)]
    sizes = tuple(physical_sizes) if physical_sizes is not None else (None, None, None)
    return ImageSource(
        None,
        tuple(arr.shape),  # type: ignore[arg-type]
        names,
        sizes,  # type: ignore[arg-type]
        _array=arr,
        dtype=arr.dtype,
    )


def _clean_size(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def resolve_voxel_size(
    source: ImageSource,
    given: VoxelSize | None,
    fallback: VoxelSize,
) -> tuple[VoxelSize, str | None]:
    """Voxel size to use: given by the caller, else the file's, else ``fallback`` with a warning text."""
    if given is not None:
        return tuple(float(v) for v in given), None  # type: ignore[return-value]
    known = source.known_voxel_size
    if known is not None:
        return known, None
    sizes = [_clean_size(v) for v in source.physical_sizes]
    missing = [a for a, v in zip("ZYX", sizes, strict=True) if v is None]
    # keep what the file does say (often X and Y without Z); fill in only the missing axes
    vox = tuple(float(f) if v is None else v for v, f in zip(sizes, fallback, strict=True))
    if len(missing) == 3:
        what = "has no physical pixel sizes; assuming it is already at the model's voxel size"
    else:
        what = (
            f"has no physical size for {', '.join(missing)}; assuming the model's for "
            f"{'it' if len(missing) == 1 else 'them'}, which makes the voxel size"
        )
    # a file's property: said once for all its scenes (a plate of 96 is one line)
    msg = (
        f"{source._label(scene=False)} {what} {vox} um (Z, Y, X). Give the voxel size if it is not."
    )
    return vox, msg  # type: ignore[return-value]


def check_3d(source: ImageSource) -> None:
    """3D and 2.5D networks read z-stacks: refuse a single plane with a message that says so."""
    z, y, x = source.shape_zyx
    if z < 2:
        raise LabelFreeError(
            f"{source._label()} is 2D (one z-plane, {y}x{x}); 3D and 2.5D models need a z-stack "
            "of transmitted light. Open the z-stack (CZI, OME-TIFF or a multi-page TIFF), or "
            "predict it with a 2D model"
        )
