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
from ..model_card import names_listed

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


def seen_note(model: str, spec: ModelSpec, images: str | list[str]) -> str:
    """One sentence: the scores of ``model`` on ``images`` (one name, or several) are not
    held-out scores."""
    images = [images] if isinstance(images, str) else list(images)
    strip = held_out_strip_r(spec)
    one = len(images) == 1
    if one:
        what = f"an image of this name ({images[0]}): the score includes"
    else:
        what = f"{len(images)} images of these names ({names_listed(images)}): their scores include"
    says = "so it says" if one else "so they say"
    held = ""
    if strip is not None:
        held = f"; on the strip it held out of {'it' if one else 'them'}: r {strip:.2f}"
    return (
        f"{model} learned from {what} the pixels it was trained on, {says} little of a new "
        f"field{held}"
    )
