"""Compute core: no Qt and no napari imports, so it runs in a bare Python and on a GPU server."""

from .errors import LabelFreeError

__all__ = ["LabelFreeError"]
