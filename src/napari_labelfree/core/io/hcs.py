"""OME-Zarr plates (NGFF "high-content screening": plate -> well -> image) as files of scenes.

A plate written by bioformats2raw, OMERO or a screening pipeline is one Zarr group whose wells
hold the images (fields of view). bioio-ome-zarr reads single images only (plates are an open
request there) and failed on a plate's root with an IndexError, which read as a corrupt file.
Here each image of the plate is a scene, named by its path in the plate ("A/1/0"), in the
plate's order of wells and each well's order of images, so everything that takes scenes takes a
plate: ``--scene``, ``--scene all``, the napari reader, training on every scene.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def group_attributes(path: Path) -> dict[str, Any]:
    """A local Zarr group's attributes: Zarr v2 ``.zattrs``, or v3 ``zarr.json``'s
    ``attributes`` (NGFF 0.5 keeps its own under ``ome``); {} where there are none."""
    try:
        if (path / ".zattrs").is_file():
            attrs = json.loads((path / ".zattrs").read_text())
        elif (path / "zarr.json").is_file():
            attrs = json.loads((path / "zarr.json").read_text()).get("attributes") or {}
            attrs = attrs.get("ome", attrs) if isinstance(attrs, dict) else {}
        else:
            return {}
    except (OSError, ValueError):
        return {}
    return attrs if isinstance(attrs, dict) else {}


def plate_images(path: Path) -> list[str] | None:
    """The paths of a plate's images relative to its root ("A/1/0", ...); None when ``path``
    is no plate. A well whose metadata cannot be read adds no image."""
    plate = group_attributes(path).get("plate")
    if not isinstance(plate, dict):
        return None
    images: list[str] = []
    for well in plate.get("wells") or []:
        well_path = well.get("path") if isinstance(well, dict) else None
        if not isinstance(well_path, str) or not well_path:
            continue
        listed = (group_attributes(path / well_path).get("well") or {}).get("images") or []
        for image in listed:
            if isinstance(image, dict) and image.get("path") is not None:
                images.append(f"{well_path.strip('/')}/{image['path']}")
    return images
