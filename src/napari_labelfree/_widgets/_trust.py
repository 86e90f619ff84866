"""The Predict widget's trust controls: the uncertainty option, input warnings, "Compare with".

* "Uncertainty layer" asks the prediction for a second output per model, "<structure>
  (uncertainty)" (core.predict.tta): added as its own layer, hidden, in a perceptually uniform
  colormap, at the prediction's scale.
* A warning that the image is unlike a model's training images (core.trust.ood) is shown as a
  notification by the job runner; here the model is marked in the model list.
* "Compare with <channel>": where a prediction layer and a fluorescence layer of the same
  structure (by name, core.structures) are open, r / SSIM against it and the error map as a layer.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Label, PushButton
from qtpy.QtCore import Qt

from ..core.errors import LabelFreeError
from ..core.trust.names import UNCERTAINTY_COLORMAP, UNCERTAINTY_SUFFIX
from ..core.trust.ood import InputWarning
from ._layers import other_field, plugin_metadata, transmitted_fields
from ._workers import notify_error

MARK = "\u26a0 "  # a model whose training images the input is unlike
ERROR_COLORMAP = "bwr"
TOOLTIP_UNCERTAINTY = (
    "Add per model a hidden layer '<structure> (uncertainty)': how much the predictions of the 8 "
    "flipped/rotated copies of the image disagree, voxel by voxel (8x the prediction time). "
    "High where the model is unsure; low does not prove it right (docs/trust.md)."
)


def overlay_style(name: str, bundle: Any) -> dict[str, Any]:
    """Colormap (and visibility) of an output layer: its model's colour, or the uncertainty's."""
    if name.endswith(UNCERTAINTY_SUFFIX):
        return {"colormap": UNCERTAINTY_COLORMAP, "visible": False}
    return {"colormap": bundle.spec.colormap}


def base_name(name: str) -> str:
    """The model output an output belongs to ("dna (uncertainty)" -> "dna")."""
    return name.removesuffix(UNCERTAINTY_SUFFIX)


class TrustControls:
    """Added to a Predict widget (``widget.trust``); the widget hands it every job event."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.viewer = widget.viewer
        self.uncertainty = CheckBox(text="Uncertainty layer (8x time)", value=False)
        self.uncertainty.tooltip = TOOLTIP_UNCERTAINTY
        self.stain = ComboBox(label="Compare with", choices=[])
        self.stain.tooltip = (
            "A fluorescence layer of a predicted structure (same field): Compare shows r / SSIM "
            "against it and adds the error map"
        )
        self.compare_btn = PushButton(text="Compare")
        self.result = Label(value="")
        widget.advanced.append(self.uncertainty)
        widget.advanced.append(self.stain)
        widget.advanced.append(self.compare_btn)
        widget.advanced.append(self.result)
        self.compare_btn.clicked.connect(self.compare)
        layers = self.viewer.layers
        for ev in (layers.events.inserted, layers.events.removed, layers.events.moved):
            ev.connect(self.refresh)
        # a run's layers are renamed at its end ("dna (predicting)" -> "dna (predicted)")
        layers.events.inserted.connect(lambda e: e.value.events.name.connect(self.refresh))
        for layer in layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ warnings
    def on_event(self, event: Any) -> None:
        if isinstance(event, InputWarning):
            self.mark_model(event.model, event.text)

    def mark_model(self, model: str, text: str) -> None:
        """Mark the model's row in the list (its folder name) with the warning in its tooltip; a
        model warned of twice (its file names another modality, and it stores no statistics)
        keeps both, each once."""
        lst = self.widget.models.list
        for i in range(lst.count()):
            item = lst.item(i)
            path = str(item.data(Qt.ItemDataRole.UserRole) or "")
            if path.rstrip("/\\").split("/")[-1].split("\\")[-1] != model:
                continue
            said = item.toolTip().split("\n") if item.text().startswith(MARK) else []
            if not item.text().startswith(MARK):
                item.setText(MARK + item.text())
            item.setToolTip("\n".join([*[t for t in said if t and t != text], text]))

    # ------------------------------------------------------------------ compare
    def pairs(self) -> dict[str, tuple[Any, Any]]:
        """'<stain> vs <prediction>' -> (prediction layer, stain layer) for every open match."""
        from ..core.trust.compare import comparable, matching_stains

        layers = list(self.viewer.layers)
        names = [ly.name for ly in layers]
        fields = transmitted_fields(layers)
        out: dict[str, tuple[Any, Any]] = {}
        for pred in layers:
            tag = plugin_metadata(pred)
            if tag.get("role") != "prediction" or pred.name.endswith(UNCERTAINTY_SUFFIX):
                continue
            if " (uncertainty)" in pred.name:
                continue
            source = self._source_of(tag)
            for stain_name in matching_stains(str(tag.get("structure", "")), names):
                stain = self.viewer.layers[stain_name]
                meta = plugin_metadata(stain)
                if meta.get("role") == "prediction":
                    continue
                if other_field(source, meta, fields):
                    continue  # another position of the file, or another file's field
                if comparable(pred.data.shape, stain.data.shape):
                    out[f"{stain_name} vs {pred.name}"] = (pred, stain)
        return out

    def _seen_note(self, tag: dict) -> str | None:
        """Why the score is not held out, when the prediction's model learned from its image
        (by the source layer's name, or its file's as a table names it)."""
        from pathlib import Path

        from ..core.bundle import read_spec
        from ..core.trust.seen import learned_from, learned_pixels, seen_note

        try:
            spec = read_spec(str(tag.get("model", "")))
        except LabelFreeError:  # the model folder went away since: nothing to say
            return None
        source = self._source_of(tag)
        names = [tag.get("source")]
        if source.get("path"):
            scene = f" [{source['scene']}]" if source.get("scene") is not None else ""
            names.append(Path(source["path"]).name + scene)
        model = Path(str(tag.get("model"))).name
        image = learned_from(spec, names)
        if image:
            return seen_note(model, spec, image)
        image = learned_pixels(spec, self._fingerprints(tag.get("source")))
        return seen_note(model, spec, image, same_pixels=True) if image else None

    def _fingerprints(self, name: Any) -> list[str]:
        """The pixel fingerprints of the source layer's frame under the time slider, one per
        channel (a copy of a training image under another name has its training image's)."""
        from ..core.trust.seen import pixel_fingerprint
        from ._layers import current_frame, layer_data, layer_info

        if name not in self.viewer.layers:
            return []
        layer = self.viewer.layers[name]
        info = layer_info(layer)
        t = current_frame(self.viewer, layer, info)
        data = layer_data(layer)
        n_channels = data.shape[info.axes.index("C")] if "C" in info.axes else 1
        views = []
        for c in range(n_channels):  # the fingerprint reads a few voxels of the lazy view
            at = tuple(t if a == "T" else c if a == "C" else slice(None) for a in info.axes)
            views.append(data[at])
        return [pixel_fingerprint(v) for v in views]

    def _source_of(self, tag: dict) -> dict:
        """The plugin metadata of the layer a prediction was made from ({} if it is gone)."""
        name = tag.get("source")
        if name in self.viewer.layers:
            return plugin_metadata(self.viewer.layers[name])
        return {}

    def refresh(self, *_: Any) -> None:
        choices = list(self.pairs())
        keep = self.stain.value
        self.stain.choices = choices
        if keep in choices:
            self.stain.value = keep
        elif choices:
            self.stain.value = choices[0]
        self.stain.visible = self.compare_btn.visible = bool(choices)
        if choices:
            stain = self.stain.value.split(" vs ")[0]
            self.compare_btn.text = f"Compare with {stain}"

    def compare(self) -> str | None:
        """Score the chosen prediction against its stain; add the error map. Returns the text."""
        from ..core.trust.compare import compare_with_stain

        pair = self.pairs().get(self.stain.value or "")
        if pair is None:
            notify_error(LabelFreeError("open a prediction and a stain of its structure first"))
            return None
        pred, stain = pair
        try:
            result = compare_with_stain(pred.data, stain.data)
        except LabelFreeError as e:
            notify_error(e)
            return None
        name = f"{pred.name.split(' (')[0]} error vs {stain.name}"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        lim = float(max(abs(result.error.min()), abs(result.error.max()), 1e-6))
        self.viewer.add_image(
            result.error,
            name=name,
            colormap=ERROR_COLORMAP,
            contrast_limits=(-lim, lim),
            # one plane (a one-plane stain) takes the prediction's Y, X placement
            scale=pred.scale[-result.error.ndim :],
            translate=pred.translate[-result.error.ndim :],
            visible=True,
        )
        text = result.text(pred.name, stain.name)
        seen = self._seen_note(plugin_metadata(pred))
        if seen:
            text += f". {seen}"
        self.result.value = f"r {result.pearson_r:.3f}, SSIM {result.ssim:.3f}"
        from napari.utils.notifications import show_info

        show_info(text)
        return text
