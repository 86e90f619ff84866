"""The "Label-free prediction" dock widget: choose an image and models, predict coloured overlays.

Thin on purpose: magicgui forms for the settings, the core plans and checks the job
(``plan_prediction`` in the worker, see :mod:`._predict_job`), :class:`~._jobs.JobRunner` runs it
and shows progress, :class:`~._overlay_run.OverlayRun` turns finished frames into layers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, PushButton
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core.errors import LabelFreeError
from ..core.predict.schedule import FrameScheduler
from ._jobs import JobRunner, progress_bar
from ._layers import (
    FollowsRenames,
    LayerInfo,
    current_frame,
    follow_rename,
    format_voxel_size,
    layer_info,
    layer_source,
    looks_transmitted,
    parse_voxel_size,
)
from ._model_list import ModelPanel
from ._overlay_run import OverlayRun
from ._overlays import FrameReady, image_layer_names
from ._predict_export import MergedExport
from ._predict_guards import enter_voxel_size, show_assumption, warn_fluorescence_once
from ._predict_job import Planned, PredictRequest, VolumePartial, predict_job, tiling_from_text
from ._predict_texts import TOOLTIPS, UNKNOWN_VOXEL
from ._reader_question import ReaderQuestion
from ._scene_queue import SceneQueue, sibling_scenes
from ._scroll import set_scrolling_layout
from ._source_kind import default_source
from ._trust import TrustControls
from ._workers import load_devices, notify_error

if TYPE_CHECKING:
    import napari


def _row(*widgets: Any) -> Container:
    return Container(widgets=list(widgets), layout="horizontal", labels=False)


def _label() -> QLabel:
    label = QLabel("")
    label.setWordWrap(True)
    return label


class PredictWidget(MergedExport, FollowsRenames, QWidget):
    """Dock widget: image, channel, voxel size, models, device and tiles; Predict / Cancel."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.memory: dict[str, dict[str, str]] = {}  # layer name -> what the user set
        self.run: OverlayRun | None = None
        self.ending: OverlayRun | None = None  # a run that ended, its last overlays being added
        self.end_args: tuple[BaseException | None, bool, int] = (None, False, 0)
        self.layers_ready = threading.Event()
        self.precision = "auto"  # TilingConfig.precision; tests set "fp32" (no control yet)
        self.warned: tuple[str, int | None] | None = None  # fluorescence warned of, once
        self.queue = SceneQueue()  # "every scene of this file": the scenes still to predict
        self._build()
        self.trust = TrustControls(self)  # uncertainty option, input warnings, Compare with
        self.runner = JobRunner(
            self,
            "prediction",
            self._on_event,
            self._on_done,
            controls={"voxel_size": self.voxel_size, "force": self.force, "tile_shape": self.tile}
            | {"image": self.image, "channel": self.channel, "device": self.device}
            | {"precision": self.device},
            bar=self.progress_bar,
        )
        self.runner.state.events.running.connect(self._set_running)
        self.runner.state.events.status.connect(lambda text: self.status.setText(text))
        self.refresh_layers()
        layers = self.viewer.layers
        layers.events.inserted.connect(self.refresh_layers)
        layers.events.removed.connect(self._on_removed)
        self.watch_renames(self.viewer)
        self.viewer.dims.events.current_step.connect(self._on_slider)
        self.destroyed.connect(self.models.disconnect_registry)
        load_devices(self._set_devices)

    # ----------------------------------------------------------------------------- building
    def _build(self) -> None:
        tips = TOOLTIPS
        self.image = ComboBox(label="Image", choices=self._image_names, nullable=True)
        self.channel = ComboBox(label="Channel", choices=[])
        self.voxel_size = LineEdit(label="Voxel size (µm)")
        self.voxel_size.native.setPlaceholderText(UNKNOWN_VOXEL)
        self.force = CheckBox(text="Allow unusual resampling")
        self.every_scene = CheckBox(text="Every scene of this file", visible=False)
        self.models = ModelPanel()
        self.device = ComboBox(label="Device", choices=["auto", "cpu"], value="auto")
        self.tile = LineEdit(label="Max tile Z, Y, X", value="auto")
        self.overlap = FloatSpinBox(label="Tile overlap", min=0.0, max=0.75, step=0.05, value=0.1)
        self.tta = ComboBox(label="Test-time augm.", choices=["none", "yx", "yxz"], value="none")
        self.predict_btn = PushButton(text="Predict")
        self.assumption = _label()  # the voxel size Predict assumes, while it is unknown
        self.cancel_btn = PushButton(text="Cancel", enabled=False)
        self.save_merged = PushButton(text="Save merged image...")
        for name, tip in tips.items():
            getattr(self, name).tooltip = tip
        self.form = Container(
            widgets=[self.image, self.channel, self.every_scene, self.voxel_size, self.force]
        )
        self.advanced = Container(widgets=[self.device, self.tile, self.overlap, self.tta])
        self.progress_bar = progress_bar()
        self.status = _label()
        layout = QVBoxLayout()
        for part in (
            ReaderQuestion(),
            self.form.native,
            self.models,
            self.advanced.native,
            _row(self.predict_btn, self.cancel_btn).native,
            self.assumption,
            self.save_merged.native,
            self.progress_bar,
            self.status,
        ):
            layout.addWidget(part)
        layout.addStretch(1)
        set_scrolling_layout(self, layout)  # a dock shorter than its contents scrolls
        self.image.changed.connect(self._on_image)
        self.channel.changed.connect(lambda v: self._remember("channel", v))
        self.voxel_size.native.editingFinished.connect(self._on_voxel_entered)
        for signal in (self.voxel_size.changed, self.models.list.itemChanged):
            signal.connect(self._show_assumption)
        for button, slot in ((self.predict_btn, self.predict), (self.cancel_btn, self.cancel)):
            button.clicked.connect(slot)
        self.save_merged.clicked.connect(self._ask_save_merged)

    # -------------------------------------------------------------------------- the image
    def _image_names(self, *_: Any) -> list[str]:
        return image_layer_names(self.viewer)

    def refresh_layers(self, *_: Any) -> None:
        """List the images; keep the choice, else take the transmitted-light one."""
        keep = self.image.value
        self.image.reset_choices()
        names = self._image_names()
        if keep not in names:
            best = default_source([self.viewer.layers[n] for n in names])  # never fluorescence
            self.image.value = best.name if best is not None else None
        self._on_image(self.image.value)

    def _on_renamed(self, event: Any) -> None:
        """A layer was renamed: the list shows the new name, a chosen layer stays chosen (and
        keeps what the user set for it)."""
        stale = self.image.value
        if follow_rename(self.image, self.viewer, event.source) and stale in self.memory:
            self.memory[event.source.name] = self.memory.pop(stale)

    def _layer(self) -> tuple[Any, LayerInfo]:
        name = self.image.value
        if not name or name not in self.viewer.layers:
            raise LabelFreeError(
                "open a transmitted-light z-stack first (File > Open, or drag it in)"
            )
        layer = self.viewer.layers[name]
        return layer, layer_info(layer)

    def _on_image(self, name: str | None) -> None:
        """Show the chosen layer's channels and voxel size (or what the user set for it)."""
        try:
            layer, info = self._layer()
        except LabelFreeError:
            with self.channel.changed.blocked():
                self.channel.choices, self.voxel_size.value = [], ""
            self._show_assumption()
            return
        mem = self.memory.setdefault(layer.name, {})
        guess = next((n for n in info.channel_names if looks_transmitted(n)), info.channel_names[0])
        with self.channel.changed.blocked():  # filling in is not the user's choice
            self.channel.choices = info.channel_names
            self.channel.value = mem.get("channel", guess)
        self.channel.enabled = info.has_channels and not self.runner.running
        others = sibling_scenes(self.viewer.layers, layer)
        self.every_scene.visible = bool(others)
        self.every_scene.tooltip = (
            f"Predict this scene, then the same channel of the other {len(others)} scenes of "
            "its file, one after another (each its own overlays; Cancel stops the round)"
        )
        self.voxel_size.value = mem.get("voxel_size") or format_voxel_size(info.voxel_size)
        self._show_assumption()

    def _show_assumption(self, *_: Any) -> None:
        show_assumption(self)  # beside Predict, while the voxel size is unknown

    def _remember(self, key: str, value: Any) -> None:
        if self.image.value and value is not None:
            self.memory.setdefault(self.image.value, {})[key] = str(value)

    def _on_voxel_entered(self) -> None:
        """An entered voxel size is checked (core), remembered, and becomes the layer's scale."""
        vox = enter_voxel_size(self)
        if vox is not None:
            self._remember("voxel_size", format_voxel_size(vox))

    def _set_devices(self, devices: list[str]) -> None:
        with contextlib.suppress(RuntimeError):  # the widget closed before torch answered
            self.device.choices = devices

    # ----------------------------------------------------------------------------- running
    @property
    def is_running(self) -> bool:
        """A prediction runs, or its last overlays are still being added."""
        return self.runner.running or self.ending is not None

    def request(self) -> PredictRequest:
        """Read the controls once (raises LabelFreeError for what the user must fix)."""
        layer, info = self._layer()
        bundles = self.models.checked_bundles()
        if not bundles:
            raise LabelFreeError(
                "tick at least one model; none listed? use 'Import model...', "
                "'Add model folder...' or train one",
                field="models",
            )
        vox = parse_voxel_size(self.voxel_size.value)
        tiling, auto, notice = tiling_from_text(
            self.tile.value, self.overlap.value, bundles, self.precision
        )
        tiling = dataclasses.replace(
            tiling, tta=self.tta.value, uncertainty=bool(self.trust.uncertainty.value)
        )
        if notice is not None:
            show_info(notice.text)
            self.tile.value = ", ".join(map(str, tiling.tile_shape))
        source = layer_source(layer, info)
        return PredictRequest(
            source=source,
            source_name=layer.name,
            bundles=bundles,
            channel=info.channel_names.index(self.channel.value) if info.has_channels else None,
            voxel_size=vox,
            tiling=tiling,
            device=self.device.value,
            force=bool(self.force.value),
            auto_tile=auto,
            scheduler=FrameScheduler(source.n_timepoints, current_frame(self.viewer, layer, info)),
            has_time=info.has_time,
            model_paths=[str(b.path) for b in bundles],
            has_z="Z" in info.axes,
        )

    def predict(self, queued: bool = False) -> None:
        """Predict the chosen layer with the ticked models (in a worker thread); ``queued``: the
        next scene of a round over a file's scenes, started by the end of the one before."""
        if self.runner.running or (queued and self.runner.closed):
            return
        # a run still adding its last overlays ends now, before the next starts (no round goes on)
        self._end_run(chain=False)
        try:
            req = self.request()
        except LabelFreeError as e:
            notify_error(e)
            self.runner.highlight(e.fields)
            if queued:  # the round ends here: say how far it came
                self.status.setText(self.status.text() + self.queue.end(False))
            return
        layer, info = self._layer()
        # said once: Predict again goes ahead (a round's later scenes: the channel was accepted)
        if not queued and warn_fluorescence_once(self, layer, req.channel):
            return
        if not queued:
            others = sibling_scenes(self.viewer.layers, layer) if self.every_scene.value else []
            for name in others:  # one acquisition: the channel and voxel size entered for it
                self.memory[name] = dict(self.memory.get(layer.name, {}))
            self.queue.fill(layer, others)
            self.runner.said = set() if others else None  # a round: each notice once
        self.run = OverlayRun(self.viewer, layer, info, req.model_paths)
        self.scheduler, self.layers_ready = req.scheduler, req.layers_ready
        status = f"Predicting on {layer.name}{self.queue.position()}..."
        self.runner.start(predict_job, req, status=status)

    def cancel(self) -> None:
        """Stop after the current tile; frames already predicted stay."""
        self.runner.cancel()
        self.layers_ready.set()

    def _on_event(self, event: Any) -> None:
        self.trust.on_event(event)  # marks a model whose training images the input is unlike
        if self.run is None:
            return
        if isinstance(event, Planned):
            self.run.planned(event)
        elif isinstance(event, FrameReady | VolumePartial):  # a frame, or one volume so far
            if isinstance(event, FrameReady):
                self.run.frame_ready(event)
            else:
                self.run.partial_ready(event)
            self._start_creating(self.run)

    def _start_creating(self, run: OverlayRun) -> None:
        if run.pending and not run.creating:  # one chain of additions at a time
            run.creating = True
            QTimer.singleShot(30, lambda: self._create_next(run))

    def _create_next(self, run: OverlayRun) -> None:
        """Add the next overlay; the next one after 30 ms, so the viewer redraws in between."""
        if self.runner.closed:
            return
        if run.create_next():
            QTimer.singleShot(30, lambda: self._create_next(run))
            return
        if run is self.run:
            self.layers_ready.set()  # the worker goes on with the next frame
        elif run is self.ending:  # the run ended while its last overlays were being added
            self._end_run()

    def _on_done(self, value: Any, stopped: bool, error: BaseException | None) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        total = self.runner.progress.frames_total
        self.ending, self.end_args = run, (error, stopped, total)
        if run.pending or run.creating:
            # frames that finished get their layers first, one per event-loop turn (all of them
            # and the renames in one turn held the viewer for half a second); the end follows
            self._start_creating(run)
        else:
            self._end_run()

    def _end_run(self, chain: bool = True) -> None:
        """The run's last overlays are added: rename them, say what was done (never removes);
        in a round over a file's scenes (``chain``), the next scene starts."""
        run, self.ending = self.ending, None
        if run is None:
            return
        error, stopped, total = self.end_args
        complete = error is None and run.complete(total)
        run.finish(complete=complete)  # adds any still pending
        summary = run.summary(error, stopped, total)
        following = self.queue.take_next(self._image_names()) if complete and chain else None
        if following is None:
            summary += self.queue.end(complete and chain)
        self.status.setText(summary)
        if following is not None:
            self.image.value = following
            QTimer.singleShot(0, lambda: self.predict(queued=True))

    def _on_removed(self, event: Any) -> None:
        """A layer went: a run whose source or overlay it was stops; the image list follows."""
        if self.run is not None and self.run.owns(event.value):
            self.cancel()
        self.refresh_layers()

    def _on_slider(self, event: Any = None) -> None:
        """The user moved the time slider: predict the frames near it next."""
        run = self.run
        if run is None or not run.info.has_time or run.source not in self.viewer.layers:
            return
        self.scheduler.set_current(current_frame(self.viewer, run.source, run.info))

    def _set_running(self, running: bool) -> None:
        for w in (self.form, self.advanced, self.predict_btn):
            w.enabled = not running
        self.models.setEnabled(not running)
        self.cancel_btn.enabled = running
        if not running:
            self._on_image(self.image.value)
