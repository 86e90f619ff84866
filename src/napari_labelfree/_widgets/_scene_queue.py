""" "Every scene of this file": a plate's positions predicted in one round, or trained on together.

The reader opens each scene (position) of a file as its own layers; predicting a plate one
position at a time meant choosing and clicking twelve times, and the Train widget learned from
one position of a plate that holds many registered pairs. For the Predict widget a queue keeps
the layers still to predict; each run is the widget's ordinary run, so every scene gets its own
overlays, named and hidden with its scene as a single run's are. The Train widget takes the
(signal, target) layers of every scene (``scene_pairs``). No Qt here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._layers import plugin_metadata


def sibling_scenes(layers: Sequence[Any], layer: Any) -> list[str]:
    """The names of the same channel's layers in the other scenes of ``layer``'s file, in the
    viewer's order (the reader's order of the scenes); [] for a layer that is no scene.

    The same channel is the same index: a file's scenes hold their channels in one order, while
    the names bioio makes up for unnamed channels differ per scene ("Channel:0:0", "Channel:1:0")."""
    meta = plugin_metadata(layer)
    if not meta.get("path") or meta.get("scene") is None:
        return []
    return [
        other.name
        for other in layers
        if other is not layer
        and (m := plugin_metadata(other)).get("path") == meta["path"]
        and m.get("scene") is not None
        and m.get("scene") != meta["scene"]
        and m.get("channel_index") == meta.get("channel_index")
    ]


def scene_pairs(layers: Sequence[Any], signal: Any, target: Any) -> list[tuple[str, str]]:
    """(signal, target) layer names of every other scene of the signal's file whose target is
    open: the target's channel in the same scene of its file (the signal's file, or a stain
    file of the same positions: scene k with scene k). [] unless signal and target are one
    scene's."""
    sig, tgt = plugin_metadata(signal), plugin_metadata(target)
    same_file = sig.get("path") == tgt.get("path")
    key = "scene" if same_file else "scene_index"
    if sig.get(key) is None or sig.get(key) != tgt.get(key):
        return []
    targets = {
        m.get(key): ly.name
        for ly in layers
        if (m := plugin_metadata(ly)).get("path") == tgt.get("path")
        and m.get("channel_index") == tgt.get("channel_index")
    }
    out = []
    for name in sibling_scenes(layers, signal):
        other = plugin_metadata(next(ly for ly in layers if ly.name == name))
        partner = targets.get(other.get(key))
        if partner is not None:
            out.append((name, partner))
    return out


class SceneQueue:
    """The scenes still to predict after the current one, and how many there were."""

    def __init__(self) -> None:
        self.waiting: list[str] = []
        self.total = 0
        self.closed = 0  # scenes whose layers were removed before their turn
        self.file = ""

    def fill(self, first: Any, others: list[str]) -> None:
        """A new round: ``first`` (the layer predicted now) and then ``others``, by name."""
        self.waiting = list(others)
        self.total, self.closed = 1 + len(others), 0
        path = plugin_metadata(first).get("path")
        self.file = Path(path).name if path else first.name

    @property
    def active(self) -> bool:
        return self.total > 1

    def position(self) -> str:
        """ " (scene 3 of 12)" for the status line while a round runs; "" outside one."""
        if not self.active:
            return ""
        return f" (scene {self.total - len(self.waiting)} of {self.total})"

    def take_next(self, present: Sequence[str]) -> str | None:
        """The next scene still open in the viewer (a removed one is passed over), or None."""
        while self.waiting:
            name = self.waiting.pop(0)
            if name in present:
                return name
            self.closed += 1
        return None

    def end(self, completed: bool) -> str:
        """Close the round: what to add to the last run's status line ("" for a single run)."""
        if not self.active:
            return ""
        left, total, closed = len(self.waiting), self.total, self.closed
        self.waiting, self.total = [], 0
        if completed:
            gone = f"; {closed} closed before their turn" if closed else ""
            return f" The scenes of {self.file}: {total - closed} of {total} predicted{gone}."
        done = total - closed - left - 1  # the current scene did not finish
        return f" The scenes of {self.file}: {done} of {total} predicted, the round stopped."
