"""Shared musical constants. Units are in the names: ticks, quarters, steps, semitones."""

DEFAULT_TPQ = 480  # ticks per quarter note for scores tunesmith writes
DEFAULT_QPM = 120.0  # quarters per minute when a file has no tempo
N_PITCHES = 128  # MIDI pitch numbers 0..127
PIANO_LOW = 21  # A0, lowest key of an 88-key piano
PIANO_KEYS = 88  # A0..C8 = MIDI 21..108
PIANO_HIGH = PIANO_LOW + PIANO_KEYS - 1
DRUM_CHANNEL = 9  # 0-based MIDI channel reserved for percussion in General MIDI
# File name suffixes (compared in lower case) of the file kinds tunesmith reads.
MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".smf", ".rmi")  # a tuple, so str.endswith takes it too
LPD_SUFFIXES = (".npz",)  # Lakh Pianoroll Dataset / pypianoroll files (`corpora/lpd.py`)
# music21 note names, spelled with sharps: flats would be ambiguous in octave -1 ("E-1" is E-flat 1 or E -1).
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# The five instrument groups of the Lakh Pianoroll Dataset (LPD-5), by General MIDI program.
# Programs not listed (e.g. synth leads 80-103, sound effects) fall into "strings" as LPD-5 does
# with its "others merged into strings"-style grouping; drums are any track flagged as percussion.
MULTITRACK_GROUPS = ("piano", "guitar", "bass", "strings", "drums")
MULTITRACK_PROGRAMS = {"piano": 0, "guitar": 24, "bass": 32, "strings": 48, "drums": 0}


def program_group(program: int, is_drum: bool) -> str:
    """LPD-5 instrument group of a General MIDI program (0-127)."""
    if is_drum:
        return "drums"
    if program < 24:  # pianos, chromatic percussion, organs
        return "piano"
    if program < 32:
        return "guitar"
    if program < 40:
        return "bass"
    return "strings"


def pitch_name(pitch: int) -> str:
    """music21-style name of a MIDI pitch: 60 -> 'C4', 63 -> 'D#4', 0 -> 'C-1'."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def pitch_from_name(name: str) -> int:
    """Inverse of `pitch_name`: 'C4' -> 60, 'D#4' -> 63, 'C#-1' -> 1."""
    for i, pc in sorted(enumerate(PITCH_NAMES), key=lambda item: -len(item[1])):
        if name.startswith(pc):
            return (int(name[len(pc) :]) + 1) * 12 + i
    raise ValueError(f"not a pitch name: {name!r}")
