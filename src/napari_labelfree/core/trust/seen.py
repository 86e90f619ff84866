"""Whether a model learned from an image: a score on its own training image is not a held-out one.

A user who trains on a field and then compares the prediction of that same field with its stain
(or runs ``labelfree evaluate`` on the table it trained with) sees a score that includes the
pixels the model was fitted to, far above what it will reach on a new field. The model's
provenance names its training images (``provenance["training_images"]``, written by the trainer:
the napari layer's name with its time point, "cells: bright-field t=0", or the files of a table,
"cells.ome.tif|cells_dna.ome.tif [Position 2] t=3"); an image is recognised by those names, and
then another image of the same name is taken for the same: the words say "an image of this name".
The trainer also keeps a fingerprint of each training image's pixels (``provenance
["training_pixels"]``, :func:`pixel_fingerprint`), which recognises the same pixels under another
name: a renamed file or a duplicated, renamed layer. A fine-tuned model keeps its starting model's
names and fingerprints too (``provenance["init"]``): it learned from those images through it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..config import ModelSpec
from ..model_card import names_listed

_TIME = re.compile(r" t=\d+$")
_SCENE = re.compile(r" \[[^\]]*\]$")
#: voxels read per axis for a fingerprint (Z, Y, X): at most 16 x 64 x 64 of any image
_SAMPLES = (16, 64, 64)
#: training images whose fingerprints a model keeps
MAX_FINGERPRINTS = 1000


def image_key(name: str) -> str:
    """The signal image a training-image name stands for: without its time point or target file
    (``"a.tif|b.tif [Position 2] t=3"`` -> ``"a.tif [Position 2]"``)."""
    name = _TIME.sub("", str(name).strip())
    scene = _SCENE.search(name)
    head = name[: scene.start()] if scene else name
    return head.split("|")[0] + (scene.group(0) if scene else "")


def pixel_fingerprint(image: Any) -> str:
    """A short digest of an image's pixels (ZYX or YX; numpy, dask or zarr): the same for the
    same pixels whatever the image is called, another for another field.

    It reads a fixed grid of at most 16 x 64 x 64 voxels as float32 (what training and Compare
    read: raw intensities), so it costs little on a large lazy image; leading axes of one (a 2D
    image as one plane) do not count. A copy that was cropped, resampled or rescaled is another
    image to it.
    """
    shape = tuple(int(n) for n in image.shape)
    while len(shape) > 2 and shape[0] == 1:
        image, shape = image[0], shape[1:]
    sample = image
    for axis, (n, k) in enumerate(zip(shape, _SAMPLES[-len(shape) :], strict=False)):
        at = np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))
        sample = sample[(slice(None),) * axis + (at,)]
    digest = hashlib.blake2b(repr(shape).encode(), digest_size=8)
    digest.update(np.ascontiguousarray(np.asarray(sample, dtype=np.float32)).tobytes())
    return digest.hexdigest()


def training_pixels(names: Iterable[str], images: Iterable[Any]) -> dict[str, str]:
    """``provenance["training_pixels"]``: each training image's fingerprint -> its name."""
    kept: dict[str, str] = {}
    for name, image in zip(names, images, strict=True):
        if len(kept) >= MAX_FINGERPRINTS:
            break
        kept.setdefault(pixel_fingerprint(image), str(name))
    return kept


def lineage(spec: ModelSpec) -> dict[str, Any]:
    """The training images' names and fingerprints of ``spec`` and of the models it was
    fine-tuned from (each start's are in its ``provenance["init"]``): what a model fine-tuned
    from it records of its start."""
    prov, start = spec.provenance, spec.provenance.get("init") or {}
    names = [*(prov.get("training_images") or []), *(start.get("training_images") or [])]
    pixels = dict(prov.get("training_pixels") or {})  # its own first, where there are too many
    for fingerprint, name in (start.get("training_pixels") or {}).items():
        pixels.setdefault(fingerprint, name)
    return {
        "training_images": list(dict.fromkeys(names))[:MAX_FINGERPRINTS],
        "training_pixels": dict(list(pixels.items())[:MAX_FINGERPRINTS]),
    }


def learned_pixels(spec: ModelSpec, fingerprints: Iterable[str]) -> str | None:
    """The training image (by its name then) whose pixels are those of one of ``fingerprints``,
    the starting model's included; None when none is, or the model keeps no fingerprints."""
    kept = lineage(spec)["training_pixels"]
    for fingerprint in fingerprints:
        if fingerprint in kept:
            return image_key(kept[fingerprint])
    return None


def learned_from(spec: ModelSpec, names: Iterable[str | None]) -> str | None:
    """The first of ``names`` (an image's names: its layer, its file) that the model's training
    images include; None when none does or the model does not record them."""
    trained = {image_key(n) for n in lineage(spec)["training_images"]}
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


def seen_note(
    model: str, spec: ModelSpec, images: str | list[str], same_pixels: bool = False
) -> str:
    """One sentence: the scores of ``model`` on ``images`` (one name, or several) are not
    held-out scores. ``same_pixels``: the images were recognised by their pixels (their names
    are then the training images' names)."""
    images = [images] if isinstance(images, str) else list(images)
    strip = held_out_strip_r(spec)
    one = len(images) == 1
    if same_pixels and one:
        what = f"these very pixels (its training image {images[0]}): the score includes"
    elif same_pixels:
        what = (
            f"the pixels of {len(images)} of these images (its training images "
            f"{names_listed(images)}): their scores include"
        )
    elif one:
        what = f"an image of this name ({images[0]}): the score includes"
    else:
        what = f"{len(images)} images of these names ({names_listed(images)}): their scores include"
    says = "so it says" if one else "so they say"
    held = ""
    own = {image_key(n) for n in spec.provenance.get("training_images") or []}
    if strip is not None and all(image_key(i) in own for i in images):  # its strip, not a start's
        held = f"; on the strip it held out of {'it' if one else 'them'}: r {strip:.2f}"
    return (
        f"{model} learned from {what} the pixels it was trained on, {says} little of a new "
        f"field{held}"
    )
