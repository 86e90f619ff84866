"""Reading microscopy files into named axes with physical sizes; writing OME-TIFF and OME-Zarr.

- :mod:`.source`: :class:`ImageSource` (the opened image, read frame by frame), in-memory arrays,
  voxel-size and 3D checks;
- :mod:`.read`: :func:`open_image` through bioio, with the tifffile fast path of :mod:`.ome_tiff`
  and OME-Zarr stores;
- :mod:`.write`: OME-TIFF out; :mod:`.ome_zarr_out`: OME-Zarr out, frame by frame and resumable.
"""

from __future__ import annotations

from .ome_zarr_out import OmeZarrOutput, open_prediction_output, read_done_frames
from .read import FORMATS, is_zarr, open_image
from .source import ImageSource, VoxelSize, check_3d, from_array, resolve_voxel_size
from .write import ome_metadata, write_ome_tiff

__all__ = [
    "FORMATS",
    "ImageSource",
    "OmeZarrOutput",
    "VoxelSize",
    "check_3d",
    "from_array",
    "is_zarr",
    "ome_metadata",
    "open_image",
    "open_prediction_output",
    "read_done_frames",
    "resolve_voxel_size",
    "write_ome_tiff",
]
