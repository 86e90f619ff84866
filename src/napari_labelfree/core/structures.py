"""The one table of known structures: names, display names, colours, aliases; and channel-name rules.

Everything that colours a structure (sample data, the reader, ``labelfree train`` and ``init-model``
defaults, the demo montage, the Train widget's choices, the built-in models' training script) reads
:data:`TABLE`, so DNA is the same blue wherever it appears. No Qt, no napari, no numpy here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Structure:
    """One labeled cell structure.

    Attributes
    ----------
    name
        Canonical name: a model's ``structure``, a simulated channel's name (e.g. "lamin-b1").
    display_name
        For people: "Lamin B1 (nuclear envelope)".
    colormap
        napari colormap of its layer and overlay; chosen to read well when all are added together.
    label
        The usual dye or tagged protein that shows it (what the paper imaged).
    aliases
        Other names a channel of it is often given (lower case, words separated by spaces).
    """

    name: str
    display_name: str
    colormap: str
    label: str
    aliases: tuple[str, ...] = ()


TABLE: tuple[Structure, ...] = (
    Structure("dna", "DNA", "blue", "Hoechst 33342", ("hoechst", "dapi", "nucleus", "nuclei")),
    Structure(
        "lamin-b1",
        "Lamin B1 (nuclear envelope)",
        "cyan",
        "mEGFP-lamin B1",
        ("lamin b1", "lmnb1", "lamin", "nuclear envelope"),
    ),
    Structure(
        "fibrillarin",
        "Fibrillarin (nucleoli)",
        "magenta",
        "mEGFP-fibrillarin",
        ("fbl", "nucleolus", "nucleoli"),
    ),
    Structure(
        "tom20",
        "Tom20 (mitochondria)",
        "green",
        "mEGFP-Tom20",
        ("tomm20", "mitochondria", "mito"),
    ),
    Structure(
        "sec61b",
        "Sec61 beta (ER)",
        "yellow",
        "mEGFP-Sec61 beta",
        ("sec61 beta", "sec61", "er", "endoplasmic reticulum"),
    ),
    Structure(
        "cellmask",
        "CellMask (plasma membrane)",
        "red",
        "CellMask Deep Red",
        ("cell mask", "membrane", "plasma membrane", "membrane caax"),
    ),
    # the paper's other structures (pytorch_fnet's released models), for imported models
    Structure(
        "alpha-tubulin",
        "alpha-Tubulin (microtubules)",
        "green",
        "mEGFP-alpha-tubulin",
        ("tuba1b", "microtubules", "tubulin"),
    ),
    Structure(
        "beta-actin", "beta-Actin (actin filaments)", "red", "mEGFP-beta-actin", ("actb", "actin")
    ),
    Structure(
        "desmoplakin",
        "Desmoplakin (desmosomes)",
        "magenta",
        "mEGFP-desmoplakin",
        ("dsp", "desmosomes"),
    ),
    Structure(
        "myosin-iib",
        "Myosin IIB (actomyosin bundles)",
        "red",
        "mEGFP-myosin IIB",
        ("myh10", "myosin iib", "myosin"),
    ),
    Structure(
        "st6gal1", "ST6GAL1 (Golgi)", "yellow", "mEGFP-ST6GAL1", ("golgi", "sialyltransferase 1")
    ),
    Structure(
        "zo1", "ZO-1 (tight junctions)", "cyan", "mEGFP-ZO-1", ("tjp1", "tight junctions", "zo 1")
    ),
)
BY_NAME: dict[str, Structure] = {s.name: s for s in TABLE}

#: Colormap of transmitted light (bright-field, DIC, phase) and of anything unknown to the table.
TRANSMITTED_COLORMAP = "gray"
#: Colours for fluorescence channels that are not in the table, used in turn.
FALLBACK_COLORMAPS = ("green", "magenta", "cyan", "yellow", "red", "blue")
#: The colormaps offered for a new model: the table's, in its order, then gray.
COLORMAP_CHOICES: tuple[str, ...] = (*(s.colormap for s in TABLE), TRANSMITTED_COLORMAP)
#: RGB (0-1) of a colormap's brightest value, for merging channels outside napari (matplotlib).
COLORMAP_RGB: dict[str, tuple[float, float, float]] = {
    "blue": (
        0.15,
        0.35,
        1.0,
    ),  # napari's pure blue reads too dark on black; lifted like its display
    "cyan": (0.0, 0.9, 0.9),
    "magenta": (1.0, 0.0, 1.0),
    "green": (0.0, 1.0, 0.0),
    "yellow": (1.0, 0.85, 0.0),
    "red": (1.0, 0.1, 0.1),
    "gray": (0.7, 0.7, 0.7),
    "gray_r": (0.7, 0.7, 0.7),
}
DEFAULT_COLORMAP = "green"  # a structure the table does not know: the colour of GFP

# Words that mark a transmitted-light channel. Long ones match as word prefixes ("Brightfield",
# "DIC-1", "Phase contrast", "TL-Trans"); the short abbreviations only as whole words, digits
# allowed after them ("TL", "BF1"), so that fluorescent proteins such as "BFP" are not taken for
# bright-field.
_TRANSMITTED_PREFIXES = ("bright", "dic", "phase", "trans")
_TRANSMITTED_WORDS = ("tl", "bf")


def _words(name: str) -> list[str]:
    return re.sub(r"[-_/.,;:()]+", " ", name.lower()).split()


def looks_transmitted(name: str) -> bool:
    """Whether a channel or layer name looks like transmitted light (bright-field, DIC, phase)."""
    words = _words(name)
    return any(w.startswith(p) for w in words for p in _TRANSMITTED_PREFIXES) or any(
        w.rstrip("0123456789") in _TRANSMITTED_WORDS for w in words
    )


def find_structure(name: str) -> Structure | None:
    """The table's structure that a model, channel or layer name means, or None.

    Matches the canonical name or an alias, as the whole name ("Lamin-B1", "nuclear_envelope") or as
    one of its words ("Hoechst 33342", "mEGFP Tom20 (predicted)"); the first structure in the table
    order wins.
    """
    words = _words(name)
    whole = " ".join(words)
    padded = f" {whole} "
    keys = [(s, (" ".join(_words(s.name)), *s.aliases)) for s in TABLE]
    for s, k in keys:
        if whole in k:
            return s
    for s, k in keys:
        if any(f" {key} " in padded for key in k):
            return s
    return None


def colormap_for(structure: str, default: str = DEFAULT_COLORMAP) -> str:
    """The table's colormap for a structure name (or alias); ``default`` for an unknown one."""
    found = find_structure(structure)
    return found.colormap if found else default


def rgb_for(colormap: str) -> tuple[float, float, float]:
    """RGB of a napari colormap's brightest value; light gray for one not in the table."""
    return COLORMAP_RGB.get(colormap, COLORMAP_RGB["gray"])


def fluorescence_colormaps(names: Sequence[str]) -> list[str]:
    """A colormap per fluorescence channel name: the table's for a structure it knows, else the
    fallback colours not already taken, in turn."""
    known = [find_structure(n) for n in names]
    taken = {s.colormap for s in known if s}
    free = [c for c in FALLBACK_COLORMAPS if c not in taken] or list(FALLBACK_COLORMAPS)
    out: list[str] = []
    unknown = 0
    for s in known:
        if s is not None:
            out.append(s.colormap)
        else:
            out.append(free[unknown % len(free)])
            unknown += 1
    return out
