"""Reading microscopy files into named axes with physical sizes, and writing OME-TIFF.

Reading goes through bioio (CZI, OME-TIFF, TIFF and whatever other bioio readers are installed);
where bioio is absent but aicsimageio is installed, the same adapter uses that. Plain single-image
OME-TIFFs are read with tifffile alone (:mod:`.ome_tiff`), which spares every process bioio's
start-up. Frames are read lazily, one (T, C) at a time, so memory stays bounded by a frame, not by
the file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LabelFreeError
from .files import atomic_file

VoxelSize = tuple[float, float, float]


@dataclass
class ImageSource:
    """An opened image: TCZYX shape, channel names and physical sizes (um, Z, Y, X; None if unknown)."""

    path: Path | None
    shape_tczyx: tuple[int, int, int, int, int]
    channel_names: list[str]
    physical_sizes: tuple[float | None, float | None, float | None]
    backend: str = "array"  # what reads the pixels: "tifffile", "bioio", "aicsimageio" or "array"
    _read_frame: Callable[[int, int], np.ndarray] | None = field(default=None, repr=False)
    _array: np.ndarray | None = field(default=None, repr=False)
    dtype: np.dtype | None = (
        None  # of the stored pixels, where the reader says (frames are float32)
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

    def _label(self) -> str:
        return str(self.path) if self.path else "the image"


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
        dtype=arr.dtype,
        _array=arr,
    )


def _open_reader(path: Path) -> Any:
    try:
        from bioio import BioImage
    except ImportError:
        BioImage = None
    if BioImage is not None:
        try:
            return BioImage(path)
        except Exception as e:  # bioio raises many types for unreadable/unsupported files
            raise LabelFreeError(
                f"cannot read {path}: {e.__class__.__name__}: {e}. Is it a CZI, OME-TIFF or TIFF file? "
                "(install the bioio reader plugin for other formats)"
            ) from e
    try:
        from aicsimageio import AICSImage
    except ImportError as e:
        raise LabelFreeError("reading files needs bioio (pip install bioio bioio-ome-tiff)") from e
    try:
        return AICSImage(path)
    except Exception as e:
        raise LabelFreeError(f"cannot read {path}: {e}") from e


def open_image(path: str | Path) -> ImageSource:
    """Open a microscopy file lazily as TCZYX with channel names and physical sizes."""
    path = Path(path)
    if not path.exists():
        raise LabelFreeError(f"{path} does not exist; check the path")
    if path.is_dir() and not path.suffix == ".zarr":
        raise LabelFreeError(f"{path} is a folder; give an image file (CZI, OME-TIFF, TIFF)")
    from .ome_tiff import read_ome_tiff_header

    header = read_ome_tiff_header(path)
    if header is not None:
        shape, names, sizes, read_frame = header
        return ImageSource(path, shape, names, sizes, "tifffile", read_frame)
    reader = _open_reader(path)
    dims = reader.dims
    shape = tuple(int(getattr(dims, a, 1)) for a in "TCZYX")
    names = list(reader.channel_names or [])
    if len(names) != shape[1]:
        names = [f"channel {i}" for i in range(shape[1])]
    names = [str(n) if n else f"channel {i}" for i, n in enumerate(names)]
    pps = reader.physical_pixel_sizes
    sizes = tuple(_clean_size(getattr(pps, a, None)) for a in "ZYX")
    backend = "bioio" if type(reader).__module__.startswith("bioio") else "aicsimageio"
    if sizes[0] is None and sizes[1] == sizes[2] == 1.0:
        # a TIFF without resolution tags reports tifffile's default of 1 unit per pixel in Y and X:
        # that is no measurement, and keeping it would skip resampling at a made-up size
        sizes = (None, None, None)

    def read_frame(t: int, c: int) -> np.ndarray:
        data = reader.get_image_dask_data("ZYX", T=t, C=c)
        return np.asarray(data.compute(), dtype=np.float32)

    dtype = np.dtype(reader.dtype) if getattr(reader, "dtype", None) is not None else None
    return ImageSource(path, shape, names, sizes, backend, read_frame, dtype=dtype)  # type: ignore[arg-type]


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
    msg = f"{source._label()} {what} {vox} um (Z, Y, X). Give the voxel size if it is not."
    return vox, msg  # type: ignore[return-value]


def check_3d(source: ImageSource) -> None:
    """The networks are 3D: refuse a single plane with a message that says so."""
    z, y, x = source.shape_zyx
    if z < 2:
        raise LabelFreeError(
            f"{source._label()} is 2D (one z-plane, {y}x{x}); label-free models need a z-stack "
            "of transmitted light. Open the z-stack (CZI, OME-TIFF or a multi-page TIFF)"
        )


def ome_metadata(channel_names: Sequence[str], physical_sizes: Sequence[float | None]) -> dict:
    md: dict[str, Any] = {"axes": "TCZYX", "Channel": {"Name": list(channel_names)}}
    for axis, size in zip("ZYX", physical_sizes, strict=True):
        if size is not None:
            md[f"PhysicalSize{axis}"] = float(size)
            md[f"PhysicalSize{axis}Unit"] = "µm"
    return md


def write_ome_tiff(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    shape_tczyx: Sequence[int] | None = None,
    channel_names: Sequence[str] | None = None,
    physical_sizes: Sequence[float | None] = (None, None, None),
    dtype: Any = np.float32,
    overwrite: bool = False,
) -> Path:
    """Write a TCZYX OME-TIFF atomically (temporary file, then rename).

    ``frames`` is a TCZYX array or an iterable of CZYX arrays (one per time point, streamed to disk
    so a long time-lapse never sits in memory whole; then ``shape_tczyx`` is required).
    """
    import tifffile

    path = Path(path)
    if path.exists() and not overwrite:
        raise LabelFreeError(
            f"{path} already exists; choose another output name (nothing was overwritten)"
        )
    if isinstance(frames, np.ndarray):
        if frames.ndim != 5:
            raise ValueError(f"expected a TCZYX array, got shape {frames.shape}")
        shape_tczyx = frames.shape
        frames = iter(frames)
    if shape_tczyx is None:
        raise ValueError("shape_tczyx is required when frames is an iterable")
    t, c, z, y, x = (int(v) for v in shape_tczyx)
    names = list(channel_names) if channel_names else [f"channel {i}" for i in range(c)]
    if len(names) != c:
        raise ValueError(f"{len(names)} channel names for {c} channels")

    def pages() -> Iterator[np.ndarray]:
        n = 0
        for frame in frames:
            frame = np.asarray(frame, dtype=dtype)
            if frame.shape != (c, z, y, x):
                raise ValueError(f"frame of shape {frame.shape}, expected {(c, z, y, x)}")
            n += 1
            yield from frame.reshape(c * z, y, x)
        if n != t:
            raise ValueError(f"got {n} frames, expected {t}")

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tifffile.imwrite(
            tmp,
            data=pages(),
            shape=(t, c, z, y, x),
            dtype=dtype,
            ome=True,
            photometric="minisblack",
            metadata=ome_metadata(names, physical_sizes),
            bigtiff=t * c * z * y * x * np.dtype(dtype).itemsize > 2**31,
        )
        if path.exists() and not overwrite:
            raise LabelFreeError(f"{path} appeared while writing; nothing was overwritten")
    return path
