"""Errors a user can act on: one line naming the file and the fix, never a traceback."""


class UserError(Exception):
    """A problem with the user's input or set-up; its message is shown as is."""


class Cancelled(Exception):
    """The caller asked the running job to stop."""
