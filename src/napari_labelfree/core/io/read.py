"""Opening microscopy files (CZI, OME-TIFF, TIFF, OME-Zarr, ...) as an :class:`ImageSource`.

Reading goes through bioio (with its CZI, OME-TIFF, TIFF and OME-Zarr plugins, and whatever other
bioio readers are installed). Plain single-image OME-TIFFs are read with tifffile alone (:mod:`.ome_tiff`), which
spares every process bioio's start-up. A TIFF's pixels are read from one open file whichever reader
parsed its header; an OME-Zarr is read chunk by chunk from its store, so a frame never pulls in
the rest of the time-lapse.
"""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelFreeError
from .acquisition import ChannelAcquisition, channel_acquisition
from .hcs import plate_images
from .ome_tiff import open_checked_tiff, read_ome_tiff_header, tiff_planes_for
from .source import ImageSource, _clean_size

ZARR_SUFFIXES = (".zarr",)  # ".ome.zarr" ends with ".zarr" too
FORMATS = "CZI, OME-TIFF, TIFF or OME-Zarr"


def is_zarr(path: str | Path) -> bool:
    """True for an OME-Zarr store path (``x.zarr`` or ``x.ome.zarr``, a folder)."""
    return str(path).rstrip("/\\").lower().endswith(ZARR_SUFFIXES)


def _short(e: BaseException) -> str:
    """An exception as one short clause (bioio's messages run to a paragraph of advice)."""
    text = " ".join(str(e).split())
    first = text.split(". ")[0]
    if len(first) > 160:
        first = first[:157] + "..."
    return f"{e.__class__.__name__}: {first}" if first else e.__class__.__name__


def _open_reader(path: Path, reader: type | None = None) -> Any:
    """bioio's image for ``path`` (``reader``: the bioio reader plugin to use, else bioio's
    choice by the file's name)."""
    try:
        from bioio import BioImage
    except ImportError:
        # a dependency: absent only in a broken installation
        raise LabelFreeError(
            "reading this file needs bioio, which is not installed: reinstall napari-labelfree "
            "(pip install --force-reinstall napari-labelfree)"
        ) from None
    try:
        return BioImage(path) if reader is None else BioImage(path, reader=reader)
    except Exception as e:  # bioio raises many types for unreadable/unsupported files
        raise LabelFreeError(
            f"cannot read {path} ({_short(e)}); is it a {FORMATS} file? For other formats "
            "install their bioio reader plugin"
        ) from None


def _check_regular(path: Path) -> None:
    """Refuse what is not an image file or store before anything opens it.

    Opening a FIFO for reading blocks until something writes to it, and a device never ends:
    both would hang the reader.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise LabelFreeError(f"{path} does not exist; check the path") from None
    except OSError as e:
        raise LabelFreeError(f"cannot read {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        if not is_zarr(path):
            raise LabelFreeError(f"{path} is a folder; give an image file or store ({FORMATS})")
        _check_zarr_metadata(path)
        return
    if not stat.S_ISREG(mode):
        raise LabelFreeError(
            f"{path} is not a regular file (a pipe, socket or device); give an image file "
            f"({FORMATS})"
        )
    if path.stat().st_size == 0:
        raise LabelFreeError(f"{path} is empty (0 bytes); it was not written completely")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise LabelFreeError(f"cannot read {path}: {e.strerror or e}") from None


def _check_zarr_metadata(path: Path) -> None:
    """A store's top metadata must be there and be JSON (bioio would say it "does not support"
    the image, which sends the user looking for a plugin instead of at a damaged file)."""
    import json

    found = False
    for name in ("zarr.json", ".zgroup", ".zattrs"):
        meta = path / name
        if not meta.is_file():
            continue
        found = True
        try:
            json.loads(meta.read_bytes())
        except (ValueError, UnicodeDecodeError) as e:
            why = " ".join(str(e).split())[:80]
            raise LabelFreeError(
                f"cannot read {path}: its {name} is not valid JSON ({why}); the store's metadata "
                "is damaged (copied in part?)"
            ) from None
        except OSError as e:
            raise LabelFreeError(f"cannot read {path / name}: {e.strerror or e}") from None
    if not found:
        raise LabelFreeError(
            f"{path} is a folder but not a Zarr store (no zarr.json, .zgroup or .zattrs in it); "
            "give the store's own folder"
        )


def _guarded(
    path: Path, read: Callable[[int, int], np.ndarray]
) -> Callable[[int, int], np.ndarray]:
    """``read`` whose failures (a file cut short past its header) are one clear error."""

    def read_frame(t: int, c: int) -> np.ndarray:
        try:
            return read(t, c)
        except (LabelFreeError, MemoryError):
            raise
        except Exception as e:  # readers raise many types for damaged data
            raise LabelFreeError(
                f"cannot read time point {t}, channel {c} of {path} ({_short(e)}); the file may "
                "be truncated or corrupt"
            ) from None

    return read_frame


def open_image(path: str | Path, scene: str | int | None = None) -> ImageSource:
    """Open a microscopy file lazily as TCZYX with channel names and physical sizes.

    The returned source reads one (T, C) frame at a time and keeps the file open between frames;
    close it (or use it in a ``with`` block) to release the file early. A file that is not
    regular, empty, truncated, corrupt or RGB is refused with a :class:`LabelFreeError`.

    A file of several scenes (a multi-position CZI, a multi-series OME-TIFF) opens ``scene`` (its
    name or index; the first when None); the source lists them all (``ImageSource.scenes``).
    """
    path = Path(path)
    _check_regular(path)
    if is_zarr(path) and (images := plate_images(path)) is not None:
        return _open_plate_image(path, images, scene)
    tf = None if path.is_dir() else open_checked_tiff(path)
    # the fast path reads files of one scene; a scene asked for by name is bioio's to find
    first = scene is None or str(scene).strip() == "0"
    header = read_ome_tiff_header(path, tf) if tf is not None and first else None

    if header is not None:
        shape, names, sizes, planes, acquisition = header
        return ImageSource(
            path,
            shape,
            names,
            sizes,
            "tifffile",
            _guarded(path, lambda t, c: planes.read_frame(t, c, shape[2])),
            _close=planes.close,
            dtype=getattr(planes, "dtype", None),
            **_said(acquisition),
        )
    if tf is not None:
        tf.close()  # checked; bioio opens the file its own way
    reader = _open_reader(path)
    try:
        return _from_reader(path, reader, scene)
    except LabelFreeError:
        raise
    except Exception as e:  # a header bioio opened but cannot make sense of
        raise LabelFreeError(
            f"cannot read {path} ({_short(e)}); the file may be truncated or corrupt"
        ) from None


def _open_plate_image(path: Path, images: list[str], scene: str | int | None) -> ImageSource:
    """One image of an OME-Zarr plate (core.io.hcs), by index or path ("A/1/0"; the first when
    None), as a scene of the plate: the source's path is the plate's, so that it opens again
    by path and scene (a Dask worker, a resumed run)."""
    if not images:
        raise LabelFreeError(
            f"{path} is an OME-Zarr plate whose wells list no images; open one image of it (a "
            "folder such as A/1/0) instead"
        )
    index = 0 if scene is None else scene_index(path, images, scene)
    try:
        from bioio_ome_zarr import Reader
    except ImportError:  # a dependency: absent only in a broken installation
        Reader = None  # noqa: N806 (bioio's class name)
    image = path / images[index]
    try:
        source = _from_reader(image, _open_reader(image, Reader), zarr=True)
    except LabelFreeError:
        raise
    except Exception as e:  # an image group bioio opened but cannot make sense of
        raise LabelFreeError(
            f"cannot read {image} ({_short(e)}); the plate may be incomplete or corrupt"
        ) from None
    several = len(images) > 1
    return dataclasses.replace(
        source, path=path, scenes=tuple(images) if several else (), scene=index if several else 0
    )


def scene_index(path: Path, names: Sequence[str], scene: str | int) -> int:
    """The index of ``scene`` (an index, or a name, case-insensitive) among ``names``."""
    text = str(scene).strip()
    if text.lstrip("-").isdigit() and -len(names) <= int(text) < len(names):
        return int(text) % len(names)
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    listed = ", ".join(f"{i}: {n}" for i, n in enumerate(names))
    raise LabelFreeError(f"{path} has no scene {text!r}; its scenes are {listed}", field="scene")


def _scene_ids(reader: Any) -> list[str]:
    """The reader's scene ids; one scene where it cannot list them (bioio-czi 2.1 raises for a
    CZI written by libCZI, which has no scene metadata: its one image is read as before)."""
    try:
        return [str(s) for s in reader.scenes or ()] or ["scene 0"]
    except Exception:
        return ["scene 0"]


def _scene_names(reader: Any) -> list[str]:
    """The scenes' names: the OME images' own (e.g. "Position 2") where every scene has one,
    else the reader's ids ("Image:1")."""
    ids = _scene_ids(reader)
    try:
        names = [str(image.name or "") for image in reader.ome_metadata.images]
    except Exception:  # no OME model for this format, or one bioio cannot build
        return ids
    if len(names) == len(ids) and all(names) and len(set(names)) == len(names):
        return names
    return ids


def _from_reader(
    path: Path, reader: Any, scene: str | int | None = None, zarr: bool | None = None
) -> ImageSource:
    """The source of ``reader``'s image (``scene`` of several); ``zarr``: an OME-Zarr image
    (None: judged by the name, which an image inside a plate does not have)."""
    scenes: list[str] = []
    if len(_scene_ids(reader)) > 1 or scene is not None:
        scenes = _scene_names(reader)
        if scene is not None:
            index = scene_index(path, scenes, scene)
            if index != getattr(reader, "current_scene_index", 0):
                reader.set_scene(index)
    opened = int(getattr(reader, "current_scene_index", 0)) if scenes else 0
    scenes_said = {"scenes": tuple(scenes), "scene": opened} if len(scenes) > 1 else {}
    dims = reader.dims
    shape = tuple(int(getattr(dims, a, 1)) for a in "TCZYX")
    samples = int(getattr(dims, "S", 1) or 1)
    if samples > 1:
        raise LabelFreeError(
            f"{path} holds colour (RGB) images, {samples} samples per pixel; label-free models "
            "read one grayscale transmitted-light channel: save the z-stack as grayscale and "
            "open that"
        )
    names = list(reader.channel_names or [])
    if len(names) != shape[1]:
        names = [f"channel {i}" for i in range(shape[1])]
    names = [str(n) if n else f"channel {i}" for i, n in enumerate(names)]
    pps = reader.physical_pixel_sizes
    sizes = tuple(_clean_size(getattr(pps, a, None)) for a in "ZYX")
    backend = "bioio"
    if sizes[0] is None and sizes[1] == sizes[2] == 1.0:
        # a TIFF without resolution tags reports tifffile's default of 1 unit per pixel in Y and X:
        # that is no measurement, and keeping it would skip resampling at a made-up size
        sizes = (None, None, None)
    dtype = np.dtype(reader.dtype) if getattr(reader, "dtype", None) is not None else None
    said = _said(_channel_acquisition(reader, shape[1]))
    planes = _tiff_planes(path, reader)
    if planes is not None:
        return ImageSource(
            path,
            shape,  # type: ignore[arg-type]
            names,
            sizes,
            backend,
            _guarded(path, lambda t, c: planes.read_frame(t, c, shape[2])),
            _close=planes.close,
            dtype=dtype,
            **said,
            **scenes_said,
        )

    check_chunks = _chunk_check(path) if (is_zarr(path) if zarr is None else zarr) else None

    def read_frame(t: int, c: int) -> np.ndarray:
        if check_chunks is not None:
            check_chunks(t, c)
        data = reader.get_image_dask_data("ZYX", T=t, C=c)
        return np.asarray(data.compute(), dtype=np.float32)

    return ImageSource(
        path,
        shape,  # type: ignore[arg-type]
        names,
        sizes,  # type: ignore[arg-type]
        backend,
        _guarded(path, read_frame),
        dtype=dtype,
        **said,
        **scenes_said,
    )


def _channel_acquisition(reader: Any, n_channels: int) -> ChannelAcquisition:
    """What the file's acquisition metadata says of each channel (acquisition.py)."""
    try:
        metadata = reader.metadata  # CZI: its XML; OME readers: an ome_types model
    except Exception:  # a plugin that cannot give it: judged by names and pixels
        return ChannelAcquisition()
    return channel_acquisition(metadata, n_channels)


def _said(acquisition: ChannelAcquisition) -> dict[str, tuple[str | None, ...]]:
    """ImageSource's keyword arguments for what the metadata says of the channels."""
    return {"channel_light": acquisition.light, "channel_modality": acquisition.modality}


def _chunk_check(path: Path) -> Callable[[int, int], None] | None:
    """For a local OME-Zarr: refuse a frame whose missing chunks leave it undefined or blank.

    Zarr (v2 and v3 specifications alike) reads a chunk absent from the store as the array's
    fill value, and zarr-python 3 leaves out every chunk that holds only the fill value (its
    default ``write_empty_chunks=False``): such a frame is read as Zarr defines it. Refused are
    what cannot be read: chunks missing where the array defines no fill value (Zarr v2's
    ``"fill_value": null``: their pixels are undefined), and a frame with none of its chunks
    stored (a blank image, nothing to predict from: most likely a store copied in part).
    """
    from .zarr_chunks import missing_chunk_files, ome_zarr_level0

    found = ome_zarr_level0(path)
    if found is None:
        return None
    array, axes = found
    fill = array.metadata.fill_value

    def check(t: int, c: int) -> None:
        fixed = {axes.index(a): i for a, i in (("t", t), ("c", c)) if a in axes}
        missing, total = missing_chunk_files(path, array, fixed)
        if not missing:
            return
        where = f"time point {t}, channel {c} of {path}"
        if fill is None:
            raise LabelFreeError(
                f"cannot read {where}: {missing} of its {total} chunks are not in the store and "
                "the array defines no fill value, so their pixels are undefined (copied or "
                "written only in part?); copy or write it again"
            )
        if missing == total:
            raise LabelFreeError(
                f"{where} has none of its {total} chunks in the store: Zarr reads it as the fill "
                f"value {fill} everywhere, a blank image with nothing to predict from (copied "
                "only in part?); copy or write it again, or choose another time point"
            )

    return check


def _tiff_planes(path: Path, reader: Any) -> Any:
    """tifffile planes for a TIFF bioio opened, when they provably match bioio's axes."""
    native = getattr(reader, "reader", None)  # bioio's plugin reader: the file's own axes
    try:
        order, native_shape = native.dims.order, native.dims.shape
        scene = int(native.current_scene_index)
    except Exception:
        return None
    return tiff_planes_for(path, order, native_shape, scene)
