"""Asked, not taken: whether this plugin becomes napari's remembered reader for its formats.

napari asks which plugin should read a file whenever two can (its own builtin reader also takes
TIFF and Zarr) and no reader is remembered for the file's pattern in napari's
``settings.plugins.extension2reader`` (what the reader dialog's "Remember this choice" box sets, and
what Preferences > Plugins shows and edits). This plugin never writes that setting on its own: on
its first use in a session (npe2's ``on_activate``) it asks once, with a napari notification whose
buttons answer, and the Predict widget shows the same question until it is answered. Only "Yes"
writes napari's setting, once, for the patterns the user has not chosen a reader for; the answer
itself is kept in this plugin's own settings file (:func:`settings_path`), so the question is not
asked again. Undo: Preferences > Plugins > File extension readers (or delete the settings file to
be asked again).

npe2's writer order is left as it is (napari has no public writer priority): the save dialog lists
this plugin's writer ("OME-TIFF with voxel size, names and colours") among the others.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from psygnal import Signal

PLUGIN = "napari-labelfree"
#: Patterns remembered for this reader on "Yes". A folder's path is matched with a trailing separator.
READER_PATTERNS = ("*.czi", "*.ome.tif", "*.ome.tiff", "*.tif", "*.tiff", "*.zarr" + os.sep)
#: Key of the answer in this plugin's settings file: True (yes), False (no), absent (not asked).
READER_KEY = "open_files_with_labelfree"
QUESTION = (
    "Open TIFF, CZI and OME-Zarr files with napari-labelfree without napari asking which reader? "
    "(It keeps voxel sizes in um, names and colours channels; undo in Preferences > Plugins.)"
)


class _Answers:
    """Tells open widgets that the question was answered (from a notification or a widget)."""

    answered = Signal(bool)


answers = _Answers()
_asked_this_session = False


def settings_path() -> Path:
    """This plugin's settings file, in the user's config folder (platformdirs)."""
    from platformdirs import user_config_path

    return user_config_path(PLUGIN, appauthor=False) / "settings.json"


def load_settings() -> dict[str, Any]:
    """This plugin's settings; empty when the file is missing or unreadable."""
    try:
        loaded = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def save_setting(key: str, value: Any) -> None:
    """Store one setting (written to a temporary file, then renamed)."""
    from .core.files import atomic_file

    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps({**load_settings(), key: value}, indent=2), encoding="utf-8")


def _napari_settings(settings: Any = None) -> Any:
    if settings is None:
        from napari.settings import get_settings

        settings = get_settings()
    return settings


def needs_asking(settings: Any = None) -> bool:
    """Whether to ask: never answered, and some pattern has no reader chosen in napari yet (a user
    who chose readers for all of them, in napari's dialog or Preferences, is not asked)."""
    if reader_answer() is not None:
        return False
    chosen = _napari_settings(settings).plugins.extension2reader
    return any(p not in chosen for p in READER_PATTERNS)


def reader_answer() -> bool | None:
    """The user's answer to :data:`QUESTION`, or None when it was never answered."""
    value = load_settings().get(READER_KEY)
    return value if isinstance(value, bool) else None


def answer(use_reader: bool, settings: Any = None) -> list[str]:
    """Record the answer; on "Yes" remember this reader in napari's settings.

    Returns
    -------
    list of str
        The reader patterns written into napari's settings (empty for "No").
    """
    from .core.errors import LabelFreeError

    try:
        save_setting(READER_KEY, bool(use_reader))
    except (LabelFreeError, OSError) as e:  # a read-only config folder: asked again next time
        from napari.utils.notifications import show_warning

        show_warning(f"could not remember the answer in {settings_path()}: {e}")
    added = remember_reader(settings) if use_reader else []
    answers.answered.emit(bool(use_reader))
    return added


def remember_reader(settings: Any = None) -> list[str]:
    """Remember this plugin's reader for each of :data:`READER_PATTERNS` that has no choice yet.

    Returns
    -------
    list of str
        The patterns added (empty when the user had already chosen for all of them).
    """
    settings = _napari_settings(settings)
    current = dict(settings.plugins.extension2reader)
    added = [p for p in READER_PATTERNS if p not in current]
    if added:
        settings.plugins.extension2reader = {**current, **dict.fromkeys(added, PLUGIN)}
    return added


def question_notification() -> Any:
    """The question as a napari notification whose buttons answer it."""
    from napari.utils.notifications import Notification, NotificationSeverity

    return Notification(
        QUESTION,
        severity=NotificationSeverity.INFO,
        actions=[("Yes", lambda *_: answer(True)), ("No", lambda *_: answer(False))],
    )


def activate(context: Any = None) -> None:
    """npe2's ``on_activate``: ask the question once a session while it has no answer.

    Writes nothing: only an answer does (see :func:`answer`).
    """
    global _asked_this_session
    if "napari" not in sys.modules or _asked_this_session or not needs_asking():
        return  # npe2 on its own (``npe2 validate``), asked already, answered or nothing to ask
    _asked_this_session = True
    from napari.utils.notifications import notification_manager

    notification_manager.dispatch(question_notification())
