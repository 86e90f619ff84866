"""Dock widgets that scroll instead of growing the window: with both docks open, their contents
(~600 px each) would push napari's window past a 1000-px-high screen."""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QFrame, QLayout, QScrollArea, QVBoxLayout, QWidget


class VerticalScroll(QScrollArea):
    """A frameless scroll area that scrolls up and down only: as wide as its contents need (which
    it follows as they change), as tall as they like, but willing to be much shorter."""

    def __init__(self, inner: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(inner)

    def _bar(self) -> int:
        return self.verticalScrollBar().sizeHint().width()

    def minimumSizeHint(self) -> QSize:
        inner = self.widget()
        width = inner.minimumSizeHint().width() if inner is not None else 0
        return QSize(width + self._bar(), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        inner = self.widget()
        if inner is None:
            return super().sizeHint()
        hint = inner.sizeHint()
        return QSize(hint.width() + self._bar(), hint.height())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the contents' size changed: the dock follows
        return super().eventFilter(obj, event)


def set_scrolling_layout(widget: QWidget, layout: QLayout) -> QScrollArea:
    """Lay ``layout`` out inside a :class:`VerticalScroll` that fills ``widget``.

    The dock may then be shorter than its contents (a scroll bar appears); it keeps the contents'
    minimum width, so nothing is cut off sideways.
    """
    inner = QWidget()
    inner.setLayout(layout)
    area = VerticalScroll(inner)
    outer = QVBoxLayout()
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    widget.setLayout(outer)
    return area
