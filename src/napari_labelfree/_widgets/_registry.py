"""The models the widgets offer: discovered folders plus folders the user added or just trained.

One evented registry per session, shared by the Predict and Train widgets: when training ends the
Train widget adds the new model and every Predict widget's list refreshes at once.
"""

from __future__ import annotations

from pathlib import Path

from psygnal import Signal

from ..core.bundle import ModelBundle, discover_models, is_bundle, open_bundle
from ..core.errors import LabelFreeError


class ModelRegistry:
    """Discovered models (built-in, user folder, environment variable) plus added folders."""

    changed = Signal()

    def __init__(self) -> None:
        self._extra: list[Path] = []

    def models(self) -> list[ModelBundle]:
        """Every model to offer, discovered ones first; a folder appears once."""
        found = discover_models()
        seen = {b.path.resolve() for b in found}
        for folder in self._extra:
            if folder in seen or not is_bundle(folder):
                continue
            try:
                found.append(open_bundle(folder))
            except LabelFreeError:
                continue
            seen.add(folder)
        return found

    def add_folder(self, folder: str | Path) -> list[ModelBundle]:
        """Add a model folder, or a folder of model folders; returns the models it holds.

        Raises
        ------
        LabelFreeError
            When the folder holds no model.
        """
        folder = Path(folder).expanduser().resolve()
        if is_bundle(folder):
            candidates = [folder]
        elif folder.is_dir():
            candidates = sorted(p for p in folder.iterdir() if p.is_dir() and is_bundle(p))
        else:
            candidates = []
        if not candidates:
            raise LabelFreeError(
                f"{folder} holds no model (a model folder has config.json and "
                "weights.safetensors); choose a model folder or a folder of model folders"
            )
        bundles = [open_bundle(p) for p in candidates]
        for p in candidates:
            if p not in self._extra:
                self._extra.append(p)
        self.changed.emit()
        return bundles

    def refresh(self) -> None:
        """Tell every view to list the models again (e.g. after a model was written)."""
        self.changed.emit()


#: The registry shared by every widget of this session.
registry = ModelRegistry()
