"""At most one reader question: this plugin becomes napari's remembered reader for its formats.

napari asks which plugin should read a file whenever two can (its own builtin reader also takes
TIFF and Zarr) and no reader is remembered for the file's pattern in
``settings.plugins.extension2reader``. napari offers no reader priority in the manifest; the
remembered choice is the one mechanism it has, the same one its reader dialog's "Remember this
choice" box sets, and the user can change it under Preferences > Plugins.

So, when npe2 first activates the plugin (its first command run in a session: the first file it
reads, a sample, a widget), :func:`activate` remembers this reader for the patterns that have no
remembered reader yet; a choice the user made is never replaced.

For saving, napari's File > Save dialog offers the writers in npe2's order and preselects the
first; for one image layer that is napari's plain TIFF writer, which drops voxel size, names and
colours even from a file named ``x.ome.tif``. npe2 has no public writer priority, so
:func:`prefer_own_writer` moves this plugin's writer to the front of npe2's writer index (a
private list; left as it is when its layout differs). The writer hands anything that is not a
TIFF z-stack back to napari's own writer, so being first never makes a save worse.
"""

from __future__ import annotations

import os
import sys
from typing import Any

PLUGIN = "napari-labelfree"
#: Patterns remembered for this reader. A folder's path is matched with a trailing separator.
READER_PATTERNS = ("*.czi", "*.ome.tif", "*.ome.tiff", "*.tif", "*.tiff", "*.zarr" + os.sep)


def activate(context: Any = None) -> None:
    """npe2's ``on_activate``: remember the reader and put the writer first (inside napari only)."""
    if "napari" not in sys.modules:
        return  # npe2 used on its own (e.g. ``npe2 validate``): leave napari's settings alone
    remember_reader()
    prefer_own_writer()


def remember_reader(settings: Any = None) -> list[str]:
    """Remember this plugin's reader for each of :data:`READER_PATTERNS` that has no choice yet.

    Returns
    -------
    list of str
        The patterns added (empty when the user had already chosen for all of them).
    """
    if settings is None:
        from napari.settings import get_settings

        settings = get_settings()
    current = dict(settings.plugins.extension2reader)
    added = [p for p in READER_PATTERNS if p not in current]
    if added:
        settings.plugins.extension2reader = {**current, **dict.fromkeys(added, PLUGIN)}
    return added


def prefer_own_writer(plugin_manager: Any = None) -> bool:
    """Move this plugin's writer contributions ahead of the others in npe2's writer order.

    Returns False (and changes nothing) when npe2's private index has another layout.
    """
    if plugin_manager is None:
        from npe2 import PluginManager

        plugin_manager = PluginManager.instance()
    writers = getattr(getattr(plugin_manager, "_contrib", None), "_writers", None)
    if not isinstance(writers, list) or not all(
        isinstance(w, tuple) and len(w) == 4 for w in writers
    ):
        return False

    def ours(entry: tuple) -> bool:
        return str(getattr(entry[3], "command", "")).startswith(PLUGIN + ".")

    writers.sort(key=lambda entry: not ours(entry))  # stable: each group keeps its order
    return True
