"""The "Label-free prediction" dock widget: choose an image and models, predict coloured overlays.

Thin on purpose: the core checks and plans the job (:func:`~napari_labelfree.core.predict.
plan_prediction`) and computes it (``plan.iter_frames(scheduler)`` in a napari worker thread); this
module turns its events into progress bars, notifications and layer updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.bundle import ModelBundle
from ..core.config import TilingConfig
from ..core.device import available_devices
from ..core.errors import LabelFreeError
from ..core.events import FrameDone, FrameStarted, Notice, TileDone
from ..core.predict import PredictionPlan, plan_prediction
from ..core.schedule import FrameScheduler
from ._layers import (
    META_KEY,
    current_frame,
    find_prediction_layers,
    layer_info,
    layer_source,
    looks_transmitted,
    output_geometry,
    prediction_tag,
    preferred_source,
    robust_limits,
)
from ._registry import registry
from ._workers import guarded, notify_error

if TYPE_CHECKING:
    import napari

PREDICTED_SUFFIX = " (predicted)"


@dataclass
class PredictSettings:
    """Everything one Predict click needs, read from the controls once."""

    layer_name: str
    channel: int | None
    model_paths: list[str]
    device: str = "auto"
    tile_shape: tuple[int, int, int] = TilingConfig().tile_shape
    overlap: float = TilingConfig().overlap
    voxel_size: tuple[float, float, float] | None = None


@dataclass
class PredictRun:
    """State of a running prediction (one at a time per widget)."""

    source_name: str
    scheduler: FrameScheduler
    layers: dict[str, Image]
    has_time: bool
    worker: Any = None
    frame_bar: progress | None = None
    tile_bar: progress | None = None
    frames_done: list[int] = field(default_factory=list)
    limits_set: bool = False
    cancelled: bool = False


def _predict_job(plan: PredictionPlan, scheduler: FrameScheduler):
    """Worker body (a generator function, so napari runs it as a GeneratorWorker)."""
    return (yield from guarded(plan.iter_frames(scheduler)))


def parse_voxel_size(text: str) -> tuple[float, float, float] | None:
    """'0.29, 0.108, 0.108' -> (0.29, 0.108, 0.108); empty -> None (use the file's or model's)."""
    text = text.strip()
    if not text:
        return None
    try:
        values = tuple(float(v) for v in text.replace(";", ",").replace(" ", ",").split(",") if v)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0:
        raise LabelFreeError(
            f"voxel size {text!r} is not three positive numbers Z, Y, X in um "
            "(e.g. 0.29, 0.108, 0.108); leave it empty to use the image's"
        )
    return values  # type: ignore[return-value]


def _swatch(colormap: str) -> QIcon:
    """A small square of the colormap's brightest colour for the model list."""
    try:
        from napari.utils.colormaps import ensure_colormap

        rgba = ensure_colormap(colormap).map(np.array([1.0]))[0]
        color = QColor.fromRgbF(*(float(c) for c in rgba))
    except Exception:  # an unknown colormap name must not break the list
        color = QColor("gray")
    pix = QPixmap(12, 12)
    pix.fill(color)
    return QIcon(pix)


class PredictWidget(QWidget):
    """Dock widget: image layer + channel, models, device, advanced tiling; Predict / Cancel."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.run: PredictRun | None = None
        self._has_channels = False
        self._build()
        self.refresh_layers()
        self.refresh_models()
        layers = self.viewer.layers
        layers.events.inserted.connect(self.refresh_layers)
        layers.events.removed.connect(self.refresh_layers)
        layers.events.reordered.connect(self.refresh_layers)
        layers.selection.events.active.connect(self._on_active_layer)
        registry.changed.connect(self.refresh_models)
        self.destroyed.connect(self._disconnect)

    # ----------------------------------------------------------------------------- building
    def _build(self) -> None:
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The transmitted-light z-stack (defaults to the active layer)")
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("Which channel of a multi-channel layer is transmitted light")
        self.model_list = QListWidget()
        self.model_list.setToolTip("Tick one model per structure to predict")
        self.model_list.setMinimumHeight(90)
        self.add_models_btn = QPushButton("Add model folder...")
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())

        self.tile_spins = [QSpinBox() for _ in range(3)]
        for spin, value in zip(self.tile_spins, TilingConfig().tile_shape, strict=True):
            spin.setRange(8, 1024)
            spin.setSingleStep(16)
            spin.setValue(value)
        self.overlap_spin = QDoubleSpinBox()
        self.overlap_spin.setRange(0.0, 0.75)
        self.overlap_spin.setSingleStep(0.05)
        self.overlap_spin.setValue(TilingConfig().overlap)
        self.voxel_edit = QLineEdit()
        self.voxel_edit.setPlaceholderText("unknown: assume the model's")
        self.voxel_edit.setToolTip(
            "Voxel size of the image, Z, Y, X in um (from the layer's scale)"
        )

        self.predict_btn = QPushButton("Predict")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.layer_combo)
        form.addRow("Channel", self.channel_combo)
        form.addRow("Device", self.device_combo)

        tile_row = QHBoxLayout()
        for spin in self.tile_spins:
            tile_row.addWidget(spin)
        advanced = QGroupBox("Advanced")
        advanced.setCheckable(True)
        advanced.setChecked(False)
        adv_form = QFormLayout()
        adv_form.addRow("Tile Z, Y, X", tile_row)
        adv_form.addRow("Overlap", self.overlap_spin)
        adv_form.addRow("Voxel size (um)", self.voxel_edit)
        adv_body = QWidget()
        adv_body.setLayout(adv_form)
        adv_body.setVisible(False)
        advanced.toggled.connect(adv_body.setVisible)
        adv_box = QVBoxLayout()
        adv_box.addWidget(adv_body)
        advanced.setLayout(adv_box)
        self.advanced_box = advanced

        buttons = QHBoxLayout()
        buttons.addWidget(self.predict_btn)
        buttons.addWidget(self.cancel_btn)

        layout = QVBoxLayout()
        layout.addLayout(form)
        layout.addWidget(QLabel("Models"))
        layout.addWidget(self.model_list)
        layout.addWidget(self.add_models_btn)
        layout.addWidget(advanced)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setLayout(layout)

        self._inputs: list[QWidget] = [
            self.layer_combo,
            self.channel_combo,
            self.model_list,
            self.add_models_btn,
            self.device_combo,
            advanced,
            self.predict_btn,
        ]
        self.layer_combo.currentTextChanged.connect(self._on_layer_chosen)
        self.add_models_btn.clicked.connect(self._ask_model_folder)
        self.predict_btn.clicked.connect(self.predict)
        self.cancel_btn.clicked.connect(self.cancel)

    def _disconnect(self, *_: object) -> None:
        registry.changed.disconnect(self.refresh_models, missing_ok=True)

    # -------------------------------------------------------------------------- choices
    def _image_layers(self) -> list[Image]:
        return [
            ly
            for ly in self.viewer.layers
            if isinstance(ly, Image) and ly.metadata.get(META_KEY, {}).get("role") != "prediction"
        ]

    def refresh_layers(self, *_: object) -> None:
        """List the image layers (not prediction layers); keep the choice, else the active one."""
        keep = self.layer_combo.currentText()
        names = [ly.name for ly in self._image_layers()]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        self.layer_combo.blockSignals(False)
        active = preferred_source(self.viewer.layers, self.viewer.layers.selection.active)
        if keep in names:
            choice = keep
        elif active is not None and active.name in names:
            choice = active.name
        else:
            choice = next((n for n in names if looks_transmitted(n)), names[0] if names else "")
        self.layer_combo.setCurrentText(choice)
        self._on_layer_chosen(choice)

    def _on_active_layer(self, event: Any = None) -> None:
        active = preferred_source(self.viewer.layers, self.viewer.layers.selection.active)
        if self.run is None and active is not None and active in self._image_layers():
            self.layer_combo.setCurrentText(active.name)

    def _on_layer_chosen(self, name: str) -> None:
        """Fill the channel list and the voxel size from the chosen layer."""
        self.channel_combo.clear()
        self._has_channels = False
        if not name or name not in self.viewer.layers:
            self.channel_combo.setEnabled(False)
            return
        layer = self.viewer.layers[name]
        try:
            info = layer_info(layer)
        except LabelFreeError:
            self.channel_combo.setEnabled(False)
            self.voxel_edit.setText("")
            return
        self.channel_combo.addItems(info.channel_names)
        if info.has_channels:
            guess = next((i for i, n in enumerate(info.channel_names) if looks_transmitted(n)), 0)
            self.channel_combo.setCurrentIndex(guess)
        self._has_channels = info.has_channels
        self.channel_combo.setEnabled(info.has_channels and self.run is None)
        vox = info.voxel_size
        self.voxel_edit.setText(", ".join(f"{v:g}" for v in vox) if vox else "")

    def refresh_models(self, *_: object) -> None:
        """List the models of the registry, keeping the ticks."""
        try:
            ticked = set(self.checked_model_paths())
        except RuntimeError:  # this widget's Qt side is gone (its viewer closed): stop listening
            registry.changed.disconnect(self.refresh_models)
            return
        self.model_list.clear()
        for bundle in registry.models():
            item = QListWidgetItem(_swatch(bundle.spec.colormap), self._model_label(bundle))
            item.setData(Qt.ItemDataRole.UserRole, str(bundle.path))
            item.setToolTip(f"{bundle.path}\nvoxel size {bundle.spec.voxel_size_um} um")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if str(bundle.path) in ticked else Qt.CheckState.Unchecked
            )
            self.model_list.addItem(item)

    @staticmethod
    def _model_label(bundle: ModelBundle) -> str:
        name = bundle.spec.display_name or bundle.spec.structure
        where = "" if bundle.name == bundle.spec.structure else f"  [{bundle.name}]"
        return f"{name} ({bundle.spec.colormap}){where}"

    def model_paths(self) -> list[str]:
        """Every listed model folder, in list order."""
        return [
            self.model_list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.model_list.count())
        ]

    def checked_model_paths(self) -> list[str]:
        """The ticked model folders, in list order."""
        return [
            self.model_list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.model_list.count())
            if self.model_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_checked_models(self, paths: list[str | Path]) -> None:
        """Tick exactly these model folders (the others are unticked)."""
        wanted = {str(Path(p).resolve()) for p in paths}
        for i in range(self.model_list.count()):
            item = self.model_list.item(i)
            on = str(Path(item.data(Qt.ItemDataRole.UserRole)).resolve()) in wanted
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _ask_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Add a model folder (or a folder of models)"
        )
        if folder:
            self.add_model_folder(folder)

    def add_model_folder(self, folder: str | Path) -> None:
        """Add a model folder (or a folder of them) to the list and tick what it holds."""
        try:
            added = registry.add_folder(folder)
        except LabelFreeError as e:
            notify_error(e)
            return
        self.set_checked_models([*self.checked_model_paths(), *(b.path for b in added)])

    def settings(self) -> PredictSettings:
        """Read the controls once (raises LabelFreeError for what the user must fix)."""
        name = self.layer_combo.currentText()
        if not name or name not in self.viewer.layers:
            raise LabelFreeError(
                "open a transmitted-light z-stack first (File > Open, or drag it in)"
            )
        paths = self.checked_model_paths()
        if not paths:
            raise LabelFreeError(
                "tick at least one model; none listed? use 'Add model folder...' or train one"
            )
        return PredictSettings(
            layer_name=name,
            channel=self.channel_combo.currentIndex() if self.channel_combo.isEnabled() else None,
            model_paths=paths,
            device=self.device_combo.currentText(),
            tile_shape=tuple(s.value() for s in self.tile_spins),  # type: ignore[arg-type]
            overlap=float(self.overlap_spin.value()),
            voxel_size=parse_voxel_size(self.voxel_edit.text()),
        )

    # ------------------------------------------------------------------------- running
    @property
    def is_running(self) -> bool:
        return self.run is not None

    def predict(self) -> None:
        """Start predicting the chosen layer with the ticked models (in a worker thread)."""
        if self.run is not None:
            return
        try:
            self._start(self.settings())
        except LabelFreeError as e:
            notify_error(e)

    def _start(self, s: PredictSettings) -> None:
        layer = self.viewer.layers[s.layer_name]
        info = layer_info(layer)
        source = layer_source(layer, info)
        channel = s.channel if info.has_channels else None
        tiling = TilingConfig(tile_shape=s.tile_shape, overlap=s.overlap)
        # every check runs here, before any layer changes; the weights load in the worker
        plan = plan_prediction(source, s.model_paths, channel, s.voxel_size, tiling, s.device)
        bundles, names = plan.bundles, plan.names

        for old in find_prediction_layers(self.viewer, layer.name, [str(b.path) for b in bundles]):
            self.viewer.layers.remove(old)
        scale, translate = output_geometry(layer, info)
        shape = (source.n_timepoints, *source.shape_zyx) if info.has_time else source.shape_zyx
        outputs: dict[str, Image] = {}
        for name, bundle in zip(names, bundles, strict=True):
            outputs[name] = self._add_prediction_layer(
                name, bundle, shape, scale, translate, layer.name
            )
        self.viewer.layers.selection.active = layer  # keep the source the active layer

        scheduler = FrameScheduler(plan.n_frames, current=current_frame(self.viewer, layer, info))
        run = PredictRun(layer.name, scheduler, outputs, info.has_time)
        if info.has_time:
            # Two bars, frames above tiles. Not ``nest_under``: in napari 0.9.2 (PyQt6) deleting a
            # nested bar's group segfaults the activity dialog (repro in tests/widgets/conftest.py).
            run.frame_bar = progress(total=scheduler.total, desc="Predicting frames")
            run.tile_bar = progress(total=0, desc="tiles")
        else:
            run.tile_bar = progress(total=0, desc="Predicting tiles")
        worker = create_worker(_predict_job, plan, scheduler, _ignore_errors=True)
        run.worker = worker
        worker.yielded.connect(self._on_event)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.run = run
        self.viewer.dims.events.current_step.connect(self._on_slider)
        self._set_running(True)
        self.status.setText(
            f"Predicting {', '.join(names)} on {layer.name}"
            + (f": {scheduler.total} frames, t={scheduler.current} first" if info.has_time else "")
        )
        worker.start()

    def _add_prediction_layer(
        self,
        name: str,
        bundle: ModelBundle,
        shape: tuple[int, ...],
        scale: list[float],
        translate: list[float],
        source_name: str,
    ) -> Image:
        """An empty (zeros) overlay with the full shape, filled as frames finish."""
        kwargs = {
            "name": f"{name}{PREDICTED_SUFFIX}",
            "blending": "additive",
            "scale": scale,
            "translate": translate,
            "contrast_limits": (0.0, 1.0),
            "metadata": {
                META_KEY: prediction_tag(source_name, str(bundle.path))
                | {"structure": bundle.spec.structure}
            },
        }
        data = np.zeros(shape, dtype=np.float32)
        try:
            return self.viewer.add_image(data, colormap=bundle.spec.colormap, **kwargs)
        except (KeyError, ValueError):
            show_warning(f"unknown colormap {bundle.spec.colormap!r} in {bundle.path}; using gray")
            return self.viewer.add_image(data, colormap="gray", **kwargs)

    def _on_slider(self, event: Any = None) -> None:
        """The user moved the time slider: predict the frames near it next."""
        run = self.run
        if run is None or not run.has_time or run.source_name not in self.viewer.layers:
            return
        layer = self.viewer.layers[run.source_name]
        run.scheduler.set_current(current_frame(self.viewer, layer, layer_info(layer)))

    def _on_event(self, event: Any) -> None:
        run = self.run
        if run is None:
            return
        if isinstance(event, Notice):
            show_info(event.text)
        elif isinstance(event, FrameStarted):
            if run.tile_bar is not None:
                run.tile_bar.reset(total=0)
                run.tile_bar.set_description(
                    f"tiles of frame {event.frame}" if run.has_time else "Predicting tiles"
                )
        elif isinstance(event, TileDone):
            if run.tile_bar is not None:
                run.tile_bar.total = event.total
                run.tile_bar.update(1)
        elif isinstance(event, FrameDone):
            self._store_frame(run, event)

    def _store_frame(self, run: PredictRun, event: FrameDone) -> None:
        """Write one predicted frame into its overlays, in place, and redraw them.

        Book-keeping comes first: redrawing and progress updates can run the Qt event loop, which
        may deliver the worker's ``finished`` before this method returns.
        """
        run.frames_done.append(event.frame)
        if run.has_time:
            self.status.setText(
                f"{len(run.frames_done)}/{run.scheduler.total} frames predicted "
                f"(last: t={event.frame})"
            )
        first = not run.limits_set
        run.limits_set = True
        for name, arr in event.arrays.items():
            layer = run.layers.get(name)
            if layer is None or layer not in self.viewer.layers:
                continue  # the user deleted the overlay while it was filling in
            if run.has_time:
                layer.data[event.frame] = arr
            else:
                layer.data[...] = arr
            if first:
                lo, hi = robust_limits(arr)
                layer.contrast_limits_range = (min(lo, 0.0), hi)
                layer.contrast_limits = (lo, hi)
            layer.refresh()
        if run.frame_bar is not None and self.run is run:
            run.frame_bar.update(1)

    def _on_error(self, exc: BaseException) -> None:
        if self.run is not None:
            self.run.cancelled = True
        notify_error(exc, "prediction")

    def _on_finished(self) -> None:
        run = self.run
        if run is None:
            return
        self.run = None
        self.viewer.dims.events.current_step.disconnect(self._on_slider)
        for bar in (run.tile_bar, run.frame_bar):
            if bar is not None:
                bar.close()
        self._set_running(False)
        n, total = len(run.frames_done), run.scheduler.total
        if run.cancelled or n < total:
            self.status.setText(
                f"Stopped: {n} of {total} frame(s) predicted; the others are empty."
                if run.has_time
                else "Stopped before the prediction finished."
            )
        else:
            self.status.setText(
                f"Done: {', '.join(ly.name for ly in run.layers.values())}"
                + (f" ({n} frames)" if run.has_time else "")
            )

    def cancel(self) -> None:
        """Stop after the current tile; frames already predicted stay."""
        if self.run is not None and self.run.worker is not None:
            self.run.cancelled = True
            self.status.setText("Cancelling...")
            self.run.worker.quit()

    def _set_running(self, running: bool) -> None:
        for w in self._inputs:
            w.setEnabled(not running)
        self.channel_combo.setEnabled(not running and self._has_channels)
        self.cancel_btn.setEnabled(running)
