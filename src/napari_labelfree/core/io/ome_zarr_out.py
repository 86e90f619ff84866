"""Predictions out as OME-Zarr (NGFF 0.4), written frame by frame, safe to interrupt and resume.

The store has axes t, c, z, y, x, the input's physical scale in micrometres, one channel per
model with its label and colour (omero metadata) and chunks of at most one channel of one frame,
so each frame is written on its own, by one process or by many (distributed workers each write
their own frames into the same store). The NGFF metadata comes from bioio-ome-zarr's writer
(already needed to read OME-Zarr); NGFF 0.4 on Zarr v2 because that is what napari-ome-zarr,
Fiji's MoBIE/N5 and older viewers read, and bioio reads 0.4 and 0.5 alike.

Interruption: the store is built under a hidden name beside the target (``.NAME.partial``) and
renamed to the target only when every frame is in, so a stopped run never leaves a half store at
the target's name. A frame counts as done once an empty marker file ``.labelfree-done/<t>`` is in
the partial store, written after the frame's chunks: resuming reopens the partial store and
predicts only the frames without a marker. Rerunning a frame rewrites the same chunks, so a task
that runs twice (a worker lost mid-run) leaves the same output.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelFreeError
from ..files import write_error

DONE_DIR = ".labelfree-done"
#: a chunk holds at most one channel of one frame, and at most this many bytes
MAX_CHUNK_BYTES = 64 << 20
#: napari colormap names -> OMERO colours (RRGGBB)
OMERO_COLOURS = {
    "blue": "2659FF",
    "cyan": "00E6E6",
    "magenta": "FF00FF",
    "green": "00FF00",
    "yellow": "FFD900",
    "red": "FF1A1A",
    "gray": "FFFFFF",
    "grey": "FFFFFF",
    "gray_r": "FFFFFF",
}
_FORMAT_VERSION = 1


def omero_colour(colour: str) -> str:
    """RRGGBB for a napari colormap name or an RRGGBB / #RRGGBB string (white when unknown)."""
    hex_ = colour.strip().lstrip("#").upper()
    if len(hex_) == 6 and all(ch in "0123456789ABCDEF" for ch in hex_):
        return hex_
    return OMERO_COLOURS.get(colour.strip().lower(), "FFFFFF")


def frame_chunks(shape_zyx: Sequence[int], itemsize: int = 4) -> tuple[int, int, int, int, int]:
    """TCZYX chunk shape: one channel of one frame, split along Z (then Y, X) to stay small."""
    z, y, x = (int(n) for n in shape_zyx)
    while z > 1 and z * y * x * itemsize > MAX_CHUNK_BYTES:
        z = (z + 1) // 2
    while (y > 1 or x > 1) and z * y * x * itemsize > MAX_CHUNK_BYTES:
        y, x = (y + 1) // 2, (x + 1) // 2
    return (1, 1, z, y, x)


def partial_path(path: Path) -> Path:
    """Where the store for ``path`` is built until every frame is in."""
    return path.parent / f".{path.name}.partial"


LOCK_NAME = ".labelfree-lock"
#: files at the top of a Zarr store (v2, v3): a folder without one is not a store
_STORE_MARKERS = (".zgroup", ".zattrs", ".zarray", "zarr.json")


def is_zarr_store(path: Path) -> bool:
    """True for a folder that holds a Zarr store at its top."""
    return path.is_dir() and any((path / m).is_file() for m in _STORE_MARKERS)


def check_replaceable(path: Path) -> None:
    """Refuse to replace ``path`` unless it is an OME-Zarr store (``--overwrite``).

    A folder merely named ``x.ome.zarr`` may hold anything of the user's: replacing it whole
    would delete their files.
    """
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise LabelFreeError(
            f"{path} is a file, not an OME-Zarr store; --overwrite replaces only a store: "
            "move it or choose another output name"
        )
    if not is_zarr_store(path):
        raise LabelFreeError(
            f"{path} is a folder but not a Zarr store; --overwrite replaces only a store, "
            "never a folder of other files: move them or choose another output name"
        )


class _StoreLock:
    """An exclusive lock on a partial store while one run writes into it (POSIX ``flock``).

    The kernel drops it when the process ends, however it ends: a lock left by a killed run
    never blocks the next one.
    """

    def __init__(self, store: Path) -> None:
        self.path = store / LOCK_NAME
        self._file: Any = None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        try:
            import fcntl
        except ImportError:  # Windows: no lock (a second run there is not detected)
            return True
        self._file = open(self.path, "a")  # noqa: SIM115 (held open while the run writes)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            self._file = None
            return False
        return True

    def release(self, remove: bool = False) -> None:
        if self._file is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        self._file.close()  # closing drops the lock
        self._file = None


def _in_use(store: Path) -> bool:
    """True if another live process holds the lock of the partial store ``store``."""
    if not store.is_dir():
        return False
    probe = _StoreLock(store)
    try:
        if not probe.acquire():
            return True
    except OSError:
        return False
    probe.release()
    return False


def _busy(path: Path, partial: Path) -> LabelFreeError:
    return LabelFreeError(
        f"another labelfree run is writing {path.name} (into {partial.name}); wait for it to "
        "finish or choose another output name"
    )


def read_done_frames(store: str | Path) -> set[int]:
    """Time points whose every channel is written in a store (marker files, see module notes)."""
    folder = Path(store) / DONE_DIR
    if not folder.is_dir():
        return set()
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}


def _labelfree_attrs(store: Path) -> dict | None:
    """The ``labelfree`` block of a store's root attributes, or None when there is none."""
    attrs = store / ".zattrs"
    try:
        block = json.loads(attrs.read_text()).get("labelfree")
    except (OSError, ValueError, AttributeError):
        return None
    return block if isinstance(block, dict) else None


@dataclass
class OmeZarrOutput:
    """An OME-Zarr being written one frame at a time; picklable, so workers can write into it.

    Use :func:`open_prediction_output` to make one. ``done_frames`` are the frames already in
    the store (from an interrupted run, when resuming); :meth:`write_frame` adds one;
    :meth:`commit` renames the finished store to ``path``.
    """

    path: Path
    work_path: Path
    names: list[str]
    shape_tczyx: tuple[int, int, int, int, int]
    done_frames: set[int] = field(default_factory=set)
    overwrite: bool = False
    _writer: Any = field(default=None, repr=False, compare=False)
    _lock: Any = field(default=None, repr=False, compare=False)

    @property
    def n_frames(self) -> int:
        return self.shape_tczyx[0]

    @property
    def missing_frames(self) -> list[int]:
        """Frames still to write, in order."""
        return [t for t in range(self.n_frames) if t not in self.done_frames]

    @property
    def complete(self) -> bool:
        return not self.missing_frames

    def write_frame(self, t: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write time point ``t``: one ZYX array per output name (each channel of the store)."""
        self.write_block(t, (0, 0, 0), arrays, whole=True)
        self.mark_done(t)

    def write_block(
        self,
        t: int,
        start_zyx: Sequence[int],
        arrays: Mapping[str, np.ndarray],
        whole: bool = False,
    ) -> None:
        """Write one Z-Y-X block of time point ``t`` (one array per output name, all one shape).

        The frame counts as done only once :meth:`mark_done` is called after its last block.
        Blocks written at once by several processes must each cover whole chunks (see
        ``chunks_zyx`` of :func:`open_prediction_output`). ``whole``: the block must be the frame.
        """
        if not 0 <= t < self.n_frames:
            raise ValueError(f"frame {t} outside 0..{self.n_frames - 1}")
        if set(arrays) != set(self.names):
            raise ValueError(f"got outputs {sorted(arrays)}, the store has {self.names}")
        zyx = self.shape_tczyx[2:]
        shape = np.shape(arrays[self.names[0]])
        stop = [int(s) + n for s, n in zip(start_zyx, shape, strict=True)]
        if (whole and tuple(shape) != tuple(zyx)) or not all(
            s >= 0 and e <= n for s, e, n in zip(start_zyx, stop, zyx, strict=True)
        ):
            raise ValueError(f"block of shape {shape} at {tuple(start_zyx)}, the store has {zyx}")
        block = np.empty((1, len(self.names), *shape), dtype=np.float32)
        for c, name in enumerate(self.names):
            arr = np.asarray(arrays[name])
            if arr.shape != tuple(shape):
                raise ValueError(f"{name}: block of shape {arr.shape}, the others {shape}")
            block[0, c] = arr
        if self.path == self.work_path:
            return  # a finished store reopened to resume: nothing is missing
        if self._writer is None:
            from bioio_ome_zarr.writers import OMEZarrWriter

            self._writer = OMEZarrWriter.open(str(self.work_path))
        region = (
            slice(t, t + 1),
            slice(0, len(self.names)),
            *(slice(int(s), e) for s, e in zip(start_zyx, stop, strict=True)),
        )
        self._writer.write_region(block, region)

    def mark_done(self, t: int) -> None:
        """Record frame ``t`` as whole on disk (after all its chunks are written)."""
        if self.path == self.work_path:
            return
        (self.work_path / DONE_DIR / str(t)).touch()
        self.done_frames.add(t)

    def refresh(self) -> set[int]:
        """Re-read the frames done (others, such as distributed workers, write them too)."""
        if self.path != self.work_path:
            self.done_frames = read_done_frames(self.work_path)
        return self.done_frames

    def commit(self) -> Path:
        """Mark the store complete and move it to ``path``; an error if frames are missing."""
        if self.path == self.work_path:
            return self.path
        self.refresh()
        if self.missing_frames:
            raise LabelFreeError(
                f"{self.path}: frames {_ranges(self.missing_frames)} are not written yet; "
                "the partial result is kept for resuming"
            )
        import zarr

        root = zarr.open_group(str(self.work_path), mode="r+", zarr_format=2)
        block = dict(root.attrs.get("labelfree", {}))
        block["complete"] = True
        root.attrs["labelfree"] = block
        shutil.rmtree(self.work_path / DONE_DIR, ignore_errors=True)
        if self._lock is not None:
            self._lock.release(remove=True)  # not part of the result
            self._lock = None
        (self.work_path / LOCK_NAME).unlink(missing_ok=True)
        _replace_dir(self.work_path, self.path, self.overwrite)
        self.work_path = self.path
        self._writer = None
        return self.path

    def close(self) -> None:
        """Let go of the store without committing (a partial one stays for resuming)."""
        self._writer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> OmeZarrOutput:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and self.complete:
            self.commit()
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_writer"] = None  # an open zarr handle does not travel; each process opens its own
        state["_lock"] = None  # the run's lock stays with the process that started the run
        return state


def open_prediction_output(
    path: str | Path,
    names: Sequence[str],
    colours: Sequence[str],
    shape_zyx: Sequence[int],
    voxel_size: Sequence[float | None],
    n_frames: int,
    resume: bool = False,
    overwrite: bool = False,
    chunks_zyx: Sequence[int] | None = None,
) -> OmeZarrOutput:
    """Start (or, resuming, reopen) the OME-Zarr that predictions of one input are written to.

    Parameters
    ----------
    path
        The store to produce, e.g. ``result.ome.zarr``.
    names, colours
        One channel per model output: its label (the structure) and its colour (a napari
        colormap name or RRGGBB).
    shape_zyx
        Z, Y, X size of each frame.
    voxel_size
        Physical voxel size in um (Z, Y, X) of the frames; None where unknown (scale 1 is written).
    n_frames
        Number of time points.
    resume
        Reopen the partial store of an interrupted run with the same names and shape and keep its
        finished frames (``done_frames``); a finished store at ``path`` counts as all done.
    overwrite
        Allow replacing an existing store at ``path`` (only when the new one is committed).
    chunks_zyx
        Chunk shape (Z, Y, X) for frames written in blocks by several processes at once: each
        block must cover whole chunks. None: at most one channel of one frame (64 MiB at most).

    Returns
    -------
    OmeZarrOutput
        Call ``write_frame`` for each missing frame, then ``commit``.
    """
    path = Path(path)
    names = [str(n) for n in names]
    if len(colours) != len(names):
        raise ValueError(f"{len(colours)} colours for {len(names)} channels")
    if len(set(names)) != len(names):
        raise ValueError(f"channel names must be distinct, got {names}")
    shape = (int(n_frames), len(names), *(int(n) for n in shape_zyx))
    if len(shape) != 5 or min(shape) < 1:
        raise ValueError(f"bad output shape {shape} (TCZYX)")
    scale = [float(v) if v is not None and np.isfinite(v) and v > 0 else None for v in voxel_size]
    expected: dict[str, Any] = {"names": names, "shape": list(shape), "voxel_size_um": scale}
    if chunks_zyx is not None:
        # blocks written at once must match the chunks: resuming with other blocks is refused
        expected["chunks_zyx"] = [
            min(int(c), n) for c, n in zip(chunks_zyx, shape[2:], strict=True)
        ]
    partial = partial_path(path)
    out = OmeZarrOutput(path, partial, names, shape, overwrite=overwrite)  # type: ignore[arg-type]
    if resume:
        if (
            path.exists()
            and _matches(path, expected)
            and (_labelfree_attrs(path) or {}).get("complete")
        ):
            return OmeZarrOutput(path, path, names, shape, set(range(shape[0])), overwrite)  # type: ignore[arg-type]
        if partial.is_dir():
            out._lock = _StoreLock(partial)
            if not out._lock.acquire():
                out._lock = None
                raise _busy(path, partial)
            if not _matches(partial, expected):
                out.close()
                raise LabelFreeError(
                    f"the unfinished {path.name} beside it was started with other models or "
                    "another image (or other blocks); start again without resuming to replace it"
                )
            out.done_frames = _whole_frames(partial, read_done_frames(partial))
            return out
    if path.exists() and not overwrite:
        raise LabelFreeError(
            f"{path} already exists; choose another output name (nothing was overwritten)"
        )
    check_replaceable(path)
    if partial.exists() or partial.is_symlink():
        if not partial.is_dir() or partial.is_symlink():
            raise LabelFreeError(
                f"{partial} is in the way (a file where the unfinished store goes); move or "
                "delete it"
            )
        if _in_use(partial):
            raise _busy(path, partial)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            shutil.rmtree(partial)  # an earlier run's leftover, not resumed: start it again
        _create_store(partial, names, colours, shape, scale, expected)
        out._lock = _StoreLock(partial)
        if not out._lock.acquire():  # another run made it in the meantime
            out._lock = None
            raise _busy(path, partial)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)  # nothing in it yet
        raise write_error(path, e) from None
    return out


def _whole_frames(store: Path, done: set[int]) -> set[int]:
    """The frames of ``done`` whose chunks are all in ``store``; the others lose their marker.

    A marker says the frame was written; a chunk deleted since (or lost in a copy) would read as
    zeros in the finished store, so its frame is predicted again.
    """
    from .zarr_chunks import missing_chunk_files, ome_zarr_level0

    found = ome_zarr_level0(store)
    if found is None:
        return set()  # not a store this can check: every frame is predicted again
    array, _ = found
    whole = set()
    for t in sorted(done):
        if missing_chunk_files(store, array, {0: t})[0] == 0:
            whole.add(t)
        else:
            (store / DONE_DIR / str(t)).unlink(missing_ok=True)
    return whole


def _matches(store: Path, expected: dict) -> bool:
    block = _labelfree_attrs(store)
    return block is not None and all(block.get(k) == v for k, v in expected.items())


def _create_store(
    store: Path,
    names: list[str],
    colours: Sequence[str],
    shape: tuple[int, ...],
    scale: list[float | None],
    expected: dict,
) -> None:
    """Create the empty store: arrays, NGFF metadata, our own block and the marker folder."""
    try:
        from bioio_ome_zarr.writers import Channel, OMEZarrWriter
    except ImportError as e:
        raise LabelFreeError(
            "writing OME-Zarr needs bioio-ome-zarr (Python 3.11 or newer); "
            "write an OME-TIFF instead or install it"
        ) from e

    channels = [
        Channel(
            label=name,
            color=omero_colour(colour),
            # predictions are z-scored: background near 0, structures a few SD above
            window={"min": -10, "max": 50, "start": 0, "end": 5},
        )
        for name, colour in zip(names, colours, strict=True)
    ]
    writer = OMEZarrWriter(
        str(store),
        level_shapes=shape,
        dtype=np.float32,
        chunk_shape=(1, 1, *expected["chunks_zyx"])
        if "chunks_zyx" in expected
        else frame_chunks(shape[2:]),
        zarr_format=2,
        image_name=store.name.removeprefix(".").removesuffix(".partial"),
        channels=channels,
        axes_names=["t", "c", "z", "y", "x"],
        axes_types=["time", "channel", "space", "space", "space"],
        axes_units=[None, None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 1.0, *(1.0 if v is None else v for v in scale)],
        attributes={"labelfree": {**expected, "complete": False, "format": _FORMAT_VERSION}},
    )
    writer.initialize()
    (store / DONE_DIR).mkdir()


def _replace_dir(src: Path, dst: Path, overwrite: bool) -> None:
    """Move folder ``src`` to ``dst``; an existing ``dst`` is moved aside first, then removed."""
    if not dst.exists():
        os.replace(src, dst)
        return
    if not overwrite:
        raise LabelFreeError(
            f"{dst} appeared while writing; nothing was overwritten (the result is in {src})"
        )
    old = dst.parent / f".{dst.name}.old"
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old) if old.is_dir() else old.unlink()


def _ranges(frames: Sequence[int]) -> str:
    """'0-3, 7' for [0, 1, 2, 3, 7]."""
    parts: list[str] = []
    start = prev = frames[0]
    for t in [*frames[1:], None]:
        if t is not None and t == prev + 1:
            prev = t
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if t is not None:
            start = prev = t
    return ", ".join(parts)
