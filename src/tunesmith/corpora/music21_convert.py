"""music21 stream -> symusic `Score`, by walking the stream ourselves.

music21's own MIDI writer is not used: it fails on many ABC tunes ("the object <TimeSignature> ... is
already found in this Stream": the ABC reader puts one TimeSignature object into two measures), and
`Stream.flatten()` misplaces such shared objects too. So we walk the nested streams depth first and add
up offsets ourselves (`_walk`). Every part becomes one track; its notes and chord tones become notes
with ties merged (a tied chain of C4 quarters is one long C4); grace notes (zero duration) are dropped.
Offsets are music21 quarter lengths (often `Fraction`s, e.g. triplets) rounded to the nearest tick at
`tpq` ticks per quarter; repeats are not expanded (the score as written).

Tempo marks (quarter-note BPM), time signatures and key signatures come from every part, the first
one at each tick winning (parts repeat them). music21 is never imported here: the functions only use
the stream objects they are given, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import numpy as np
from symusic import KeySignature, Score, Tempo, TimeSignature, Track

from tunesmith.core.constants import DEFAULT_QPM, DEFAULT_TPQ
from tunesmith.core.score import make_track

DEFAULT_VELOCITY = 80  # music21 scores rarely carry dynamics; one velocity for all unmarked notes
_TIE_GOES_ON = ("start", "continue")
_TIE_ARRIVES = ("continue", "stop")
_META = ("MetronomeMark", "TimeSignature", "KeySignature")


def stream_to_score(stream, tpq: int = DEFAULT_TPQ) -> Score:
    """A symusic Score (ticks, `tpq` per quarter) of a music21 Score/Part/Stream; one track per part."""
    parts = list(stream.parts) if hasattr(stream, "parts") else []
    parts = parts or [stream]  # a bare stream (e.g. a one-voice ABC tune) is its own single part
    meta: dict[str, dict[int, object]] = {name: {} for name in _META}
    score = Score(tpq)
    for part in parts:
        score.tracks.append(part_to_track(part, tpq, meta))
    for time, qpm in _tempos(meta["MetronomeMark"]):
        score.tempos.append(Tempo(time, qpm=qpm))
    for time, num, den in _time_signatures(meta["TimeSignature"]):
        score.time_signatures.append(TimeSignature(time, num, den))
    for time, sharps, minor in _key_signatures(meta["KeySignature"]):
        score.key_signatures.append(KeySignature(time, sharps, minor))
    return score


def _walk(stream, base=0.0) -> Iterator[tuple[float | Fraction, object]]:
    """(offset in quarters from the outer stream, element) of every non-stream element, depth first.

    Offsets are read per container (`elementOffset`), so an object shared by two measures is seen
    at both places.
    """
    for element in stream:
        offset = base + stream.elementOffset(element)
        if element.isStream:
            yield from _walk(element, offset)
        else:
            yield offset, element


def _ticks(quarters, tpq: int) -> int:
    """Quarter length (float or Fraction) -> nearest tick; exact for any Fraction the grid holds."""
    return int(round(Fraction(quarters).limit_denominator(10_000) * tpq))


def _sorted(found: dict[int, object]) -> list[tuple[int, object]]:
    return sorted(found.items(), key=lambda item: item[0])


def _tempos(found: dict[int, object]) -> list[tuple[int, float]]:
    """(tick, quarter notes per minute); 120 at tick 0 when the score states no tempo there."""
    marks = [(t, m.getQuarterBPM()) for t, m in _sorted(found)]
    marks = [(t, float(q)) for t, q in marks if q is not None and q > 0]
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0, DEFAULT_QPM))
    return _changes_only(marks)


def _time_signatures(found: dict[int, object]) -> list[tuple[int, int, int]]:
    """(tick, numerator, denominator) at every change of meter."""
    return _changes_only([(t, int(ts.numerator), int(ts.denominator)) for t, ts in _sorted(found)])


def _key_signatures(found: dict[int, object]) -> list[tuple[int, int, int]]:
    """(tick, sharps (negative for flats), 1 for minor else 0) at every change of key."""
    keys = [(t, int(ks.sharps), int(getattr(ks, "mode", None) == "minor")) for t, ks in _sorted(found)]
    return _changes_only(keys)


def _changes_only(events: list[tuple]) -> list[tuple]:
    """Drop an event that repeats the values of the one before it (only the tick differs)."""
    out: list[tuple] = []
    for event in events:
        if not out or out[-1][1:] != event[1:]:
            out.append(event)
    return out


def part_to_track(part, tpq: int = DEFAULT_TPQ, meta: dict[str, dict[int, object]] | None = None) -> Track:
    """One symusic Track of a music21 part: notes and chord tones with ties merged, in ticks.

    Tempo, meter and key elements met on the way are recorded in `meta[class name][tick]` (first wins).
    """
    raw = []  # (start tick, end tick, pitch, velocity, tie type)
    for offset, element in _walk(part):
        if getattr(element, "isNote", False) or getattr(element, "isChord", False):
            if element.duration.isGrace or element.duration.quarterLength == 0:
                continue
            start = _ticks(offset, tpq)
            end = max(start + 1, _ticks(offset + element.duration.quarterLength, tpq))
            velocity = _velocity(element)
            raw += [(start, end, pitch, velocity, tie) for pitch, tie in _pitches_and_ties(element)]
        elif meta is not None:
            for name in _META:
                if name in element.classSet:
                    meta[name].setdefault(_ticks(offset, tpq), element)
    columns = np.asarray(merge_ties(raw), dtype=np.int64).reshape(-1, 4)
    instrument = part.getInstrument(returnDefault=False) if hasattr(part, "getInstrument") else None
    program = getattr(instrument, "midiProgram", None)
    name = getattr(part, "partName", None) or getattr(instrument, "partName", None) or ""
    return make_track(
        columns[:, 2], columns[:, 0], columns[:, 1] - columns[:, 0], columns[:, 3],
        program=int(program) if program is not None else 0, name=str(name),
    )


def _velocity(element) -> int:
    if element.hasVolumeInformation() and element.volume.velocity is not None:
        return int(min(127, max(1, element.volume.velocity)))
    return DEFAULT_VELOCITY


def _pitches_and_ties(element) -> list[tuple[int, str | None]]:
    """(MIDI pitch, tie type or None) of a Note or of every tone of a Chord; unpitched sounds skipped.

    The pitch is music21's pitch space number rounded (microtones to the nearest semitone); a pitch
    outside MIDI 0..127 is dropped rather than folded into range as `Pitch.midi` would do.
    """
    if element.isChord:
        tones = [(n.pitch, n.tie or element.tie) for n in element.notes if hasattr(n, "pitch")]
    elif hasattr(element, "pitch"):
        tones = [(element.pitch, element.tie)]
    else:
        return []
    out = []
    for pitch, tie in tones:
        midi = int(round(pitch.ps))
        if 0 <= midi <= 127:
            out.append((midi, tie.type if tie is not None else None))
    return out


def merge_ties(raw: list[tuple[int, int, int, int, str | None]]) -> list[tuple[int, int, int, int]]:
    """Merge tied notes: a note whose tie arrives ('continue'/'stop') extends the open note of its pitch.

    `raw` rows are (start tick, end tick, pitch, velocity, tie type). The open note must end exactly
    where the arriving one starts; otherwise the tie is broken in the source and both notes stay.
    Returns rows (start, end, pitch, velocity), sorted by (start, pitch).
    """
    notes: list[list[int]] = []
    open_by_pitch: dict[int, int] = {}
    for start, end, pitch, velocity, tie in sorted(raw, key=lambda row: (row[0], row[2])):
        index = open_by_pitch.get(pitch)
        if tie in _TIE_ARRIVES and index is not None and notes[index][1] == start:
            notes[index][1] = end
        else:
            index = len(notes)
            notes.append([start, end, pitch, velocity])
        if tie in _TIE_GOES_ON:
            open_by_pitch[pitch] = index
        else:
            open_by_pitch.pop(pitch, None)
    return [tuple(note) for note in notes]
