"""`tunesmith interpolate` and `tunesmith reconstruct` from the command line, with the shipped bach-vae on real
chorales (tests/fixtures/bach40, see its LICENCE-NOTE.md): files a second MIDI reader loads, one-sentence errors."""

from __future__ import annotations

import mido
import pytest

from cli_run import run_cli
from conftest import FIXTURES

CHORALES = sorted((FIXTURES / "bach40").glob("*.mid"))
pytestmark = pytest.mark.usefixtures("one_thread")


def _notes(path) -> int:
    return sum(1 for track in mido.MidiFile(path).tracks for m in track if m.type == "note_on" and m.velocity)


def test_interpolate_and_reconstruct_write_midi_a_second_reader_loads(monkeypatch, capsys, tmp_path):
    code, out, _ = run_cli(monkeypatch, capsys, "interpolate", str(CHORALES[0]), str(CHORALES[4]), "--steps", "3",
                           "--checkpoint", "bach-vae", "--out", str(tmp_path / "walk"))
    assert code == 0 and out.count("wrote") == 3
    assert [_notes(tmp_path / "walk" / f"interp_{i:02d}.mid") > 0 for i in range(3)] == [True] * 3
    code, out, _ = run_cli(monkeypatch, capsys, "reconstruct", str(CHORALES[0]), "--checkpoint", "bach-vae",
                           "--out", str(tmp_path / "rec.mid"))
    assert code == 0 and _notes(tmp_path / "rec.mid") > 0


def test_a_file_that_is_not_midi_or_a_model_that_is_not_a_vae_is_one_sentence(monkeypatch, capsys, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not music")
    code, _, err = run_cli(monkeypatch, capsys, "reconstruct", str(text), "--out", str(tmp_path / "r.mid"))
    assert code == 2 and err.count("\n") == 1 and "notes.txt" in err
    code, _, err = run_cli(monkeypatch, capsys, "interpolate", str(CHORALES[0]), str(CHORALES[1]),
                           "--checkpoint", "band-5", "--out", str(tmp_path / "w"))
    assert code == 2 and err.count("\n") == 1
