"""Qt side of napari-labelfree: the Predict and Train dock widgets (all Qt code lives here).

The manifest (napari.yaml) points its widget commands at ``make_predict_widget`` and
``make_train_widget``. They are the widget classes themselves: napari passes the viewer only to a
callable whose ``__init__`` has a ``napari_viewer`` parameter (it inspects ``__init__``, so a plain
factory function would be called without the viewer). ``make_predict_widget(viewer)`` therefore
builds the dock widget exactly as a factory would. They are imported on first use, so importing
this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._registry import ModelRegistry, registry

if TYPE_CHECKING:
    from ._predict import PredictWidget as make_predict_widget
    from ._train import TrainWidget as make_train_widget

__all__ = ["ModelRegistry", "make_predict_widget", "make_train_widget", "registry"]


def __getattr__(name: str) -> Any:
    if name == "make_predict_widget":
        from ._predict import PredictWidget

        return PredictWidget
    if name == "make_train_widget":
        from ._train import TrainWidget

        return TrainWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
