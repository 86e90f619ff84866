"""Ensembles: K networks of one architecture, trained with K seeds, kept in one model folder.

The folder is an ordinary model (config.json + weights.safetensors) that prediction, the widgets
and `labelfree models` use as one: its prediction is the mean of its members' predictions, and
its uncertainty (``--uncertainty``) the spread over every member and test-time variant (the law
of total variance, as for several models of one structure). config.json says
``"ensemble": {"members": K, "seeds": [...], ...}``; the one safetensors file holds member i's
tensors under ``members.<i>.`` (no pickle, one file: read at once, and an older version of the
program refuses it with "the weights do not fit" instead of predicting with one member).

It costs K x the training and K x the network time of prediction (K x 8 with ``--uncertainty``).
This module never imports torch (the CLI checks K before importing it); the network is
:mod:`.ensemble_net`, training :mod:`.train.ensemble`.
"""

from __future__ import annotations

from .errors import LabelFreeError

MIN_MEMBERS = 2
# each member is one more training run and one more network pass per tile: beyond this the
# spread hardly changes (5 is the usual choice) while the cost keeps growing
MAX_MEMBERS = 10
MEMBER_PREFIX = "members."
MEMBERS_DIR = "members"  # per-member training logs and loss curves inside the ensemble's folder


def check_ensemble_size(k: int) -> int:
    """``k`` if it is a number of ensemble members this version trains; else a LabelFreeError."""
    if isinstance(k, bool) or not isinstance(k, int) or not MIN_MEMBERS <= k <= MAX_MEMBERS:
        raise LabelFreeError(
            f"an ensemble has {MIN_MEMBERS} to {MAX_MEMBERS} members (each costs one more "
            f"training and one more network pass in prediction), got {k!r}",
            field="ensemble",
        )
    return k


def member_key(index: int, name: str) -> str:
    """The name of member ``index``'s tensor ``name`` in the ensemble's weights file."""
    return f"{MEMBER_PREFIX}{index}.{name}"


def member_seeds(seed: int, k: int) -> list[int]:
    """The seeds of the K members: the run's seed, then the next K - 1."""
    return [seed + i for i in range(k)]
