"""Errors with a meaning at the command line.

`UserError` is bad input from the user (a missing file, a non-MIDI primer, an unknown config key):
the CLI prints its message as one sentence on stderr and exits with code 2, never a traceback.
"""


class UserError(Exception):
    """Bad input: the message is one clear sentence that tells the user what to fix."""


class SkipFile(Exception):
    """A file in a collection that cannot be used; the message is the one-line reason it is skipped."""
