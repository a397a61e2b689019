"""The one exception type that means "the user gave us something wrong".

The CLI turns a ``UserError`` into a one-line message and exit status 2;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad argument, a missing or unreadable input: reported in one line."""
