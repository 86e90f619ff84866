"""Whether a model learned from an image: a score on its own training image is not a held-out one.

A user who trains on a field and then compares the prediction of that same field with its stain
(or runs ``labelfree evaluate`` on the table it trained with) sees a score that includes the
pixels the model was fitted to, far above what it will reach on a new field. The model's
provenance names its training images (``provenance["training_images"]``, written by the trainer:
the napari layer's name with its time point, "cells: bright-field t=0", or the files of a table,
"cells.ome.tif|cells_dna.ome.tif [Position 2] t=3"); an image is recognised by those names. Names
are all there is (no checksum of the pixels), so another image of the same name is taken for the
same: the words say "an image of this name".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..config import ModelSpec

_TIME = re.compile(r" t=\d+$")
_SCENE = re.compile(r" \[[^\]]*\]$")


def image_key(name: str) -> str:
    """The signal image a training-image name stands for: without its time point or target file
    (``"a.tif|b.tif [Position 2] t=3"`` -> ``"a.tif [Position 2]"``)."""
    name = _TIME.sub("", str(name).strip())
    scene = _SCENE.search(name)
    head = name[: scene.start()] if scene else name
    return head.split("|")[0] + (scene.group(0) if scene else "")


def learned_from(spec: ModelSpec, names: Iterable[str | None]) -> str | None:
    """The first of ``names`` (an image's names: its layer, its file) that the model's training
    images include; None when none does or the model does not record them."""
    trained = {image_key(n) for n in spec.provenance.get("training_images") or []}
    for name in names:
        if name and image_key(name) in trained:
            return image_key(name)
    return None


def held_out_strip_r(spec: ModelSpec) -> float | None:
    """The model's score on the strip its trainer held out of its training images, if any."""
    m = spec.metrics
    r = m.get("val_pearson_r_mean")
    if m.get("val_source") != "strip" or not isinstance(r, int | float):
        return None
    return float(r)


def seen_note(model: str, spec: ModelSpec, image: str) -> str:
    """One sentence: the score of ``model`` on ``image`` is not a held-out score."""
    strip = held_out_strip_r(spec)
    held = f"; on the strip it held out of it: r {strip:.2f}" if strip is not None else ""
    return (
        f"{model} learned from an image of this name ({image}): the score includes the pixels it "
        f"was trained on, so it says little of a new field{held}"
    )
