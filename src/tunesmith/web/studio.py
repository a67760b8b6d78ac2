"""What the web studio serves, apart from HTTP: the checkpoint catalog, loaded models, primers, and the
generation job (the one generation path, `generation.generate.generate_batches`, then `outputs.write_piece`).

Clients name things; they never send paths. A checkpoint is a name from `Catalog.names()` (shipped ones,
then the `.ckpt` files and run folders of the folder given at start); a primer and a job are server-made
uuids; a file of a job is one of the ids the job itself made ("1.mid", "1.wav", "1.png").
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.core.errors import SkipFile, UserError
from tunesmith.web.jobs import Job

log = logging.getLogger(__name__)
MEDIA_TYPES = {".mid": "audio/midi", ".wav": "audio/wav", ".png": "image/png"}


class NotFound(Exception):
    """A name or id the server does not know; the message is one sentence."""


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    source: str  # "shipped" | "local"


class Catalog:
    """Shipped checkpoints plus those in `models_dir`; loaded models are cached (at most `cache_size`)."""

    def __init__(self, models_dir: Path | None = None, cache_size: int = 4):
        self.models_dir, self.cache_size = models_dir, cache_size
        self._cache: OrderedDict[Path, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.calls_per_bar: dict[str, float] = {}  # network calls per generated bar, from the last job

    def entries(self) -> dict[str, Entry]:
        """Every checkpoint the client may name, by name (a local name that clashes gets a `local-` prefix)."""
        from tunesmith.models.checkpoint import resolve_checkpoint, shipped_names

        found = {name: Entry(name, resolve_checkpoint(name), "shipped") for name in shipped_names()}
        for name, path in _local_checkpoints(self.models_dir):
            key = f"local-{name}" if name in found else name
            found.setdefault(key, Entry(key, path, "local"))
        return found

    def entry(self, name: str) -> Entry:
        entry = self.entries().get(name)
        if entry is None:
            raise NotFound(f"there is no checkpoint called {name[:80]!r}; GET /api/checkpoints lists them")
        return entry

    def load(self, name: str):
        """The LoadedModel of checkpoint `name` (UserError for a damaged file, NotFound for an unknown name)."""
        from tunesmith.models.checkpoint import load_model

        path = self.entry(name).path
        with self._lock:
            if path not in self._cache:
                self._cache[path] = load_model(path)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(path)
            return self._cache[path]

    def describe(self, name: str) -> dict[str, Any]:
        """The family, its generation shape and the options it honours (the contract's list)."""
        from tunesmith.models.base import GENERATION_OPTIONS

        entry, loaded = self.entry(name), self.load(name)
        model = loaded.model
        options = sorted(model.generation_options()) if model.generation else []
        return {"name": entry.name, "source": entry.source, "family": model.name, "generation": model.generation,
                "options": options, "flags": {o: GENERATION_OPTIONS[o] for o in options},
                "representation": loaded.representation.name,
                "summary": _first_sentence(type(model).__doc__)}


def _first_sentence(text: str | None) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line.split(". ")[0].rstrip(".")


def _local_checkpoints(folder: Path | None) -> list[tuple[str, Path]]:
    """(name, file) for each `*.ckpt` in `folder` and each run folder in it (its best, else last checkpoint)."""
    if folder is None or not folder.is_dir():
        return []
    found = [(p.stem, p) for p in sorted(folder.glob("*.ckpt")) if p.is_file()]
    for run in sorted(p for p in folder.iterdir() if p.is_dir()):
        ckpt = next((run / "checkpoints" / f"{n}.ckpt" for n in ("best", "last")
                     if (run / "checkpoints" / f"{n}.ckpt").is_file()), None)
        if ckpt is not None:
            found.append((run.name, ckpt))
    return found


class Primers:
    """Uploaded primers, checked by the guarded reader and kept under server-made ids (the newest `keep`)."""

    def __init__(self, folder: Path, max_bytes: int, keep: int = 64):
        self.folder, self.max_bytes, self.keep = folder, max_bytes, keep
        self._paths: OrderedDict[str, Path] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, data: bytes) -> dict[str, Any]:
        """Check `data` (UserError: one sentence) and store it; returns its id, notes and bars."""
        from tunesmith.core.score import bar_starts
        from tunesmith.io.midi import Limits, read_midi_bytes

        if len(data) > self.max_bytes:
            raise UserError(f"the primer is larger than the {self.max_bytes // 1024} KiB limit")
        try:
            score = read_midi_bytes(data, Limits(max_file_bytes=self.max_bytes))
        except SkipFile as reason:
            raise UserError(f"the primer is not a readable MIDI file ({reason})") from None
        if score.note_num() == 0:
            raise UserError("the primer holds no notes to continue")
        primer_id = uuid.uuid4().hex
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{primer_id}.mid"
        path.write_bytes(data)
        with self._lock:
            self._paths[primer_id] = path
            while len(self._paths) > self.keep:
                self._paths.popitem(last=False)[1].unlink(missing_ok=True)
        return {"primer_id": primer_id, "notes": score.note_num(), "bars": len(bar_starts(score))}

    def path(self, primer_id: str) -> Path:
        with self._lock:
            path = self._paths.get(primer_id)
        if path is None:
            raise NotFound(f"there is no primer {primer_id[:80]!r}; upload it again")
        return path


def generation_work(catalog: Catalog, name: str, request) -> Any:
    """The job function: generate `request` with checkpoint `name` and write MIDI, PNG (and WAV) per piece.

    Progress while generating is estimated from the network calls per bar the checkpoint needed last time
    (the first job of a checkpoint reports its call count only)."""

    def work(job: Job) -> dict[str, Any]:
        import torch

        from tunesmith.generation.generate import BATCH, generate_batches

        job.report("loading the model", 0.02)
        loaded = catalog.load(name)
        if loaded.model.cpu_threads:
            torch.set_num_threads(loaded.model.cpu_threads)
        bars = request.bars * -(-request.n // BATCH)  # bars sampled one after the other
        per_bar = catalog.calls_per_bar.get(name)
        scores = []
        with _deadline(loaded.model, job, per_bar * bars if per_bar else None) as watch:
            for batch in generate_batches(loaded, request):
                scores += batch
        catalog.calls_per_bar[name] = watch.calls / bars
        return {"pieces": _write(job, scores, request)}

    return work


class _deadline:
    """Forward pre-hooks on every module of the model: every 64 calls the time limit is checked and the
    progress reported (so a long generation stops inside the sampler, not after it)."""

    def __init__(self, model, job: Job, expected_calls: float | None):
        self.model, self.job, self.expected, self.calls, self.handles = model, job, expected_calls, 0, []

    def __enter__(self):
        def hook(module, args):
            self.calls += 1
            if self.calls % 64 == 0:
                self.job.check_time()
                if self.expected:
                    share = min(1.0, self.calls / self.expected)
                    self.job.report(f"generating (about {100 * share:.0f}%)", 0.05 + 0.55 * share)
                else:
                    self.job.report(f"generating ({self.calls} network calls)")

        self.job.report("generating", 0.05)
        self.handles = [m.register_forward_pre_hook(hook) for m in self.model.modules()]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return False


def _write(job: Job, scores: list, request) -> list[dict[str, Any]]:
    """Write each piece (MIDI, PNG, WAV on request) into the job's folder; the pieces as the API shows them."""
    from tunesmith.core.score import bar_starts
    from tunesmith.generation.outputs import write_piece

    pieces = []
    for index, score in enumerate(scores, start=1):
        job.check_time()
        job.report(f"writing piece {index} of {len(scores)}", 0.6 + 0.4 * (index - 1) / len(scores))
        paths = write_piece(score, job.folder / f"piece_{index:02d}", request, f"piece {index}")
        files = {}
        for path in paths:
            file_id = f"{index}{path.suffix}"
            job.files[file_id] = path
            files[path.suffix.lstrip(".").replace("mid", "midi")] = f"/api/jobs/{job.id}/files/{file_id}"
        pieces.append({"index": index, "notes": score.note_num(), "bars": len(bar_starts(score)), "files": files})
    return pieces
