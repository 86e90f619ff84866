"""What a file's acquisition metadata says of each channel: transmitted light or fluorescence, and
by which contrast method (bright-field, phase contrast, DIC, ...).

Microscope software records how each channel was imaged: OME (OME-TIFF, and whatever Bio-Formats
converts) in the ``ContrastMethod`` and ``IlluminationType`` attributes of each ``Channel``, Zeiss
CZI in the elements of the same names under ``Information/Image/Dimensions/Channels/Channel``.
Where a file says so, that is its own word, and it decides before the channel's name and pixels
do: a Zeiss confocal's transmitted-light detector is a channel named "T PMT" or "ChS1-T3", which
no name rule can tell from a dye, and a sparse bright-field field can look skewed like
fluorescence. Files without it (most TIFFs, OME-Zarr) are judged by name and pixels as before.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, NamedTuple

TRANSMITTED = "transmitted"
FLUORESCENCE = "fluorescence"

# OME's ContrastMethod values (CZI uses the same words) -> the modality in this package's words
# (core.synth's) and its light; dark-field is transmitted illumination but not an input of these
# models, so its light says nothing either way
_CONTRAST = {
    "brightfield": ("bright-field", TRANSMITTED),
    "phase": ("phase-contrast", TRANSMITTED),
    "dic": ("dic", TRANSMITTED),
    "hoffmanmodulation": ("hoffman modulation", TRANSMITTED),
    "obliqueillumination": ("oblique illumination", TRANSMITTED),
    "polarizedlight": ("polarized light", TRANSMITTED),
    "darkfield": ("dark-field", None),
    "fluorescence": ("fluorescence", FLUORESCENCE),
}
# the other way, for writing: this package's words -> OME's ContrastMethod
OME_CONTRAST = {
    "bright-field": "Brightfield",
    "phase-contrast": "Phase",
    "dic": "DIC",
    "fluorescence": "Fluorescence",
}
# the transmitted-light modalities the models are made for (core.synth simulates these three)
TRANSMITTED_MODALITIES = ("bright-field", "phase-contrast", "dic")
# OME's IlluminationType values, where the contrast method is not given
_ILLUMINATION = {
    "transmitted": TRANSMITTED,
    "epifluorescence": FLUORESCENCE,
    "nonlinear": FLUORESCENCE,  # multi-photon excitation
}


class ChannelAcquisition(NamedTuple):
    """Per channel what the metadata says: ``light`` TRANSMITTED / FLUORESCENCE / None and
    ``modality`` ("bright-field", "phase-contrast", "dic", "fluorescence", ...; None: not said).
    Both () when the metadata says nothing of any channel."""

    light: tuple[str | None, ...] = ()
    modality: tuple[str | None, ...] = ()


def channel_acquisition(metadata: Any, n_channels: int) -> ChannelAcquisition:
    """What a reader's metadata says of each channel's light and contrast method.

    ``metadata``: OME-XML text, a parsed OME or CZI XML element (bioio's CZI reader), or an
    ``ome_types`` model (bioio's OME readers). Empty when the metadata
    says nothing, or describes another number of channels than ``n_channels`` (it must not be
    matched to the wrong channel). Never raises: metadata only informs.
    """
    try:
        if hasattr(metadata, "images"):  # an ome_types model: read as it is, not serialized
            channels = _ome_model(metadata)
        else:
            root = _root(metadata)
            if root is None:
                return ChannelAcquisition()
            czi = _local(root.tag) == "ImageDocument"
            channels = _czi_channels(root) if czi else _ome(root)
    except Exception:  # a reader's metadata of an unexpected shape
        return ChannelAcquisition()
    if len(channels) != n_channels:
        return ChannelAcquisition()
    modality, light = [], []
    for contrast, illumination in channels:
        key = (contrast or "").strip().lower()
        if key in _CONTRAST:  # the contrast method decides (dark-field: neither)
            modality.append(_CONTRAST[key][0])
            light.append(_CONTRAST[key][1])
        else:
            modality.append(None)
            light.append(_ILLUMINATION.get((illumination or "").strip().lower()))
    return ChannelAcquisition(
        tuple(light) if any(light) else (), tuple(modality) if any(modality) else ()
    )


def _root(metadata: Any) -> ET.Element | None:
    if isinstance(metadata, ET.Element):
        return metadata
    if isinstance(metadata, bytes):
        metadata = metadata.decode("utf-8", "replace")
    if isinstance(metadata, str) and metadata.lstrip().startswith("<"):
        return ET.fromstring(metadata)
    return None


def _local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


def _ome(root: ET.Element) -> list[tuple[str | None, str | None]]:
    """(ContrastMethod, IlluminationType) of each Channel of the first Image's Pixels."""
    image = next((e for e in root if _local(e.tag) == "Image"), None)
    pixels = None if image is None else next((e for e in image if _local(e.tag) == "Pixels"), None)
    if pixels is None:
        return []
    return [
        (e.get("ContrastMethod"), e.get("IlluminationType"))
        for e in pixels
        if _local(e.tag) == "Channel"
    ]


def _ome_model(ome: Any) -> list[tuple[str | None, str | None]]:
    """(ContrastMethod, IlluminationType) of each channel of an ``ome_types`` model's first image
    (its enumerations' values are OME's words)."""
    channels = ome.images[0].pixels.channels if ome.images else []
    return [
        (
            getattr(c.contrast_method, "value", c.contrast_method),
            getattr(c.illumination_type, "value", c.illumination_type),
        )
        for c in channels
    ]


def _czi_channels(root: ET.Element) -> list[tuple[str | None, str | None]]:
    """(ContrastMethod, IlluminationType) of each channel of a CZI's image dimensions."""
    channels = root.find("./Metadata/Information/Image/Dimensions/Channels")
    if channels is None:
        return []
    return [
        (e.findtext("ContrastMethod"), e.findtext("IlluminationType"))
        for e in channels
        if e.tag == "Channel"
    ]
