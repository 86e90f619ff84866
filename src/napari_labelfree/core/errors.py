"""The one exception type for mistakes a user can make (bad file, wrong channel, wrong model)."""


class LabelFreeError(Exception):
    """A problem the user can fix; the message says what to do.

    The CLI prints it as one line and exits non-zero; the widgets show it as a notification.
    """
