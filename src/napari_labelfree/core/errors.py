"""The one exception type for mistakes a user can make (bad file, wrong channel, wrong model)."""

from __future__ import annotations


class LabelFreeError(Exception):
    """A problem the user can fix; the message says what to do.

    The CLI prints it as one line and exits non-zero; the widgets show it as a notification.

    Parameters
    ----------
    message
        What went wrong and what to do, phrased for every front end (no command-line flags: a
        widget user cannot see them).
    field
        The setting(s) the user should change, by their core parameter name ("voxel_size",
        "channel", "force", ...). A front end adds its own hint for them (the CLI names the flag).
    """

    def __init__(self, message: str, *, field: str | tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.fields: tuple[str, ...] = (field,) if isinstance(field, str) else tuple(field or ())
