"""Dock widgets that scroll instead of growing the window: with both docks open, their contents
(~600 px each) would push napari's window past a 1000-px-high screen."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QLayout, QScrollArea, QVBoxLayout, QWidget


def set_scrolling_layout(widget: QWidget, layout: QLayout) -> QScrollArea:
    """Lay ``layout`` out inside a frameless vertical scroll area that fills ``widget``.

    The dock may then be shorter than its contents (a scroll bar appears); it keeps the contents'
    minimum width, so nothing is cut off sideways.
    """
    inner = QWidget()
    inner.setLayout(layout)
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(inner)
    area.setMinimumWidth(
        inner.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width()
    )
    outer = QVBoxLayout()
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    widget.setLayout(outer)
    return area
