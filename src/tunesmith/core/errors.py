"""Errors with a meaning at the command line.

`UserError` is bad input from the user (a missing file, a non-MIDI primer, an unknown config key):
the CLI prints its message as one sentence on stderr and exits with code 2, never a traceback.
"""

from pathlib import Path


class UserError(Exception):
    """Bad input: the message is one clear sentence that tells the user what to fix."""


class SkipFile(Exception):
    """A file in a collection that cannot be used; the message is the one-line reason it is skipped."""


def require_file(path: Path | str, what: str = "") -> None:
    """Raise a UserError naming `what` (e.g. "primer") unless `path` is an existing file: a missing path and
    a folder get different sentences, since "does not exist" is wrong for a folder given by mistake."""
    label = f"{what} {path}".strip()
    if Path(path).is_dir():
        raise UserError(f"{label} is a folder; give a file")
    if not Path(path).is_file():
        raise UserError(f"{label} does not exist")
