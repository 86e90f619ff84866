"""The "Train a label-free model" dock widget: signal + target layers in, a model bundle out.

Thin: :func:`napari_labelfree.core.train.iter_train` does the work in a napari worker thread; this
widget plots its loss, shows progress, stops it (closing the generator writes the current weights as
a usable model) and hands the new model to the shared registry, so the Predict widget lists it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.bundle import open_bundle, user_models_dir
from ..core.config import Architecture, ModelSpec
from ..core.device import available_devices, release_memory
from ..core.errors import LabelFreeError
from ..core.events import Notice
from ..core.structures import COLORMAP_CHOICES as COLORMAPS
from ._layers import META_KEY, layer_info, layer_source, looks_transmitted
from ._registry import registry
from ._workers import guarded, notify_error, stoppable

if TYPE_CHECKING:
    import napari


@dataclass
class TrainSettings:
    """Everything one Train click needs, read from the controls once."""

    signal_layer: str
    target_layer: str
    structure: str
    colormap: str = "green"
    iterations: int = 2000
    patch_shape: tuple[int, int, int] = (32, 64, 64)
    batch_size: int = 8
    lr: float = 1e-3
    depth: int = 4
    width: int = 32
    out_dir: Path = field(default_factory=Path)
    device: str = "auto"


@dataclass
class TrainRun:
    """State of a running training."""

    out_dir: Path
    total: int
    stop: threading.Event = field(default_factory=threading.Event)
    worker: Any = None
    bar: progress | None = None
    iterations: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_iterations: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    result_path: Path | None = None
    failed: bool = False
    last_draw: float = 0.0


def _train_job(pairs, spec, out_dir, config, device, stop):
    """Worker body: iter_train until done or stopped; returns (bundle or None, stopped)."""
    from ..core.train import iter_train  # torch is imported when training starts, not on open

    return (
        yield from guarded(stoppable(iter_train(pairs, spec, out_dir, config, device=device), stop))
    )


def unique_folder(parent: Path, name: str) -> Path:
    """``parent/name``, or ``parent/name-2``, ``-3``... the first that does not exist."""
    candidate = parent / name
    k = 2
    while candidate.exists():
        candidate = parent / f"{name}-{k}"
        k += 1
    return candidate


class LossPlot(QWidget):
    """A small matplotlib plot of training (and validation) loss against iteration."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(160)
        self.ax = self.figure.add_subplot(111)
        layout = QVBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setLayout(layout)
        self.clear()

    def clear(self) -> None:
        self.ax.clear()
        self.ax.set_xlabel("iteration")
        self.ax.set_ylabel("MSE loss")
        (self.train_line,) = self.ax.plot([], [], lw=1, label="train")
        (self.val_line,) = self.ax.plot([], [], "o-", ms=3, lw=1, label="validation")
        self.canvas.draw_idle()

    def update_lines(self, run: TrainRun) -> None:
        self.train_line.set_data(run.iterations, run.losses)
        self.val_line.set_data(run.val_iterations, run.val_losses)
        if run.losses:
            self.ax.set_yscale("log" if min(run.losses) > 0 else "linear")
        self.ax.relim()
        self.ax.autoscale_view()
        self.canvas.draw_idle()


class TrainWidget(QWidget):
    """Dock widget: signal and target layers (or files), structure, iterations, patch, output."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.run: TrainRun | None = None
        self.last_model: Path | None = None
        self._out_edited = False
        self._build()
        self.refresh_layers()
        layers = self.viewer.layers
        layers.events.inserted.connect(self.refresh_layers)
        layers.events.removed.connect(self.refresh_layers)

    # ----------------------------------------------------------------------------- building
    def _build(self) -> None:
        self.signal_combo = QComboBox()
        self.signal_combo.setToolTip("Transmitted-light z-stack (the network's input)")
        self.target_combo = QComboBox()
        self.target_combo.setToolTip(
            "Fluorescence z-stack of the structure, registered to the signal"
        )
        self.signal_file_btn = QPushButton("File...")
        self.target_file_btn = QPushButton("File...")
        self.structure_edit = QLineEdit("dna")
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(COLORMAPS)
        self.iterations_spin = QSpinBox()
        self.iterations_spin.setRange(1, 1_000_000)
        self.iterations_spin.setValue(2000)
        self.patch_spins = [QSpinBox() for _ in range(3)]
        for spin, value in zip(self.patch_spins, (32, 64, 64), strict=True):
            spin.setRange(4, 512)
            spin.setSingleStep(8)
            spin.setValue(value)
        self.out_edit = QLineEdit()
        self.out_btn = QPushButton("...")
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setValue(8)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(1e-5, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(1e-3)
        self.depth_spin = QSpinBox()
        self.depth_spin.setRange(1, 6)
        self.depth_spin.setValue(4)
        self.width_spin = QSpinBox()
        self.width_spin.setRange(4, 128)
        self.width_spin.setValue(32)

        self.train_btn = QPushButton("Train")
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        self.stop_btn.setToolTip("Stop now and keep the current weights as a usable model")
        self.plot = LossPlot()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        def row(*widgets: QWidget) -> QHBoxLayout:
            box = QHBoxLayout()
            for w in widgets:
                box.addWidget(w)
            return box

        form = QFormLayout()
        form.addRow("Signal", row(self.signal_combo, self.signal_file_btn))
        form.addRow("Target", row(self.target_combo, self.target_file_btn))
        form.addRow("Structure", row(self.structure_edit, self.colormap_combo))
        form.addRow("Iterations", self.iterations_spin)
        form.addRow("Patch Z, Y, X", row(*self.patch_spins))
        form.addRow("Output folder", row(self.out_edit, self.out_btn))
        form.addRow("Device", self.device_combo)

        advanced = QGroupBox("Advanced")
        advanced.setCheckable(True)
        advanced.setChecked(False)
        adv_form = QFormLayout()
        adv_form.addRow("Batch size", self.batch_spin)
        adv_form.addRow("Learning rate", self.lr_spin)
        adv_form.addRow("U-Net depth", self.depth_spin)
        adv_form.addRow("U-Net width", self.width_spin)
        adv_body = QWidget()
        adv_body.setLayout(adv_form)
        adv_body.setVisible(False)
        advanced.toggled.connect(adv_body.setVisible)
        box = QVBoxLayout()
        box.addWidget(adv_body)
        advanced.setLayout(box)

        layout = QVBoxLayout()
        layout.addLayout(form)
        layout.addWidget(advanced)
        layout.addLayout(row(self.train_btn, self.stop_btn))
        layout.addWidget(self.plot)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setLayout(layout)

        self._inputs: list[QWidget] = [
            self.signal_combo,
            self.target_combo,
            self.signal_file_btn,
            self.target_file_btn,
            self.structure_edit,
            self.colormap_combo,
            self.iterations_spin,
            *self.patch_spins,
            self.out_edit,
            self.out_btn,
            self.device_combo,
            advanced,
            self.train_btn,
        ]
        self.structure_edit.textChanged.connect(self._suggest_output)
        self.out_edit.textEdited.connect(self._on_out_edited)
        self.out_btn.clicked.connect(self._ask_output)
        self.signal_file_btn.clicked.connect(lambda: self._ask_file(self.signal_combo))
        self.target_file_btn.clicked.connect(lambda: self._ask_file(self.target_combo))
        self.train_btn.clicked.connect(self.train)
        self.stop_btn.clicked.connect(self.stop)
        self._suggest_output(self.structure_edit.text())

    # -------------------------------------------------------------------------- choices
    def _image_layers(self) -> list[Image]:
        return [
            ly
            for ly in self.viewer.layers
            if isinstance(ly, Image) and ly.metadata.get(META_KEY, {}).get("role") != "prediction"
        ]

    def refresh_layers(self, *_: object) -> None:
        """List image layers; guess signal = transmitted-looking, target = another one."""
        names = [ly.name for ly in self._image_layers()]
        for combo, guess in (
            (self.signal_combo, next((n for n in names if looks_transmitted(n)), None)),
            (self.target_combo, next((n for n in names if not looks_transmitted(n)), None)),
        ):
            keep = combo.currentText()
            combo.clear()
            combo.addItems(names)
            combo.setCurrentText(keep if keep in names else (guess or (names[0] if names else "")))

    def _on_out_edited(self, _: str) -> None:
        self._out_edited = True

    def _suggest_output(self, structure: str) -> None:
        """Until the user types a folder: a new folder named after the structure in the user models."""
        if not self._out_edited:
            name = structure.strip() or "model"
            self.out_edit.setText(str(unique_folder(user_models_dir(), name)))

    def _ask_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder in which to create the model")
        if folder:
            self._out_edited = True
            name = self.structure_edit.text().strip() or "model"
            self.out_edit.setText(str(unique_folder(Path(folder), name)))

    def _ask_file(self, combo: QComboBox) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a z-stack", "", "Images (*.czi *.ome.tif *.ome.tiff *.tif *.tiff)"
        )
        if path:
            self.open_file(path, combo)

    def open_file(self, path: str | Path, combo: QComboBox) -> None:
        """Open a file as layers (this plugin's reader) and choose its first new layer in ``combo``."""
        try:
            added = self.viewer.open(str(path), plugin="napari-labelfree")
        except Exception as e:  # napari wraps reader errors in its own types
            notify_error(LabelFreeError(f"cannot open {path}: {e}"))
            return
        if added:
            combo.setCurrentText(added[0].name)

    def settings(self) -> TrainSettings:
        """Read the controls once (raises LabelFreeError for what the user must fix)."""
        sig, tgt = self.signal_combo.currentText(), self.target_combo.currentText()
        if not sig or not tgt:
            raise LabelFreeError("choose a signal and a target layer (or open them from files)")
        if sig == tgt:
            raise LabelFreeError(
                "signal and target are the same layer; choose the fluorescence one as target"
            )
        structure = self.structure_edit.text().strip()
        if not structure:
            raise LabelFreeError("name the structure (e.g. dna, lamin-b1, tom20)")
        out = self.out_edit.text().strip()
        if not out:
            raise LabelFreeError("choose an output folder for the model")
        return TrainSettings(
            signal_layer=sig,
            target_layer=tgt,
            structure=structure,
            colormap=self.colormap_combo.currentText(),
            iterations=self.iterations_spin.value(),
            patch_shape=tuple(s.value() for s in self.patch_spins),  # type: ignore[arg-type]
            batch_size=self.batch_spin.value(),
            lr=float(self.lr_spin.value()),
            depth=self.depth_spin.value(),
            width=self.width_spin.value(),
            out_dir=Path(out).expanduser(),
            device=self.device_combo.currentText(),
        )

    def _pairs(self, s: TrainSettings) -> list:
        """One ImagePair per time point of the signal/target layers (ZYX, raw intensities)."""
        from ..core.train import ImagePair

        sig_layer, tgt_layer = (
            self.viewer.layers[s.signal_layer],
            self.viewer.layers[s.target_layer],
        )
        sig_info, tgt_info = layer_info(sig_layer), layer_info(tgt_layer)
        sig, tgt = layer_source(sig_layer, sig_info), layer_source(tgt_layer, tgt_info)
        if sig.shape_zyx != tgt.shape_zyx or sig.n_timepoints != tgt.n_timepoints:
            raise LabelFreeError(
                f"signal {sig.shape_tczyx} and target {tgt.shape_tczyx} (T, C, Z, Y, X) differ in "
                "shape; they must be registered images of the same field"
            )
        cs = 0 if sig.n_channels == 1 else sig.channel_index(None)
        ct = 0 if tgt.n_channels == 1 else tgt.channel_index(None)
        return [
            ImagePair(
                signal=sig.frame(t, cs),
                target=tgt.frame(t, ct),
                voxel_size=sig_info.voxel_size,
                name=f"{s.signal_layer} t={t}",
            )
            for t in range(sig.n_timepoints)
        ]

    # ------------------------------------------------------------------------- running
    @property
    def is_running(self) -> bool:
        return self.run is not None

    def train(self) -> None:
        """Start training in a worker thread."""
        if self.run is not None:
            return
        try:
            self._start(self.settings())
        except LabelFreeError as e:
            notify_error(e)

    def _start(self, s: TrainSettings) -> None:
        from ..core.train import TrainConfig

        if s.out_dir.exists() and any(s.out_dir.iterdir()):
            raise LabelFreeError(
                f"{s.out_dir} already exists and is not empty; choose a new folder"
            )
        pairs = self._pairs(s)
        spec = ModelSpec(
            structure=s.structure,
            colormap=s.colormap,
            architecture=Architecture(depth=s.depth, width=s.width),
        )
        multiple = spec.architecture.multiple
        if any(p % multiple for p in s.patch_shape):
            raise LabelFreeError(
                f"each patch size must be a multiple of {multiple} for a U-Net of depth {s.depth}; "
                f"got {s.patch_shape}"
            )
        config = TrainConfig(
            iterations=s.iterations,
            batch_size=s.batch_size,
            patch_shape=s.patch_shape,
            lr=s.lr,
            checkpoint_every=max(1, min(500, s.iterations)),
            validate_every=max(1, min(500, s.iterations)),
        )
        run = TrainRun(out_dir=s.out_dir, total=s.iterations)
        run.bar = progress(total=s.iterations, desc=f"Training {s.structure}")
        worker = create_worker(
            _train_job, pairs, spec, s.out_dir, config, s.device, run.stop, _ignore_errors=True
        )
        run.worker = worker
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.run = run
        self.plot.clear()
        self._set_running(True)
        self.status.setText(f"Training {s.structure} for {s.iterations} iterations -> {s.out_dir}")
        worker.start()

    def _on_event(self, event: Any) -> None:
        from ..core.train import CheckpointSaved, TrainStep, Validated

        run = self.run
        if run is None:
            return
        if isinstance(event, TrainStep):
            run.iterations.append(event.iteration)
            run.losses.append(event.loss)
            now = time.monotonic()
            if now - run.last_draw > 0.3 or event.iteration == event.total:
                run.last_draw = now
                self.plot.update_lines(run)
                self.status.setText(
                    f"iteration {event.iteration}/{event.total}, loss {event.loss:.4g}, "
                    f"{event.its_per_s:.2f} it/s"
                )
            # last: updating a progress bar can run the event loop (and deliver ``finished``)
            if run.bar is not None and self.run is run:
                run.bar.update(event.iteration - run.bar.n)
        elif isinstance(event, Validated):
            run.val_iterations.append(event.iteration)
            run.val_losses.append(event.val_loss)
            self.plot.update_lines(run)
        elif isinstance(event, CheckpointSaved):
            pass  # the checkpoint is for resuming; the status line already shows progress
        elif isinstance(event, Notice):
            show_info(event.text)

    def _on_returned(self, value: Any) -> None:
        if self.run is None:
            return
        bundle, stopped = value if isinstance(value, tuple) else (value, False)
        self.run.result_path = Path(bundle.path) if bundle is not None else self.run.out_dir

    def _on_error(self, exc: BaseException) -> None:
        if self.run is not None:
            self.run.failed = True
        notify_error(exc, "training")

    def _on_finished(self) -> None:
        run = self.run
        if run is None:
            return
        self.run = None
        if run.bar is not None:
            run.bar.close()
        self.plot.update_lines(run)
        release_memory()  # the worker's tensors are gone; give cached GPU memory back
        self._set_running(False)
        path = run.result_path or run.out_dir
        try:
            bundle = open_bundle(path)
        except LabelFreeError:
            if not run.failed:
                notify_error(LabelFreeError(f"training ended without a model in {path}"))
            self.status.setText("Training failed; no model was written.")
            return
        registry.add_folder(bundle.path)
        self.last_model = bundle.path
        done = run.iterations[-1] if run.iterations else 0
        stopped = run.stop.is_set() and done < run.total
        self.status.setText(
            f"{'Stopped' if stopped else 'Done'} after {done} iterations: model "
            f"{bundle.spec.structure!r} in {bundle.path}; it is listed in Label-free prediction."
        )
        show_info(f"model {bundle.spec.structure!r} saved to {bundle.path}")
        self._out_edited = False
        self._suggest_output(self.structure_edit.text())

    def stop(self) -> None:
        """Stop at the next iteration; the current weights are written as a usable model."""
        if self.run is not None:
            self.run.stop.set()
            self.status.setText("Stopping: writing the current weights...")

    def _set_running(self, running: bool) -> None:
        for w in self._inputs:
            w.setEnabled(not running)
        self.stop_btn.setEnabled(running)
