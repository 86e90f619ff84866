"""A row in the Predict widget asking, until answered, whether this plugin should open TIFF, CZI
and OME-Zarr files without napari's reader question (the answer and what it does: ``_preferences``).
"""

from __future__ import annotations

from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from .. import _preferences as prefs


class ReaderQuestion(QWidget):
    """The question and Yes / No buttons; hidden once answered (here, in a notification, or in an
    earlier session)."""

    def __init__(self) -> None:
        super().__init__()
        self.label = QLabel(prefs.QUESTION)
        self.label.setWordWrap(True)
        self.yes = QPushButton("Yes")
        self.no = QPushButton("No")
        self.yes.setToolTip("Written once into napari's Preferences > Plugins (file readers)")
        self.no.setToolTip("napari keeps asking which reader opens such a file")
        layout = QHBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.yes)
        layout.addWidget(self.no)
        self.setLayout(layout)
        self.yes.clicked.connect(lambda: prefs.answer(True))
        self.no.clicked.connect(lambda: prefs.answer(False))
        prefs.answers.answered.connect(self._hide)
        self.destroyed.connect(
            lambda *_: prefs.answers.answered.disconnect(self._hide, missing_ok=True)
        )
        self.setVisible(prefs.needs_asking())

    def _hide(self, *_: object) -> None:
        try:
            self.setVisible(False)
        except RuntimeError:  # the Qt side is gone (the viewer closed)
            prefs.answers.answered.disconnect(self._hide, missing_ok=True)
