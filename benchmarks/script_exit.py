"""How a benchmark script refuses bad input: one sentence on stderr and exit code 2, as the `tunesmith` commands do."""

from __future__ import annotations

import sys


def refuse(message: str) -> None:
    """Print `message` on stderr and exit with code 2."""
    print(message, file=sys.stderr)
    raise SystemExit(2)
