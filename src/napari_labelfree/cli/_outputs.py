"""Where `labelfree predict` writes, and the writing: OME-TIFF or OME-Zarr, one output per input.

The format follows ``-o``: a name ending in ``.zarr`` (``result.ome.zarr``) is an OME-Zarr store,
one ending in ``.tif`` / ``.tiff`` an OME-TIFF; anything else is a folder that gets one output
per input, ``NAME_predicted.ome.tif`` (or ``.ome.zarr`` with ``--format ome-zarr``, the default
when the prediction runs on a Dask cluster, which writes OME-Zarr only).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import LabelFreeError
from ..core.events import FrameDone
from ._progress import FrameLog, drive_prediction

if TYPE_CHECKING:
    import numpy as np

    from ..core.predict.plan import PredictionPlan
    from ._timings import Timings

ZARR, TIFF = "ome-zarr", "ome-tiff"
FORMATS = (ZARR, TIFF)
SUFFIXES = {ZARR: ".ome.zarr", TIFF: ".ome.tif"}

# suffixes stripped from an input's name to name its prediction (longest first)
IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".czi", ".zarr")


def image_stem(path: str | Path) -> str:
    """``cell.1.ome.tif`` -> ``cell.1``: only a known image suffix goes, not every dotted part."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(path).stem or name


def format_of(output: str | Path) -> str | None:
    """The format a file name asks for (``.zarr``: OME-Zarr, ``.tif``/``.tiff``: OME-TIFF)."""
    name = str(output).rstrip("/" + os.sep).lower()
    if name.endswith(".zarr"):
        return ZARR
    if name.endswith((".tif", ".tiff")):
        return TIFF
    return None


def output_paths(
    inputs: list[str],
    output: str,
    fmt: str | None = None,
    default_fmt: str = TIFF,
    scenes: list[str | None] | None = None,
) -> tuple[list[Path], str]:
    """One output per input, and their format.

    ``fmt`` is the format asked for (None: from ``output``'s suffix, else ``default_fmt``);
    ``scenes``, one per input where scenes were asked for (None: the file's only or first scene),
    are part of the names made in a folder, so that each scene predicted into one folder gets its
    own file.
    """
    out = Path(output)
    named = format_of(output)
    # an existing folder may carry any name; a new one named like a file is a slip, not a folder
    is_folder = named is None or (named == TIFF and out.is_dir())
    if not is_folder:
        if fmt is not None and fmt != named:
            raise LabelFreeError(
                f"{out.name} is an {named.upper()} name but --format {fmt} was asked for; "
                f"name the output {image_stem(out)}{SUFFIXES[fmt]}"
            )
        if len(inputs) > 1:
            several = "scenes" if len(set(inputs)) < len(inputs) else "inputs"
            raise LabelFreeError(
                f"with several {several}, -o must be a folder; {out.name} is named like a file"
            )
        return [out], named
    fmt = fmt or default_fmt
    if out.exists() and not out.is_dir():
        raise LabelFreeError(f"with several inputs, -o must be a folder; {out} is a file")
    stems = [image_stem(i) for i in inputs]
    for k, scene in enumerate(scenes or ()):
        if scene is not None:  # "cells_scene-Position-2_predicted.ome.tif"
            stems[k] = f"{stems[k]}_scene-{scene_tag(scene)}"
    if len(set(stems)) != len(stems):
        raise LabelFreeError(
            "two inputs have the same file name; predict them into different folders"
        )
    return [out / f"{s}_predicted{SUFFIXES[fmt]}" for s in stems], fmt


def source_label(source) -> str:
    """An opened input as the lines about it name it: "wells.czi [Position 2]" for a scene."""
    label = Path(source.path).name if source.path else "the image"
    if source.scenes:
        label += f" [{source.scenes[source.scene]}]"
    return label


def scene_tag(scene: str | int) -> str:
    """A scene's name or index as a file-name part: "Position 2" -> "Position-2"."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(scene).strip()).strip("-") or "scene"


def check_targets(targets: list[Path], overwrite: bool, resume: bool) -> None:
    """Refuse, before any work, an output that cannot be written or would replace one unasked.

    A resumed store is checked when it is opened.
    """
    from ..core.files import check_output_location
    from ..core.io.ome_zarr_out import check_replaceable

    for target in targets:
        check_output_location(target)
        if target.exists() and not overwrite and not resume:
            raise LabelFreeError(
                f"{target} already exists; choose another output or add --overwrite"
            )
        if overwrite and format_of(target) == ZARR:
            check_replaceable(target)


def write_tiff(
    plan: PredictionPlan,
    target: Path,
    overwrite: bool,
    label: str,
    hints: dict[str, str],
    timings: Timings | None = None,
    said: set[str] | None = None,
) -> None:
    """Predict every frame of ``plan`` into one OME-TIFF, streamed frame by frame.

    With ``timings``, frame t + 1 is predicted while frame t is written (cli._timings).
    """
    from ..core.io import write_ome_tiff
    from ..core.io.write import ome_color
    from ._timings import compute_ahead

    names = list(plan.output_names)
    stop = threading.Event()  # set when the writer leaves: the prediction ahead of it stops
    frames = _predicted_frames(plan.iter_frames(), names, label, hints, stop, said)
    if timings is not None:
        frames = compute_ahead(frames, timings, background=plan.n_frames > 1, stop=stop)
    # closed here, whatever stops the writing (Ctrl-C, a full disk): the frame predicted ahead in
    # the background is stopped and waited for before the command returns
    with contextlib.closing(frames):
        write_ome_tiff(
            target,
            frames,
            shape_tczyx=(plan.n_frames, len(names), *plan.output_shape_zyx),
            channel_names=names,
            # each model's colour, as the OME-Zarr output and napari's writer store it
            channel_colors=[ome_color(c) for c in plan.output_colours],
            # an assumed voxel size is not recorded as if it had been measured
            physical_sizes=plan.output_physical_sizes,
            overwrite=overwrite,
        )


def write_zarr(
    plan: PredictionPlan,
    target: Path,
    resume: bool,
    overwrite: bool,
    label: str,
    hints: dict[str, str],
    said: set[str] | None = None,
) -> None:
    """Predict the frames ``target`` still lacks into an OME-Zarr, each written as it finishes.

    The store stays under its hidden partial name until every frame is in; Ctrl-C leaves it
    there, marked incomplete, for ``--resume``.
    """
    from ..core.io import open_prediction_output

    out = open_prediction_output(
        target,
        plan.output_names,
        plan.output_colours,
        plan.output_shape_zyx,
        plan.output_physical_sizes,
        plan.n_frames,
        resume=resume,
        overwrite=overwrite,
    )
    missing = out.missing_frames
    if resume and len(missing) < plan.n_frames:
        print(f"{target}: {plan.n_frames - len(missing)} of {plan.n_frames} frames already done")
    try:
        drive_prediction(
            plan.iter_frames(missing),
            label,
            on_frame=lambda event: out.write_frame(event.frame, event.arrays),
            hints=hints,
            frame_log=FrameLog(label, len(missing), resumed=len(missing) < plan.n_frames),
            said=said,
        )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(interrupted_note(out)) from None
    except OSError as e:  # a full disk, a store made read-only: the frames done are kept
        from ..core.files import write_error

        raise LabelFreeError(f"{write_error(target, e)}; {interrupted_note(out)}") from None
    finally:
        out.close()
    out.commit()


def interrupted_note(out) -> str:
    """What an interrupted OME-Zarr run kept, and how to finish it."""
    done = len(out.refresh())
    return (
        f"{done} of {out.n_frames} frames of {out.path.name} are kept in {out.work_path} "
        "(incomplete); run the same command with --resume to finish it"
    )


def _predicted_frames(
    gen,
    names: list[str],
    label: str,
    hints: dict[str, str],
    stop: threading.Event | None = None,
    said: set[str] | None = None,
) -> Iterator[np.ndarray]:
    """CZYX frames from a prediction generator, in order, for the streaming writer.

    Once ``stop`` is set the prediction ends after its current tile (and ``gen`` is closed).
    """
    import numpy as np

    done: list[FrameDone] = []
    frame_log = FrameLog(label)  # one count for all the calls below
    try:
        while True:
            drive_prediction(
                _until_frame(gen, done, stop), label, hints=hints, frame_log=frame_log, said=said
            )
            if not done:
                return
            event = done.pop()
            yield np.stack([event.arrays[n] for n in names])
    finally:
        gen.close()


def _until_frame(gen, done: list, stop: threading.Event | None = None):
    """Forward events of ``gen`` until one FrameDone (stored in ``done``), the end or ``stop``."""
    while stop is None or not stop.is_set():
        try:
            event = next(gen)
        except StopIteration:
            return None
        yield event
        if isinstance(event, FrameDone):
            done.append(event)
            return None
    return None
