"""Reading TIFF pixels with tifffile from one open file, and plain OME-TIFF headers without bioio.

Most files users predict (and everything ``labelfree`` writes) are single-image OME-TIFFs. Opening
them through bioio costs ~1.8 s of imports (ome_types, dask, xarray, pint) in every process, a
third of a whole `labelfree predict` of a 64x256x256 stack on a 2-core CPU. tifffile is already
loaded for writing, so these files are read with it: the shape and axes from tifffile, channel
names and physical sizes from the OME-XML, and a frame's pages only. Anything this module does not
handle for certain (several images or series, RGB samples, unknown units, missing pages) returns
None, and bioio reads the file as before.

Whichever reader parsed the header, a TIFF's pixels are read through :class:`TiffPlanes`: the file
is opened and its pages indexed once, then each frame reads its own pages. bioio's TIFF readers
re-open and re-parse the whole file for every frame, which made reading frame t of a 3000-frame
file take seconds (O(T) per frame, O(T^2) for a time-lapse).
"""

from __future__ import annotations

import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import LabelFreeError
from .acquisition import ChannelAcquisition, channel_acquisition

# OME length units -> micrometres (the OME default unit is um)
_TO_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "Å": 1e-4, "mm": 1e3, "cm": 1e4, "m": 1e6, "pm": 1e-6}


class TiffPlanes:
    """One TIFF series kept open, its pages indexed once; frames read by plane index.

    Parameters
    ----------
    path
        The TIFF file.
    plane_axes, plane_shape
        The series' axes before Y and X (a subset of T, C, Z, in the file's order) and their sizes:
        page k of the series is the plane at ``np.unravel_index(k, plane_shape)``.
    tiff
        An already open ``tifffile.TiffFile`` of ``path`` to keep (saves parsing the file twice).
    series
        Index of the series in the file.
    """

    def __init__(
        self,
        path: Path,
        plane_axes: str,
        plane_shape: Sequence[int],
        tiff: object | None = None,
        series: int = 0,
    ) -> None:
        self.path = path
        self.plane_axes = plane_axes
        self.plane_shape = tuple(int(n) for n in plane_shape)
        self.series = series
        self._tiff = tiff
        # napari reads frames from dask threads: one file position, so one read at a time
        self._lock = threading.Lock()

    @property
    def dtype(self) -> np.dtype | None:
        """The stored pixels' dtype (complex input must be refused, not cast to float)."""
        import tifffile

        with self._lock:
            if self._tiff is None:
                self._tiff = tifffile.TiffFile(self.path)
            return np.dtype(self._tiff.series[self.series].dtype)

    def page_index(self, t: int, c: int, z: int) -> int:
        """Index of the (t, c, z) plane among the series' pages, in the file's own plane order."""
        at = {"T": t, "C": c, "Z": z}
        if not self.plane_axes:
            return 0
        return int(np.ravel_multi_index([at[a] for a in self.plane_axes], self.plane_shape))

    def read_frame(self, t: int, c: int, n_z: int) -> np.ndarray:
        """ZYX float32 planes (t, c, 0..n_z-1)."""
        import tifffile

        keys = [self.page_index(t, c, z) for z in range(n_z)]
        with self._lock:
            if self._tiff is None:
                self._tiff = tifffile.TiffFile(self.path)
            data = self._tiff.asarray(series=self.series, key=keys, maxworkers=1)
        return np.asarray(data, dtype=np.float32).reshape(n_z, *data.shape[-2:])

    def close(self) -> None:
        with self._lock:
            if self._tiff is not None:
                self._tiff.close()
                self._tiff = None


# what tifffile logs (and then carries on past) when a file is cut short or its header lies
_DAMAGE_WORDS = ("invalid", "corrupt", "missing", "truncat", "failed to read", "out of range")


@contextmanager
def _tifffile_complaints() -> Iterator[list[str]]:
    """Collect tifffile's warnings instead of printing them; yields the list they land in."""
    logger = logging.getLogger("tifffile")
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep(logging.WARNING)
    old_propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield said
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate


def _damaged(path: Path) -> LabelFreeError:
    return LabelFreeError(
        f"{path} is truncated or corrupt (its header describes more data than the file holds); "
        "copy it again from the microscope or its original location"
    )


def check_tiff(tf: object, path: Path) -> None:
    """Refuse a TIFF that is cut short, whose header lies, or that holds RGB samples.

    tifffile reads such files leniently (it logs a warning and zero-fills or drops what is
    missing), which would predict on a made-up image, call a truncated z-stack 2D, or allocate
    the 100,000 time points a header claims for a 16-page file. Costs one pass over the page
    index, which every reader of the file makes anyway.
    """
    with _tifffile_complaints() as said:
        try:
            series = tf.series[0] if tf.series else None
            pages = list(series.pages) if series is not None else []
            n_pages = len(tf.pages)
        except Exception as e:  # tifffile raises many types for a damaged file
            raise LabelFreeError(
                f"{path} is not a readable TIFF ({e.__class__.__name__}: {e}); it may be "
                "truncated or corrupt"
            ) from None
    if series is None or not pages or n_pages == 0:
        raise LabelFreeError(f"{path} holds no images; it may be truncated or corrupt")
    if any(page is None for page in pages) or any(
        any(w in m.lower() for w in _DAMAGE_WORDS) for m in said
    ):
        raise _damaged(path)
    size = path.stat().st_size
    _check_imagej_count(tf, path, size)
    for page in pages:
        offsets = getattr(page, "dataoffsets", ())
        counts = getattr(page, "databytecounts", ())
        if any(o + n > size for o, n in zip(offsets, counts, strict=False)):
            raise _damaged(path)
    samples = dict(zip(series.axes, series.shape, strict=False)).get("S", 1)
    if samples > 1:
        raise LabelFreeError(
            f"{path} holds colour (RGB) images, {samples} samples per pixel; label-free models "
            "read one grayscale transmitted-light channel: save the z-stack as grayscale (one "
            "sample per pixel, or the colours as separate channels) and open that"
        )


def _check_imagej_count(tf: object, path: Path, size: int) -> None:
    """An ImageJ header's image count must fit the file (tifffile trusts the pages instead).

    ImageJ writes files over 4 GB with one page directory and the images one after another, so
    the count is checked against the bytes the images need, not against the pages.
    """
    meta = getattr(tf, "imagej_metadata", None) or {}
    try:
        images = int(meta.get("images", 0))
    except (TypeError, ValueError):
        raise _damaged(path) from None
    n_pages = len(tf.pages)
    if images <= n_pages:
        return
    first = tf.pages.first
    plane_bytes = int(np.prod(first.shape)) * first.dtype.itemsize if first.dtype else 0
    start = first.dataoffsets[0] if first.dataoffsets else 0
    if start + images * plane_bytes > size:
        raise _damaged(path)


def open_checked_tiff(path: Path) -> object | None:
    """``tifffile.TiffFile`` of a TIFF that passed :func:`check_tiff`; None for other files.

    A file that does not start like a TIFF returns None (bioio may have a reader for it); one
    that does but is damaged raises LabelFreeError.
    """
    import tifffile

    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return None
    with _tifffile_complaints() as said:
        try:
            tf = tifffile.TiffFile(path)
        except Exception as e:
            raise LabelFreeError(
                f"{path} is not a readable TIFF ({e.__class__.__name__}: {e}); it may be "
                "truncated or corrupt"
            ) from None
    try:
        if any(any(w in m.lower() for w in _DAMAGE_WORDS) for m in said):
            raise _damaged(path)
        check_tiff(tf, path)
    except BaseException:
        tf.close()
        raise
    return tf


def read_ome_tiff_header(
    path: Path, tf: object
) -> tuple[tuple[int, int, int, int, int], list[str], tuple, TiffPlanes, ChannelAcquisition] | None:
    """(TCZYX shape, channel names, physical sizes um Z,Y,X, open planes, what the metadata says
    of each channel), or None to use bioio.

    ``tf`` is the file opened by :func:`open_checked_tiff`; it is kept open in the planes
    returned, and left to the caller to close when None is returned.
    """
    if not path.name.lower().endswith((".ome.tif", ".ome.tiff")):
        return None
    try:
        return _ome_planes(path, tf)
    except Exception:
        return None


def _ome_planes(path: Path, tf: object) -> tuple | None:
    if not tf.is_ome or len(tf.series) != 1:
        return None
    series = tf.series[0]
    axes, shape = series.axes, tuple(int(n) for n in series.shape)
    n_pages = len(series.pages)
    if any(page is None for page in series.pages):
        return None  # a multi-file set with a file missing: bioio, and its message
    if not axes.endswith("YX") or set(axes) - set("TCZYX") or len(set(axes)) != len(axes):
        return None  # RGB samples, lightsheet angles, ...: bioio knows them
    if n_pages != int(np.prod(shape[:-2], dtype=np.int64)):
        return None  # sparse or multi-file sets
    meta = _pixels_metadata(tf.ome_metadata)
    if meta is None:
        return None
    names, sizes, root = meta
    tczyx = tuple(shape[axes.index(a)] if a in axes else 1 for a in "TCZYX")
    if len(names) != tczyx[1]:
        names = [f"channel {i}" for i in range(tczyx[1])]
    planes = TiffPlanes(path, axes[:-2], shape[:-2], tiff=tf)
    # from the tree parsed above: a long time-lapse's OME-XML can run to megabytes
    return tczyx, names, sizes, planes, channel_acquisition(root, tczyx[1])


def tiff_planes_for(path: Path, native_axes: str, native_shape: Sequence[int], scene: int):
    """Planes of a TIFF that bioio opened with ``native_axes``, or None where they may not match.

    bioio's TIFF readers name the series' own axes positionally (``reader.dims.order``), so when
    tifffile sees the same shape, page k is the plane ``unravel_index(k, plane_shape)`` in that
    order. Anything else (samples, unknown axes, a shape bioio rearranged) keeps bioio's reading.
    """
    import tifffile

    if not path.name.lower().endswith((".tif", ".tiff")):
        return None
    axes = native_axes.upper()
    if not axes.endswith("YX") or set(axes) - set("TCZYX") or len(set(axes)) != len(axes):
        return None
    try:
        tf = tifffile.TiffFile(path, is_mmstack=False)
    except Exception:
        return None
    try:
        series = tf.series[scene]
        shape = tuple(int(n) for n in series.shape)
        ok = (
            shape == tuple(int(n) for n in native_shape)
            and len(series.pages) == int(np.prod(shape[:-2], dtype=np.int64))
            and all(page is not None for page in series.pages)
        )
    except Exception:
        ok = False
    if not ok:
        tf.close()
        return None
    return TiffPlanes(path, axes[:-2], shape[:-2], tiff=tf, series=scene)


def _pixels_metadata(xml: str | None) -> tuple[list[str], tuple, ET.Element] | None:
    """Channel names and physical sizes (um, Z, Y, X; None where absent) of the only Image, and
    the parsed tree."""
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    images = [e for e in root if e.tag.endswith("}Image") or e.tag == "Image"]
    if len(images) != 1:
        return None
    pixels = next((e for e in images[0] if e.tag.endswith("Pixels")), None)
    if pixels is None:
        return None
    sizes = []
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            sizes.append(None)
            continue
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        if unit not in _TO_UM:
            return None
        try:
            v = float(value) * _TO_UM[unit]
        except ValueError:
            return None
        sizes.append(v if np.isfinite(v) and v > 0 else None)
    channels = [e for e in pixels if e.tag.endswith("Channel")]
    names = [e.get("Name") or f"channel {i}" for i, e in enumerate(channels)]
    return names, tuple(sizes), root
