"""OME-Zarr plates (NGFF "high-content screening": plate -> well -> image) as files of scenes.

A plate written by bioformats2raw, OMERO or a screening pipeline is one Zarr group whose wells
hold the images (fields of view). bioio-ome-zarr reads single images only (plates are an open
request there) and failed on a plate's root with an IndexError, which read as a corrupt file.
Here each image of the plate is a scene, named by its path in the plate ("A/1/0"), in the
plate's order of wells and each well's order of images, so everything that takes scenes takes a
plate: ``--scene``, ``--scene all``, the napari reader, training on every scene. The
predictions of every image of a plate are written back as a plate of the same layout
(:func:`write_plate_layout`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
        if not _inside(well_path):
            continue
        listed = (group_attributes(path / well_path).get("well") or {}).get("images") or []
        for image in listed:
            field = image.get("path") if isinstance(image, dict) else None
            if _inside(str(field) if isinstance(field, int) else field):
                images.append(f"{well_path.strip('/')}/{field}")
    return images


def _inside(part: object) -> bool:
    """Whether a path the metadata gives stays inside the plate (no "..", not absolute)."""
    return (
        isinstance(part, str)
        and bool(part.strip("/"))
        and not part.startswith("/")
        and ".." not in Path(part).parts
    )


def write_plate_layout(root: Path, images: Sequence[str]) -> None:
    """Make ``root`` an NGFF 0.4 plate (Zarr v2) of ``images`` ("A/1/0", ...), whose image
    groups are written on their own: the root, row and well groups with their metadata.

    Written last, after the images, so that an interrupted run leaves no plate that lists
    images it does not hold; each file is replaced whole (a temporary name, then renamed).
    """
    wells: dict[str, list[str]] = {}
    for image in images:
        well, _, field = image.rpartition("/")
        wells.setdefault(well, []).append(field)
    rows = list(dict.fromkeys(w.split("/")[0] for w in wells))
    columns = list(dict.fromkeys(w.split("/")[-1] for w in wells))
    plate = {
        "version": "0.4",
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": [
            {
                "path": w,
                "rowIndex": rows.index(w.split("/")[0]),
                "columnIndex": columns.index(w.split("/")[-1]),
            }
            for w in wells
        ],
        "field_count": max(len(f) for f in wells.values()),
    }
    for well, fields in wells.items():
        _write_group(
            root / well, {"well": {"version": "0.4", "images": [{"path": f} for f in fields]}}
        )
        for parent in Path(well).parents:  # the row group ("A")
            if str(parent) != ".":
                _write_group(root / parent, None)
    _write_group(root, {"plate": plate})


def _write_group(path: Path, attributes: dict[str, Any] | None) -> None:
    """A Zarr v2 group at ``path`` with ``attributes`` (None: keep what it has)."""
    path.mkdir(parents=True, exist_ok=True)
    _replace(path / ".zgroup", '{"zarr_format": 2}')
    if attributes is not None:
        _replace(path / ".zattrs", json.dumps(attributes, indent=2))


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
