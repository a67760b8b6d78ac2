"""`events`: REMI or TSD event tokens through miditok (for the relative-attention Transformer).

Array: 1-D int64 miditok token ids, one stream for the whole score. Vocabulary: miditok's, in id
order (`vocab`); specials `PAD_None` 0, `BOS_None` 1, `EOS_None` 2, `MASK_None` 3.

Tokenizer settings (miditok 3.1 `TokenizerConfig`), from this config:
- `tokenizer`: "REMI" (Bar / Position / Pitch / Velocity / Duration) or "TSD" (TimeShift / Pitch /
  Velocity / Duration);
- one uniform grid `beat_res = {(0, max_duration_quarters): steps_per_quarter}`: positions and
  durations are whole steps of 1/`steps_per_quarter` quarter (default 8: 32nd notes); durations
  longer than `max_duration_quarters` (default 8) are cut to it;
- `velocities` bins (miditok's `num_velocities`, default 32; 0 = no Velocity tokens, decoded notes
  get miditok's velocity 100);
- `use_programs` (default True): one stream for every track, each note preceded by a Program token
  (`Program_-1` for drums, whose pitches are `PitchDrum` tokens); tracks of one program are merged.
  With False: every pitched track is merged into one piano stream and drums are dropped;
- `use_tempos` (default False): Tempo tokens; time signatures are not tokenized (REMI bars are
  4/4; positions stay absolute, so notes of any meter come back where they were);
- pitch range `pitch_low..pitch_high` (default 21..108, the piano) and drums 27..88 (miditok's), cut
  to the pitch range (miditok's decoder drops drum notes outside it);
- `countdown` (REMI only, default 0 = off): K bar-countdown tokens `Bar_0 .. Bar_{K-1}` appended to the
  vocabulary; each bar line less than K bars from the piece's end is written with the number of bars
  left after it (`representations/countdown.py`), so a model knows where the piece ends.

Before miditok sees a score, tunesmith quantizes it itself (starts and ends rounded to the grid,
at least one step, as `core.score.quantize`) and writes it at one tick per step, so miditok's own
resampling has nothing left to round. What is kept (see `canonical`): those quantized notes in the
pitch ranges, durations cut to the maximum, velocities snapped to miditok's bins (nearest), merged
per (program, drums). The vocabulary is rebuilt from the config and checked against the one saved
in `state()`, so a checkpoint never decodes with a different vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from symusic import Score

from tunesmith.core.errors import UserError
from tunesmith.representations import _grid
from tunesmith.representations.base import LearnedVocabRepresentation
from tunesmith.representations.countdown import Countdown, countdown_tokens
from tunesmith.representations.grammar import EventsGrammar, count_invalid

TOKENIZERS = ("REMI", "TSD")
DRUM_PITCH_RANGE = (27, 88)  # miditok's default drums_pitch_range, inclusive


@dataclass(frozen=True)
class EventsConfig:
    """See the module docstring for what each field sets in miditok."""

    tokenizer: str = "REMI"
    steps_per_quarter: int = 8
    max_duration_quarters: int = 8
    velocities: int = 32
    use_programs: bool = True
    use_tempos: bool = False
    pitch_low: int = 21
    pitch_high: int = 108
    countdown: int = 0

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise UserError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, not {self.tokenizer!r}")
        _grid.check_positive("steps_per_quarter", self.steps_per_quarter)
        _grid.check_positive("max_duration_quarters", self.max_duration_quarters)
        if not 0 <= self.velocities <= 127:
            raise UserError(f"velocities must be between 0 and 127, not {self.velocities}")
        if not 0 <= self.pitch_low <= self.pitch_high <= 127:
            low, high = self.pitch_low, self.pitch_high
            raise UserError(f"need 0 <= pitch_low <= pitch_high <= 127, not {low}..{high}")
        if not 0 <= self.countdown <= 64:
            raise UserError(f"countdown must be between 0 (off) and 64 bars, not {self.countdown}")
        if self.countdown and self.tokenizer != "REMI":
            raise UserError("countdown needs bar tokens: use it with tokenizer REMI")


def build_tokenizer(config: EventsConfig) -> Any:
    """The miditok tokenizer of `config` (miditok is imported here: it is slow to import)."""
    import miditok

    tok_config = miditok.TokenizerConfig(
        pitch_range=(config.pitch_low, config.pitch_high + 1),
        beat_res={(0, config.max_duration_quarters): config.steps_per_quarter},
        num_velocities=max(config.velocities, 1),
        use_velocities=config.velocities > 0,
        use_programs=config.use_programs,
        one_token_stream_for_programs=config.use_programs,
        use_tempos=config.use_tempos,
        use_time_signatures=False,
        use_rests=False,
        use_chords=False,
        drums_pitch_range=(DRUM_PITCH_RANGE[0], DRUM_PITCH_RANGE[1] + 1),
    )
    return getattr(miditok, config.tokenizer)(tok_config)


class EventsRepresentation(LearnedVocabRepresentation):
    """miditok REMI / TSD single-stream tokens; see the module docstring."""

    name = "events"
    Config = EventsConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.tokenizer = build_tokenizer(self.config)
        by_id = sorted(self.tokenizer.vocab.items(), key=lambda item: item[1])
        self._vocab = [token for token, _ in by_id] + countdown_tokens(self.config.countdown)
        # None without countdown tokens: then encode / decode are miditok's alone, as before the option
        self.countdown = Countdown(self._vocab, self.config.countdown) if self.config.countdown else None
        ids = self.tokenizer.vocab
        self.pad_id, self.bos_id, self.eos_id = ids["PAD_None"], ids["BOS_None"], ids["EOS_None"]
        self._special_ids = np.asarray(self.tokenizer.special_tokens_ids, np.int64)

    @property
    def note_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        fields = ("pitch", "start", "duration") + (("velocity",) if self.config.velocities else ())
        return fields + (("program", "is_drum") if self.config.use_programs else ())

    @property
    def drum_range(self) -> tuple[int, int]:
        """Drum pitches kept (inclusive): miditok's drum range inside pitch_low..pitch_high."""
        return max(DRUM_PITCH_RANGE[0], self.config.pitch_low), min(DRUM_PITCH_RANGE[1], self.config.pitch_high)

    @property
    def tpq(self) -> int:
        """Ticks per quarter of decoded and canonical scores."""
        return _grid.output_tpq(self.config.steps_per_quarter)

    def state(self) -> dict[str, Any]:
        return {"vocab": self.vocab}

    def load_state(self, state: dict[str, Any]) -> None:
        """Check the saved vocabulary against the rebuilt one (same config, same miditok)."""
        saved = state.get("vocab")
        if saved is not None and list(saved) != self._vocab:
            raise UserError(
                "the saved events vocabulary differs from the one miditok builds from this config; "
                "use the miditok version the checkpoint was made with"
            )

    def _quantized(self, score: Score) -> Score:
        """What miditok is given (and what is kept): one track per (program, drums), one tick per step."""
        spq = self.config.steps_per_quarter
        table = _grid.step_table(score, spq, pitched_only=not self.config.use_programs)
        # miditok decodes drums as program 0; set it here too so track order (hence token order) is stable.
        if not self.config.use_programs:
            table["program"] = np.zeros_like(table["program"])
        table["program"] = np.where(table["is_drum"], 0, table["program"])
        # miditok's decoder also drops drum notes outside pitch_low..pitch_high: keep only what comes back
        drum_low, drum_high = self.drum_range
        low = np.where(table["is_drum"], drum_low, self.config.pitch_low)
        high = np.where(table["is_drum"], drum_high, self.config.pitch_high)
        table = _grid.select(table, (table["pitch"] >= low) & (table["pitch"] <= high))
        end = np.minimum(table["end"], table["start"] + self.config.max_duration_quarters * spq)
        velocity = self._velocities(table["velocity"])
        tracks = []
        keys = table["program"].astype(np.int64) * 2 + table["is_drum"]
        for key in np.unique(keys).tolist():
            rows = keys == key
            program, is_drum = (0, True) if key % 2 else (key // 2, False)
            tracks.append(_grid.make_step_track(
                table["pitch"][rows], table["start"][rows], end[rows], velocity[rows], 1,
                program=program, is_drum=is_drum,
            ))
        return _grid.score_with_tracks(tracks, spq)

    def _velocities(self, velocity: np.ndarray) -> np.ndarray:
        """Velocities snapped to miditok's bins (its own nearest-value rule), or miditok's default."""
        from miditok.constants import DEFAULT_VELOCITY
        from miditok.utils.utils import np_get_closest

        if not self.config.velocities or len(velocity) == 0:
            return np.full(len(velocity), DEFAULT_VELOCITY, np.int64)
        return np_get_closest(self.tokenizer.velocities, np.clip(velocity, 1, 127)).astype(np.int64)

    def encode(self, score: Score) -> np.ndarray:
        """Score -> (n_tokens,) int64 miditok ids (no BOS / EOS); with `countdown`, bar lines near the
        end carry the bars left (`Countdown.label`, counted from the whole score)."""
        encoded = self.tokenizer.encode(self._quantized(score))
        if isinstance(encoded, list):  # without programs: one sequence per track, here at most one
            encoded = encoded[0] if encoded else None
        ids = np.asarray(encoded.ids if encoded is not None else [], np.int64)
        return self.countdown.label(ids) if self.countdown is not None else ids

    def decode(self, array: np.ndarray) -> Score:
        """(n,) ids -> Score at `self.tpq`; special ids are dropped first."""
        from miditok import TokSequence

        ids = _grid.as_int_array(array, "event tokens", 1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise UserError(f"event token ids must lie in 0..{self.vocab_size - 1}")
        if self.countdown is not None:  # miditok knows one bar token
            ids = self.countdown.far(ids)
        seq = TokSequence(ids=ids[~np.isin(ids, self._special_ids)].tolist())
        decoded = self.tokenizer.decode(seq if self.config.use_programs else [seq])
        return self._rescaled(decoded)

    def span(self, array: np.ndarray) -> int:
        """Ticks the tokens reach. REMI: the time of its last Bar / Position token (bars of 4/4, as
        miditok writes them without time-signature tokens), or the last note's end if later; TSD: the
        decoded notes' end."""
        if self.config.tokenizer != "REMI":
            return super().span(array)
        bars, position = 0, 0
        for token in (self._vocab[i] for i in _grid.as_int_array(array, "event tokens", 1).tolist()):
            if token.startswith("Bar_"):
                bars, position = bars + 1, 0
            elif token.startswith("Position_"):
                position = int(token.split("_")[1])
        cursor = max(bars - 1, 0) * 4 * self.tpq + position * (self.tpq // self.config.steps_per_quarter)
        return max(cursor, self.decode(array).end()) if bars else super().span(array)

    def grammar(self) -> EventsGrammar:
        """The token order miditok writes and decodes without dropping tokens (`grammar.py`); built once."""
        if getattr(self, "_grammar", None) is None:
            pitches = (self.config.pitch_low, self.config.pitch_high)
            self._grammar = EventsGrammar(self._vocab, self.config.tokenizer, pitches, self.drum_range,
                                          self.config.countdown)
        return self._grammar

    def invalid_tokens(self, array: np.ndarray) -> int:
        """How many of the ids (n,) the grammar forbids where they stand (0 for anything `encode` writes)."""
        return count_invalid(self.grammar(), _grid.as_int_array(array, "event tokens", 1))

    def canonical(self, score: Score) -> Score:
        """Quantized, in range, durations cut, velocities binned, merged per (program, drums)."""
        return self._rescaled(self._quantized(score))

    def _rescaled(self, score: Score) -> Score:
        """`score` (one tick per step) at `self.tpq`, with its tracks and tempos."""
        return score.resample(self.tpq, min_dur=1)
