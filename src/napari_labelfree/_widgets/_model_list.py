"""The Predict widget's model panel: tick models, see what the selected one is, add or import.

A Qt list (magicgui has no list of check boxes), a details label and two buttons, listening to
the session's model registry so a newly trained or imported model appears at once. Importing runs
the core's importers in a worker thread (they read weights with torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, PushButton
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..core.bundle import ModelBundle
from ..core.errors import LabelFreeError
from ..core.interop.fnet import NeedsDataVoxelSize
from ..core.structures import rgb_for
from ._jobs import JobRunner
from ._layers import parse_voxel_size
from ._models import describe_model, import_model, model_label
from ._registry import registry
from ._scroll import VerticalScroll
from ._workers import notify_error

_PATH = Qt.ItemDataRole.UserRole


def _swatch(colormap: str) -> QIcon:
    """A small square of the model's colour (the structure table's)."""
    r, g, b = (int(255 * c) for c in np.clip(rgb_for(colormap), 0, 1))
    pix = QPixmap(12, 12)
    pix.fill(QColor(r, g, b))
    return QIcon(pix)


def _import_job(path: str, data_voxel_size: tuple[float, float, float] | None):
    """Import as a job (the runner drains generators; importing yields no events)."""
    if False:
        yield
    return import_model(path, data_voxel_size=data_voxel_size)


class ModelPanel(QWidget):
    """Checkable model list, the details of the highlighted model, add and import buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.bundles: dict[str, ModelBundle] = {}
        self.list = QListWidget()
        self.list.setToolTip(
            "Tick one model per structure to predict; click a model to see what it is.\n"
            "(built-in), (user), (env) and (added) say where each model comes from."
        )
        self.list.setMinimumHeight(110)
        self.list.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setToolTip("What the selected model is: structure, voxel size, scores, notes")
        layout = QVBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Models"))
        layout.addWidget(self.list)
        self.add_folder = PushButton(text="Add model folder...")
        self.add_folder.tooltip = "List the models in a folder (a model folder or a folder of them)"
        self.import_btn = PushButton(text="Import model...")
        self.import_btn.tooltip = (
            "Import a pytorch_fnet model (its folder or model.p) or a bioimage.io package (.zip) "
            "into your model folder"
        )
        buttons = Container(widgets=[self.add_folder, self.import_btn], layout="horizontal")
        buttons.margins = (0, 0, 0, 0)
        layout.addWidget(buttons.native)
        # a long model card scrolls, so Predict stays in view
        self.details_area = VerticalScroll(self.details)
        self.details_area.setMaximumHeight(9 * self.details.fontMetrics().height())
        self.details_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        layout.addWidget(self.details_area)
        self.setLayout(layout)
        self.importer = JobRunner(self, "model import", lambda _: None, self._imported)
        self.add_folder.clicked.connect(self._ask_model_folder)
        self.import_btn.clicked.connect(self._ask_import)
        self.list.currentItemChanged.connect(self._show_details)
        registry.changed.connect(self.refresh)
        self.refresh()

    def disconnect_registry(self) -> None:
        registry.changed.disconnect(self.refresh, missing_ok=True)

    def refresh(self) -> None:
        """List the registry's models again, keeping the ticks and the highlighted model."""
        try:
            ticked = set(self.checked_paths())
        except RuntimeError:  # the Qt side is gone (the viewer closed): stop listening
            self.disconnect_registry()
            return
        current = self.list.currentItem()
        keep = current.data(_PATH) if current is not None else None
        self.list.clear()
        self.bundles = {}
        for bundle in registry.models():
            path = str(bundle.path)
            self.bundles[path] = bundle
            item = QListWidgetItem(_swatch(bundle.spec.colormap), model_label(bundle))
            item.setData(_PATH, path)
            item.setToolTip(describe_model(bundle))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = path in ticked
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.list.addItem(item)
            if path == keep:
                self.list.setCurrentItem(item)

    def _show_details(self, item: QListWidgetItem | None, _previous: object = None) -> None:
        bundle = self.bundles.get(item.data(_PATH)) if item is not None else None
        self.details.setText(describe_model(bundle) if bundle else "")
        self.details_area.updateGeometry()  # its height follows the text (up to 9 lines)

    def paths(self) -> list[str]:
        return [self.list.item(i).data(_PATH) for i in range(self.list.count())]

    def checked_paths(self) -> list[str]:
        return [
            self.list.item(i).data(_PATH)
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def checked_bundles(self) -> list[ModelBundle]:
        return [self.bundles[p] for p in self.checked_paths()]

    def set_checked(self, paths: list[str | Path], show: str | Path | None = None) -> None:
        """Tick exactly these model folders; highlight ``show`` (its details appear)."""
        wanted = {str(Path(p).resolve()) for p in paths}
        for i in range(self.list.count()):
            item = self.list.item(i)
            path = str(Path(item.data(_PATH)).resolve())
            item.setCheckState(Qt.CheckState.Checked if path in wanted else Qt.CheckState.Unchecked)
            if show is not None and path == str(Path(show).resolve()):
                self.list.setCurrentItem(item)

    # ------------------------------------------------------------------- adding and importing
    def _ask_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Add a model folder (or a folder of models)"
        )
        if folder:
            self.add_model_folder(folder)

    def add_model_folder(self, folder: str | Path) -> None:
        """List a model folder (or a folder of them) and tick what it holds."""
        try:
            added = registry.add_folder(folder)
        except LabelFreeError as e:
            notify_error(e)
            return
        self.tick_instead([b.path for b in added], show=added[0].path)

    def tick_instead(self, paths: list[str | Path], show: str | Path | None = None) -> None:
        """Tick new models in place of the ticked ones of the same structures (one model per
        structure; the others stay ticked)."""
        new = {str(Path(p).resolve()) for p in paths}
        structures = {
            b.spec.structure for p, b in self.bundles.items() if str(Path(p).resolve()) in new
        }
        keep = [p for p in self.checked_paths() if self.bundles[p].spec.structure not in structures]
        self.set_checked([*keep, *paths], show=show)

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a model", "", "pytorch_fnet model or bioimage.io package (*.p *.zip)"
        )
        if not path:
            return
        if path.lower().endswith(".zip"):
            self.import_model(path)
        elif (vox := self._ask_voxel_size(required=False)) is not False:
            self.import_model(path, vox)

    def _ask_voxel_size(self, required: bool) -> Any:
        """The training images' voxel size for a pytorch_fnet import, asked until it is valid:
        a size, None (empty: the model's files record it) or False (cancelled)."""
        prompt = "Voxel size of the images the model was trained on, Z, Y, X in um\n" + (
            "(this model does not record it: please enter it)"
            if required
            else "(leave empty when the model's files record it)"
        )
        while True:
            text, ok = QInputDialog.getText(self, "Voxel size of the training images", prompt)
            if not ok:
                return False
            try:
                vox = parse_voxel_size(text, "training voxel size")
            except LabelFreeError as e:
                notify_error(e)
                continue
            if vox is not None or not required:
                return vox

    def import_model(self, path: str | Path, data_voxel_size: Any = None) -> None:
        """Import into the user model folder (in a worker); the model is then listed and ticked."""
        self.import_btn.enabled = False
        self.importing = str(path)
        self.importer.start(_import_job, str(path), data_voxel_size, status="Importing...")

    def _imported(self, value: Any, stopped: bool, error: BaseException | None) -> None:
        self.import_btn.enabled = True
        if isinstance(error, NeedsDataVoxelSize):  # the prompt was left empty: ask again
            vox = self._ask_voxel_size(required=True)
            if vox:
                self.import_model(self.importing, vox)
            return
        if error is not None or value is None:
            return
        bundle, warning = value
        if warning:
            show_warning(warning)
        registry.refresh()
        self.tick_instead([bundle.path], show=bundle.path)
        show_info(f"imported {bundle.spec.structure!r} into {bundle.path}")
