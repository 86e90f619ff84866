"""The "Train a label-free model" dock widget: signal + target layers in, a model bundle out.

Thin: a magicgui form; :func:`napari_labelfree.core.train.iter_train` checks and trains in a
worker (:class:`~._jobs.JobRunner`); defaults fit the device and the time per iteration is measured
before starting (``core.train_estimate``); Stop closes the generator at the next step, which
writes the current weights as a usable model; the new model joins the shared registry, so the
Predict widget lists it, under a name no other model has.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core import bundle as bundles
from ..core.bundle import open_bundle
from ..core.config import KIND_OPTIONS, PAPER_VOXEL_SIZE_UM, Architecture, ModelSpec
from ..core.errors import LabelFreeError
from ..core.structures import COLORMAP_CHOICES, colormap_for
from ..core.train.adapt import held_out_score
from ..core.train_estimate import TrainDefaults, defaults_for, format_duration
from ._jobs import JobRunner, progress_bar
from ._layers import (
    FollowsRenames,
    follow_rename,
    layer_info,
    layer_source,
    looks_transmitted,
    other_field,
    other_scene,
    plugin_metadata,
    transmitted_fields,
)
from ._loss_plot import LossPlot
from ._models import taken_names, unique_model_folder
from ._overlays import image_layer_names
from ._predict_job import parse_zyx_shape
from ._registry import registry
from ._scene_queue import scene_pairs
from ._scroll import set_scrolling_layout
from ._source_kind import default_source
from ._train_job import estimate_job, train_job
from ._workers import load_devices, notify_error

NEW = "a new network"  # the "Start from" choice that fine-tunes nothing
# the network kinds of `labelfree train --kind`, as the form lists them
# and a 2.5D network reading the whole stack against a one-plane target, a projection (as
# `--kind 2.5d --target-projection max --in-planes N`): chosen by itself for such a target;
# or a 3D network learning the projection at every plane (`--kind 3d --target-projection max`):
# slower, and it can adapt a built-in model (docs/real-cells.md, "The Train widget's projection
# network on the four quarters")
STACK_TO_PLANE = "2.5d-projection"
STACK_TO_PLANE_3D = "3d-projection"
PROJECTION_KINDS = (STACK_TO_PLANE, STACK_TO_PLANE_3D)
STACK_KINDS = ("3d", STACK_TO_PLANE_3D)  # 3D networks: a 3D patch; a built-in can start them
KIND_CHOICES = [
    ("3D: a z-stack in, a z-stack out", "3d"),
    ("2D: each plane on its own", "2d"),
    ("2.5D: 5 planes in, the middle one out", "2.5d"),
    ("2.5D: the whole stack in, its projection out", STACK_TO_PLANE),
    ("3D: the whole stack in, its projection at every plane", STACK_TO_PLANE_3D),
]
PLOT_EVERY_S = 2.0  # the live loss plot's redraw interval during training


def default_start(structure: str) -> str | None:
    """The "Start from" value for a structure: its built-in model's folder, else a new network."""
    from ..core.train.adapt import builtin_for

    found = builtin_for(structure)
    return str(found.path) if found is not None else None


def remove_unfinished(out: Path) -> bool:
    """Remove the folder of a run that failed before writing a model; True if removed.

    Only a folder this widget created: the name was free when training started (``train``
    refuses a name in use), so it holds nothing but the failed run's log, curve or checkpoint.
    A folder with a model in it (``config.json``) is never touched.
    """
    import shutil

    if not out.is_dir() or (out / "config.json").exists():
        return False
    shutil.rmtree(out, ignore_errors=True)
    return not out.exists()


if TYPE_CHECKING:
    import napari


class TrainWidget(FollowsRenames, QWidget):
    """Dock widget: signal and target layers, structure, model name, sizes, device; Train / Stop."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.last_model: Path | None = None
        self.history: dict[str, list] = {"it": [], "loss": [], "val_it": [], "val": []}
        self._last_draw = 0.0
        # depth and width the start model put in the form (a new network then gets its own)
        self._sizes_from_start: tuple[int, int] | None = None
        self._build()
        self._discard = threading.Event()  # set when the window closes mid-training
        self.runner = JobRunner(
            self,
            "training",
            self._on_event,
            self._on_done,
            on_close=self._discard_on_close,
            ask_on_close=(
                "A model is being trained ({status}). Close the window and discard it? "
                "(No keeps training; Stop keeps the weights trained so far as a model.)"
            ),
            bar=self.progress_bar,
        )
        self.runner.state.events.running.connect(self._set_running)
        self.runner.state.events.status.connect(lambda text: self.status.setText(text))
        self.estimator = JobRunner(self, "time estimate", lambda _: None, self._on_estimate)
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(600)  # measure once the user stops typing
        self._estimate_timer.timeout.connect(self.estimate)
        for w in (self.depth, self.width, self.batch, self.patch, self.device, self.kind):
            w.changed.connect(self._settings_changed)
        self.start_from.changed.connect(self._start_changed)
        self._start_changed(self.start_from.value)
        self.refresh_layers()
        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
        self.watch_renames(self.viewer)
        load_devices(self._set_devices)

    # ----------------------------------------------------------------------------- building
    def _build(self) -> None:
        d = defaults_for("cpu")  # until torch says whether there is a GPU
        self.signal = ComboBox(label="Signal", choices=self._image_names, nullable=True)
        self.signal.tooltip = "Transmitted-light z-stack (the network's input)"
        self.target = ComboBox(label="Target", choices=self._image_names, nullable=True)
        self.target.tooltip = "Fluorescence z-stack of the structure, registered to the signal"
        self.every_scene = CheckBox(text="Every scene of this file", visible=False)
        self.structure = LineEdit(label="Structure", value="dna")
        self.structure.tooltip = "What the target shows (dna, lamin-b1, tom20, ...)"
        self.colormap = ComboBox(
            label="Colour", choices=COLORMAP_CHOICES, value=colormap_for("dna")
        )
        self.colormap.tooltip = "Overlay colour of the model's predictions (by structure)"
        self.name = LineEdit(
            label="Model name", value=unique_model_folder(bundles.user_models_dir(), "dna").name
        )
        self.name.tooltip = "Folder name in your models; a name already used is never taken over"
        self.start_from = ComboBox(
            label="Start from", choices=self._start_choices, value=default_start("dna")
        )
        self.start_from.tooltip = (
            "Fine-tune a model (its weights, network, voxel size and normalization) or start anew; "
            "the built-in model of the structure by default, where there is one"
        )
        self.kind = ComboBox(label="Network", choices=KIND_CHOICES, value="3d")
        self.kind.tooltip = (
            "3D as in the paper; 2D and 2.5D train faster on larger fields and suit thin or "
            "few-plane images (a 2D / 2.5D network starts new: the built-in models are 3D); "
            "a target of one plane (a maximum projection) trains the whole stack against it: "
            "2.5D by default, or 3D at every plane (slower; it can adapt a built-in model)"
        )
        self.iterations = SpinBox(label="Iterations", min=1, max=1_000_000, value=500)
        self.iterations.tooltip = "Training steps (the paper: 50,000 on a GPU)"
        self.patch = LineEdit(label="Patch Z, Y, X", value=", ".join(map(str, d.patch_shape)))
        self.patch.tooltip = "Size of the random 3D patches (multiples of 2^(depth-1))"
        self.batch = SpinBox(label="Batch size", min=1, max=256, value=d.batch_size)
        self.batch.tooltip = "Patches per step (the paper: 24)"
        self.lr = FloatSpinBox(label="Learning rate", min=1e-5, max=1.0, step=1e-4, value=1e-3)
        self.lr.tooltip = "Adam learning rate (the paper: 0.001)"
        self.depth = SpinBox(label="U-Net depth", min=1, max=6, value=d.depth)
        self.depth.tooltip = "Levels of the U-Net (the paper: 4); smaller trains faster"
        self.width = SpinBox(label="U-Net width", min=4, max=128, value=d.width)
        self.width.tooltip = "Channels at the top level (the paper: 32); smaller trains faster"
        self.device = ComboBox(label="Device", choices=["auto", "cpu"], value="auto")
        self.device.tooltip = "Where to train: auto takes a GPU when there is one"
        self.estimate_label = Label(value="")
        self.estimate_label.tooltip = "Measured from two training steps of this network"
        self.train_btn = PushButton(text="Train")
        self.train_btn.tooltip = "Train a new model; it is listed in Label-free prediction"
        self.stop_btn = PushButton(text="Stop", enabled=False)
        self.stop_btn.tooltip = "Stop at the next step and keep the current weights as a model"
        fields = [self.signal, self.target, self.every_scene, self.structure, self.colormap]
        fields.append(self.name)
        sizes = [self.iterations, self.patch, self.batch, self.lr, self.depth, self.width]
        self.form = Container(widgets=[*fields, self.kind, self.start_from, *sizes, self.device])
        buttons = Container(widgets=[self.train_btn, self.stop_btn], layout="horizontal")
        self.plot = LossPlot()
        self.progress_bar = progress_bar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout()
        for part in (self.form.native, self.estimate_label.native, buttons.native):
            layout.addWidget(part)
        layout.addWidget(self.plot)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        set_scrolling_layout(self, layout)  # a dock shorter than its contents scrolls
        self.structure.changed.connect(self._structure_changed)
        self.kind.changed.connect(self._kind_changed)
        self.signal.changed.connect(self._pair_changed)
        self.target.changed.connect(self._pair_changed)
        self.train_btn.clicked.connect(self.train)
        self.stop_btn.clicked.connect(self.stop)
        self.controls = {
            "patch_shape": self.patch,
            "device": self.device,
            "structure": self.structure,
            "kind": self.kind,
            "init": self.start_from,
        }

    # -------------------------------------------------------------------------- choices
    def _start_choices(self, *_: Any) -> list[tuple[str, str | None]]:
        found = bundles.discover_models()
        return [(NEW, None), *((f"{b.name} ({b.source})", str(b.path)) for b in found)]

    def _image_names(self, *_: Any) -> list[str]:
        return image_layer_names(self.viewer)

    def _on_renamed(self, event: Any) -> None:
        """A layer was renamed: the lists show the new name; a chosen layer stays chosen."""
        for combo in (self.signal, self.target):
            follow_rename(combo, self.viewer, event.source)

    def refresh_layers(self, *_: Any) -> None:
        """List image layers; guess signal = the transmitted-light one, target = another one."""
        keep = self.signal.value, self.target.value
        self.signal.reset_choices()
        self.target.reset_choices()
        names = self._image_names()
        if keep[0] not in names:
            best = default_source([self.viewer.layers[n] for n in names])
            self.signal.value = best.name if best is not None else None
        if keep[1] not in names:
            others = [n for n in names if n != self.signal.value and not looks_transmitted(n)]
            self.target.value = others[0] if others else None

    def _planes(self, name: str | None) -> tuple[int, tuple[float, float, float] | None] | None:
        """A layer's planes and voxel size; None for no layer or one that is no z-stack."""
        if name is None or name not in self.viewer.layers:
            return None
        layer = self.viewer.layers[name]
        try:
            info = layer_info(layer)
            return layer_source(layer, info).shape_zyx[0], info.voxel_size
        except LabelFreeError:
            return None

    def _meta_of(self, name: str | None) -> dict:
        """The plugin metadata of a layer by name ({} for no layer)."""
        if name is None or name not in self.viewer.layers:
            return {}
        return plugin_metadata(self.viewer.layers[name])

    def _same_field_target(self) -> None:
        """A target of another field (another scene of the signal's file or of a stain file of
        the same positions, or a file beside a transmitted-light image of its own) pairs
        nothing: take the same channel of the signal's file and scene, else of the target's file
        at the signal's scene, where there is one."""
        signal, target = self._meta_of(self.signal.value), self._meta_of(self.target.value)
        if not other_field(signal, target, transmitted_fields(self.viewer.layers)):
            return
        # the target's channel in the signal's own field: by name in its file and scene (the
        # field's own stain), by index where the target is of the signal's file (bioio makes up
        # per-scene names for unnamed channels), else in the target's file at the signal's scene
        # (a stain file of the same positions)
        here = (signal["path"], "scene", signal.get("scene"))
        wanted = [(*here, "channel", target.get("channel"))]
        if target.get("path") == signal["path"]:
            wanted.append((*here, "channel_index", target.get("channel_index")))
        elif target.get("path") and signal.get("scene_index") is not None:
            scene = ("scene_index", signal["scene_index"])
            wanted.append((target["path"], *scene, "channel_index", target.get("channel_index")))
        for path, key, scene, channel_key, channel in wanted:
            found = [
                name
                for name in self._image_names()
                if name != self.signal.value
                and (m := self._meta_of(name)).get("path") == path
                and m.get(key) == scene
                and m.get(channel_key) == channel
            ]
            if found:
                self.target.value = found[0]
                where = "scene" if signal.get("scene") is not None else "file"
                self.status.setText(
                    f"Target: {found[0]}, of the signal's {where} (the same field)."
                )
                return

    def _pair_changed(self, *_: Any) -> None:
        """A target of the signal's own field; a one-plane target (a projection) beside a signal
        stack: the whole stack trains against it, by the 2.5D network unless the user chose the
        3D one (no other network learns one plane from a stack)."""
        self._same_field_target()
        others = self._other_scenes()
        self.every_scene.visible = bool(others)
        self.every_scene.tooltip = (
            f"Train on this scene and the other {len(others)} scenes of its file that hold both "
            "channels: one model from all its registered fields (each scene keeps its own "
            "validation strip)"
        )
        signal, target = self._planes(self.signal.value), self._planes(self.target.value)
        one_plane = bool(signal and target and target[0] == 1 < signal[0])
        if one_plane and self.kind.value not in PROJECTION_KINDS:
            self.kind.value = STACK_TO_PLANE
            self.status.setText(
                f"The target is one plane and the signal a stack of {signal[0]}: a 2.5D network "
                "learns the plane from the whole stack (Network; a 3D network learning it at "
                "every plane is slower, and can adapt a built-in model)."
            )
        elif self.kind.value == STACK_TO_PLANE:
            self._settings_changed()  # the window is the signal's planes

    def _other_scenes(self) -> list[tuple[str, str]]:
        """(signal, target) names of the other scenes of the signal's file, as scene_pairs."""
        names = self.signal.value, self.target.value
        if not all(names) or not all(n in self.viewer.layers for n in names):
            return []
        layers = self.viewer.layers
        return scene_pairs(list(layers), layers[names[0]], layers[names[1]])

    def _stack_window(self) -> int:
        """The 2.5D window reading the whole signal stack at the model's grid."""
        from ..cli._kind import DEFAULT_IN_PLANES
        from ..core.train.patches import planes_at_grid, whole_stack_window

        signal = self._planes(self.signal.value)
        if signal is None:
            return DEFAULT_IN_PLANES
        planes, voxel = signal
        return whole_stack_window(planes_at_grid((planes, 1, 1), voxel, PAPER_VOXEL_SIZE_UM))

    def _structure_changed(self, structure: str) -> None:
        """A new structure: its colour and a free model name."""
        self.colormap.value = colormap_for(structure.strip() or "model")
        self.name.value = unique_model_folder(bundles.user_models_dir(), structure).name
        start = default_start(structure)  # adapt the built-in model of the structure by default
        if self.kind.value not in STACK_KINDS:
            start = None  # the built-in models are 3D
        self.start_from.reset_choices()
        # the form follows at once (reset_choices may already have moved the value silently)
        with self.start_from.changed.blocked():
            if start is None or start in self.start_from.choices:
                self.start_from.value = start
        self._start_changed(self.start_from.value)

    def _start_changed(self, start: str | None) -> None:
        """A model to fine-tune brings its network: the form shows its depth and width. Back to
        a new network, a form the start model had filled (not the user) shows the device's
        sizes for a new network again (the built-in's width 8 stayed for new networks until
        2026-12-07: docs/training.md, "2.5D with a projection target")."""
        if start is not None:
            try:
                arch = open_bundle(start).spec.architecture
            except LabelFreeError:
                arch = None
            if arch is not None:
                self.depth.value, self.width.value = arch.depth, arch.width
                self._sizes_from_start = (arch.depth, arch.width)
        elif self._sizes_from_start == (self.depth.value, self.width.value):
            d = self._device_defaults()
            self.depth.value, self.width.value = d.depth, d.width
            self._sizes_from_start = None
        self._settings_changed()

    def _kind_changed(self, kind: str) -> None:
        """A flat network gets a flat patch and starts new; 3D gets the device's sizes back."""
        from ..cli._kind import FLAT_PATCH

        flat = kind not in STACK_KINDS
        patch = FLAT_PATCH if flat else self._device_defaults().patch_shape
        self.patch.value = ", ".join(map(str, patch))
        self._structure_changed(self.structure.value)
        if kind == STACK_TO_PLANE_3D:
            self.status.setText(
                "A 3D network learns the target's plane at every plane of the stack; its "
                "prediction is their maximum, one plane."
            )

    def _set_devices(self, devices: list[str]) -> None:
        try:
            self.device.choices = devices
        except RuntimeError:  # the widget closed before torch answered
            return
        # The form opened with the CPU's sizes. Where a GPU will train (found, and "auto" or
        # a GPU chosen), sizes the form still shows from then become the GPU's; a value the
        # user set while the probe ran stays, as does a flat network's flat patch.
        opened, d = defaults_for("cpu"), self._device_defaults()
        if d != opened:
            if (self.depth.value, self.width.value) == (opened.depth, opened.width):
                self.depth.value, self.width.value = d.depth, d.width
            if self.batch.value == opened.batch_size:
                self.batch.value = d.batch_size
            if self.patch.value == ", ".join(map(str, opened.patch_shape)):
                self.patch.value = ", ".join(map(str, d.patch_shape))
        self._start_changed(self.start_from.value)  # a model to fine-tune keeps its network

    def _device_defaults(self) -> TrainDefaults:
        """The sizes for a new network on the chosen device: "auto" is the GPU only where the
        device probe found one (it was taken for a GPU on every machine until 2026-12-07)."""
        device = self.device.value
        if device == "auto":
            device = "cuda" if self._gpu_listed() else "cpu"
        return defaults_for(device)

    def _gpu_listed(self) -> bool:
        """Whether the device probe found a GPU (the sizes for a new network follow it)."""
        return any(str(d).startswith(("cuda", "mps")) for d in self.device.choices)

    def _settings_changed(self, *_: Any) -> None:
        self.estimate_label.value = "Estimating the time per iteration..."
        self._estimate_timer.start()

    def _spec_and_config(self) -> tuple[ModelSpec, Any]:
        from ..core.train.config import TrainConfig

        patch = parse_zyx_shape(self.patch.value)
        if patch is None:
            raise LabelFreeError(
                "the patch size is three whole numbers Z, Y, X", field="patch_shape"
            )
        spec = ModelSpec(
            structure=self.structure.value.strip(),
            colormap=self.colormap.value,
            architecture=Architecture(
                depth=self.depth.value, width=self.width.value, **self._kind_architecture()
            ),
            target_projection="max" if self.kind.value in PROJECTION_KINDS else "",
            # not "bright-field" unasked: training names the contrast its files record, if any
            modality="transmitted-light",
        )
        n = self.iterations.value
        config = TrainConfig(
            iterations=n,
            batch_size=self.batch.value,
            patch_shape=patch,
            lr=float(self.lr.value),
            checkpoint_every=max(1, min(500, n)),
            validate_every=max(1, min(500, n)),
        )
        return spec, config

    def _kind_architecture(self) -> dict[str, Any]:
        """The architecture's name and input planes for the chosen kind (as --kind gives them)."""
        from ..cli._kind import DEFAULT_IN_PLANES

        if self.kind.value == STACK_TO_PLANE:
            return {"name": "unet2.5d", "in_planes": self._stack_window()}
        if self.kind.value == STACK_TO_PLANE_3D:
            return {"name": "unet3d", "in_planes": 1}
        name = KIND_OPTIONS[self.kind.value]
        return {"name": name, "in_planes": DEFAULT_IN_PLANES if name == "unet2.5d" else 1}

    def _check_start(self, spec: ModelSpec) -> None:
        """A model to fine-tune brings its own network: it must be of the chosen kind."""
        if self.start_from.value is None:
            return
        start = open_bundle(self.start_from.value)
        if start.spec.kind != spec.kind:
            raise LabelFreeError(
                f"{start.name} is a {start.spec.kind_label} network and cannot be fine-tuned as a "
                f"{spec.architecture.name.removeprefix('unet').upper()} one; choose "
                f"'{NEW}' in Start from, or the network kind of {start.name}",
                field="init",
            )

    # ------------------------------------------------------------------------- estimating
    def estimate(self) -> None:
        """Measure two training steps of the chosen network (in a worker) and show the time."""
        if self.runner.running or self.estimator.running:
            return
        try:
            spec, config = self._spec_and_config()
            spec = self._trained_spec(spec)
        except LabelFreeError as e:
            self.estimate_label.value = str(e)
            return
        self.estimator.start(estimate_job, spec, config, self.device.value)

    def _trained_spec(self, spec: ModelSpec) -> ModelSpec:
        """The network that will train: a model to fine-tune brings its own (not the form's)."""
        from ..core.train.init import spec_from_init

        if self.start_from.value is None:
            return spec
        return spec_from_init(spec, open_bundle(self.start_from.value))

    def _on_estimate(self, value: Any, stopped: bool, error: BaseException | None) -> None:
        if value is None:
            self.estimate_label.value = ""
            return
        n = self.iterations.value
        self.estimate_label.value = (
            f"about {value:.2g} s per iteration: {n} iterations take ~{format_duration(n * value)}"
        )

    # ----------------------------------------------------------------------------- running
    @property
    def is_running(self) -> bool:
        return self.runner.running

    def train(self) -> None:
        """Start training in a worker thread (the core checks the request)."""
        if self.runner.running:
            return
        self.estimator.cancel()
        try:
            layer_pairs = self._sources()
            spec, config = self._spec_and_config()
            self._check_start(spec)
            name = self.name.value.strip()
            if not name or name in taken_names() or (bundles.user_models_dir() / name).exists():
                free = unique_model_folder(bundles.user_models_dir(), name or spec.structure).name
                raise LabelFreeError(
                    f"a model named {name!r} exists already; choose another name, e.g. {free!r}",
                    field="structure",
                )
        except LabelFreeError as e:
            notify_error(e)
            self.runner.highlight(e.fields)
            return
        self.history = {"it": [], "loss": [], "val_it": [], "val": []}
        self.plot.clear()
        out = bundles.user_models_dir() / name
        self.runner.what = f"training {spec.structure}"
        init = self.start_from.value  # a model folder, or None for a new network
        self._discard = threading.Event()
        job = (layer_pairs, spec, out, config, self.device.value, init, self._discard)
        self._out = out
        self.runner.start(train_job, *job, status=f"Training {name}...")

    def _sources(self) -> list[tuple[Any, Any]]:
        names = self.signal.value, self.target.value
        if not all(names):
            raise LabelFreeError("choose a signal and a target layer (File > Open to add them)")
        if names[0] == names[1]:
            raise LabelFreeError(
                "signal and target are the same layer; choose the fluorescence one as target"
            )
        signal, target = map(self._meta_of, names)
        if other_scene(signal, target):
            raise LabelFreeError(
                f"signal and target are different scenes ({signal.get('scene')}, "
                f"{target.get('scene')}): another field; choose the target of the signal's scene"
            )
        if other_field(signal, target, transmitted_fields(self.viewer.layers)):
            raise LabelFreeError(
                f"the target {names[1]} is of another field: its file holds a transmitted-light "
                "image of its own; choose the target of the signal's file (registered pairs of "
                "one field train a model)"
            )
        fields = [names]
        if self.every_scene.value:  # the other scenes of a plate: more fields of the same pair
            fields += self._other_scenes()
        return [(self._layer_data(sig), self._layer_data(tgt)) for sig, tgt in fields]

    def _layer_data(self, name: str) -> tuple[Any, Any, str]:
        """A layer as train_job reads it: its source, voxel size and name."""
        layer = self.viewer.layers[name]
        info = layer_info(layer)
        return layer_source(layer, info), info.voxel_size, name

    def _discard_on_close(self) -> None:
        """The window (or this dock) closes mid-training: the run is discarded, not saved."""
        self._discard.set()
        show_info("Training stopped because its window closed; the unfinished model was discarded.")

    def stop(self) -> None:
        """Stop at the next step; the current weights are written as a usable model."""
        if self.runner.cancel():
            self.runner.state.status = "Stopping: writing the current weights..."

    def _on_event(self, event: Any) -> None:
        kind = type(event).__name__
        h = self.history
        if kind == "TrainStep":
            h["it"].append(event.iteration)
            h["loss"].append(event.loss)
        elif kind == "Validated":
            h["val_it"].append(event.iteration)
            h["val"].append(event.val_loss)
        # a redraw holds the GUI thread (and the GIL the training thread needs): every couple of
        # seconds, and at most ~2 % of the time however slow drawing is here
        now = time.monotonic()
        if now - self._last_draw > max(PLOT_EVERY_S, 50 * self.plot.draw_seconds):
            self._last_draw = now
            self.plot.update_lines(self.history)

    def _on_done(self, value: Any, stopped: bool, error: BaseException | None) -> None:
        self.plot.update_lines(self.history)
        try:
            bundle = open_bundle(value.path if value is not None else self._out, "user")
        except LabelFreeError:
            removed = remove_unfinished(self._out)
            self.status.setText(
                "Training failed; no model was written"
                + (" (its unfinished folder was removed)." if removed else ".")
            )
            return
        registry.refresh()
        self.last_model = bundle.path
        done = self.history["it"][-1] if self.history["it"] else 0
        word = "Stopped" if stopped and done < self.iterations.value else "Done"
        # e.g. "built-in dna: r 0.12 -> adapted: r 0.61 on your held-out strip"
        compared = held_out_score(bundle.spec.metrics)
        self.status.setText(
            f"{word} after {done} iterations: model {bundle.name!r} in {bundle.path}; "
            "it is listed in Label-free prediction." + (f"\n{compared}" if compared else "")
        )
        show_info(f"model {bundle.name!r} saved to {bundle.path}")
        self._structure_changed(self.structure.value)

    def _set_running(self, running: bool) -> None:
        self.form.enabled = self.train_btn.enabled = not running
        self.stop_btn.enabled = running
