"""Run the `tunesmith` command in-process, through `main` (the one error boundary), as a user would."""

from __future__ import annotations

import pytest

from tunesmith.cli import main


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `tunesmith ARGS...`."""
    monkeypatch.setattr("sys.argv", ["tunesmith", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
