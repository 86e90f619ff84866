"""The Predict widget's "Save merged image..." button: the visible overlays as one RGB picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog

from ._overlays import save_merged


class MergedExport:
    """Mixin of the Predict widget (a QWidget with a ``viewer``)."""

    viewer: Any

    def _ask_save_merged(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save merged image", "merged.png", "PNG (*.png);;TIFF (*.tif *.tiff)"
        )
        if path:
            self.save_merged_image(path)

    def save_merged_image(self, path: str | Path) -> Path | None:
        """Write the visible overlays on the shown plane as one RGB PNG or TIFF."""
        return save_merged(self.viewer, path)
