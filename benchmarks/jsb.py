"""JSB Chorales table: every piano-roll model we trained, its exact valid NLL, next to the published figures.

Each entry is a recipe in configs/ trained into runs/jsb/NAME (with `--train`, missing runs are trained
here, one at a time on one thread, and their wall-clock and CPU seconds saved in RUN/timing.json), then
scored with the benchmark's own code (`scoring.jsb.jsb_nll`) on the valid split: nats per
quarter-note frame, 88 keys summed, all 76 pieces, conditioning on previous frames only. The published
figures are on the test split, which is not in this repository (tune on valid, report test once).
The shipped model (jsb-best) is the per-frame mixture of the single LSTM-NADE runs in SHIPPED (key
orders bass first / soprano first, two training seeds), each read at the test-time transpositions
-SHIFTS..SHIFTS (`lstm-nade-mix` docstring), with uniform weights, assembled from their best checkpoints.
A member whose run folder is gone is taken from the shipped checkpoint it is already part of (its
fp16 weights, epoch and training time), and a table row whose run is gone is carried over from the
previous jsb.json. Writes benchmarks/results/jsb.md and jsb.json; with `--ship`, also
checkpoints/jsb-best.ckpt (no optimizer state) and checkpoints/jsb-best.md.
Usage: python benchmarks/jsb.py [--train] [--ship] [--data FILE] [--runs DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from tunesmith.corpora.jsb import load_jsb
from tunesmith.io.atomic import write_atomic
from tunesmith.models.checkpoint import save_checkpoint
from tunesmith.models.nade_mixture import NADEMixture
from tunesmith.scoring.jsb import jsb_nll, load_scorable

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "jsb" / "jsb-chorales-quarter.trainvalid.json"
ENTRIES = [  # (label, recipe); the run folder is RUNS/<recipe stem>
    ("seq2one LSTM, BCE (seed)", "seq2one-jsb"),
    ("seq2seq LSTM, BCE (seed)", "seq2seq-bce-jsb"),
    ("seq2seq LSTM, focal loss (seed)", "seq2seq-focal-jsb"),
    ("LSTM-NADE, bass first", "lstm-nade-jsb"),
    ("LSTM-NADE, soprano first", "lstm-nade-down-jsb"),
    ("2 LSTM-NADEs trained side by side, dropout 0.4", "lstm-nade-mix-jsb"),
    ("LSTM-NADE, soprano first, seed 1", "lstm-nade-down-s1-jsb"),
    ("LSTM-NADE, bass first, seed 1", "lstm-nade-up-s1-jsb"),
    ("LSTM-NADE, keys by pitch class (90 epochs, lr x0.975 per epoch)", "lstm-nade-chroma-jsb"),
]
# members of checkpoints/jsb-best.ckpt, in mixture order
SHIPPED = ("lstm-nade-jsb", "lstm-nade-down-jsb", "lstm-nade-down-s1-jsb", "lstm-nade-up-s1-jsb")
SHIFTS = 6  # test-time transpositions -6..6 (the members were trained with transpose 6); chosen on valid
SHARE = 0.2  # fixed share of the component weights (models/nade_mixture.py); chosen on valid
SHIPPED_PATH = ROOT / "checkpoints" / "jsb-best.ckpt"
NOTES = ("seq2one / seq2seq predict 176 independent units (onset, sustain per key); a key sounds if either fires, "
         "so a frame's probability is exact, read with teacher forcing (seq2seq: previous 16-frame chunk "
         "encoded). seq2seq trains with the seed's teacher-forcing schedule 0.5 x (1 - e/E)^2, so its "
         "teacher-forced likelihood is best early (epoch ~30) and degrades as training goes free-running; focal "
         "loss is not a likelihood objective and its probabilities are far from calibrated. Best epoch: chosen "
         "on valid by the training loop. Mixtures add their members' training times. \"13 transpositions\": "
         "each member also reads the piece rolled by -6..6 semitones and is told the shift (it was trained so), "
         "an exact mixture component (the roll is a bijection of frames); no extra training. \"Fixed share\": "
         "the component weights follow the piece's previous frames (models/nade_mixture.py), still an exact "
         "likelihood; on valid (4 members x 13 shifts) share 1.0 (fixed weights) 4.639, 0.3 4.596, 0.2 4.594, "
         "0.15 4.595; shifts +-4 vs +-6 (fixed weights) 4.639 vs 4.639. Weights fit by EM on the training split "
         "scored worse on valid (2 members x 13 shifts: 4.714 vs 4.681 uniform). The pitch-class-order member "
         "was not shipped: with it (any weight) the mixture's valid NLL did not go down (3 members + it, share "
         "0.2: 4.641 at equal weight, 4.622 without it).")
PUBLISHED = [  # test NLL, nats per frame (Boulanger-Lewandowski 2012; Chung 2014; Bai 2018; Fraccaro 2016)
    ("RNN", "8.71"), ("LSTM", "8.45-8.67"), ("GRU", "8.43-8.54"), ("TCN", "8.10"), ("RNN-RBM", "6.27"),
    ("RNN-NADE", "5.56"), ("DMM (bound)", "about 6.4-6.9"), ("SRNN (bound)", "<= 4.74"),
]


def train_run(recipe: str, run_dir: Path, data: Path) -> None:
    """Train one recipe in a child process on one thread; record its wall-clock and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [sys.executable, "-m", "tunesmith.cli", "train", str(ROOT / "configs" / f"{recipe}.yaml"),
               "--out", str(run_dir), "--set", f"data.source={data}", "--set", "trainer.num_threads=1",
               "--set", "trainer.progress=false"]
    subprocess.run(command, check=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timing = {"wall_seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(cpu, 1)}
    (run_dir / "timing.json").write_text(json.dumps(timing) + "\n")


def score_run(label: str, run_dir: Path, valid: list) -> dict:
    """Valid NLL, parameters and training time of one trained run."""
    model, payload = load_scorable(run_dir / "checkpoints" / "best.ckpt")
    timing_file = run_dir / "timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    return {"label": label, "model": payload["model"]["name"], "run": str(run_dir),
            "valid_nll": jsb_nll(model, valid)["nll"], "epochs": payload["epoch"],
            "parameters": sum(p.numel() for p in model.parameters()), **timing}


def shipped_members(shipped: Path, previous: list[dict]) -> dict[str, tuple]:
    """The members of an earlier shipped mixture, by recipe: (model, payload like a run's best.ckpt,
    timing), the timing from the checkpoint's provenance or else the previous results' row of that run."""
    if not shipped.is_file():
        return {}
    mixture, payload = load_scorable(shipped)
    timings = {Path(r["run"]).name: {k: r[k] for k in ("cpu_seconds", "wall_seconds") if k in r}
               for r in previous}
    found = {}
    for member, entry in zip(mixture.members, payload["provenance"].get("members", []), strict=False):
        recipe = Path(entry["recipe"]).stem
        timing = entry.get("timing") or timings.get(Path(entry["run"]).name, {})
        provenance = {k: v for k, v in payload["provenance"].items() if k != "members"}
        member_payload = {**payload, "model": {"name": member.name, "config": dataclasses.asdict(member.config)},
                          "epoch": entry["epoch"], "step": entry.get("step", 0), "provenance": provenance,
                          "weights": member.state_dict(), "path": f"{shipped} (member {recipe})"}
        found[recipe] = (member, member_payload, {**timing, "run": entry["run"]})
    return found


def member_sources(runs: Path, shipped: dict[str, tuple]) -> list[tuple]:
    """(recipe, model, payload, timing) of each SHIPPED member: its run's best checkpoint, else the copy in
    the shipped checkpoint; [] when one is in neither."""
    sources = []
    for recipe in SHIPPED:
        best = runs / recipe / "checkpoints" / "best.ckpt"
        if best.is_file():
            model, payload = load_scorable(best)
            timing_file = runs / recipe / "timing.json"
            timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
            run = runs / recipe
            sources.append((recipe, model, payload, {**timing, "run": str(run.relative_to(ROOT))
                                                     if run.is_relative_to(ROOT) else str(run)}))
        elif recipe in shipped:
            sources.append((recipe, *shipped[recipe]))
        else:
            return []
    return sources


def table(rows: list[dict]) -> str:
    lines = ["# JSB Chorales: negative log-likelihood per quarter-note frame (nats, 88 keys)", "",
             "Ours: exact NLL on the **valid** split (76 pieces, 4,602 frames) of "
             "`shared/data/jsb/jsb-chorales-quarter.trainvalid.json`, from `python benchmarks/jsb.py`; "
             "training on one thread of this (shared, 2-core) CPU.", "",
             "| model | valid NLL | parameters | best epoch | training CPU time | wall-clock |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        cpu = f"{r['cpu_seconds'] / 60:.0f} min" if "cpu_seconds" in r else "n/a"
        wall = f"{r['wall_seconds'] / 60:.0f} min" if "wall_seconds" in r else "n/a"
        lines.append(f"| {r['label']} (`{r['model']}`) | {r['valid_nll']:.3f} | {r['parameters']:,} | "
                     f"{r['epochs']} | {cpu} | {wall} |")
    lines += ["", NOTES, "", "Published, **test** split (the test split is not in this repository):", "",
              "| model | test NLL |", "|---|---|"]
    lines += [f"| {name} | {nll} |" for name, nll in PUBLISHED]
    return "\n".join(lines) + "\n"


def assemble(sources: list[tuple], shifts: int, share: float) -> tuple[NADEMixture, dict]:
    """The mixture of the members (recipe, model, payload, timing) read at shifts -shifts..shifts, uniform
    weights shared by `share`, and its checkpoint payload."""
    members = [model for _, model, _, _ in sources]
    mixture = NADEMixture.from_members(members, shifts=shifts, share=share).eval()
    # fp16 storage keeps 4 x 3.6M parameters under 30 MB; loading casts back to fp32, and what we score
    # is the rounded model, i.e. exactly what ships
    weights = {k: v.half() if v.is_floating_point() else v for k, v in mixture.state_dict().items()}
    mixture.load_state_dict(weights)
    first = sources[0][2]
    provenance = {k: v for k, v in first["provenance"].items() if k != "members"}
    provenance["members"] = [
        {"run": timing["run"], "recipe": f"configs/{recipe}.yaml", "epoch": payload["epoch"],
         "step": payload["step"], "timing": {k: timing[k] for k in ("cpu_seconds", "wall_seconds") if k in timing}}
        for recipe, _, payload, timing in sources]
    payload = {"model": {"name": mixture.name, "config": dataclasses.asdict(mixture.config)},
               "representation": first["representation"], "weights": weights,
               "optimizer": {}, "rng": {}, "step": sum(p["step"] for _, _, p, _ in sources),
               "epoch": max(p["epoch"] for _, _, p, _ in sources), "provenance": provenance, "metrics": {},
               "run_config": first["run_config"]}
    return mixture, payload


def mixture_row(label: str, sources: list[tuple], member_rows: list[dict], shifts: int, share: float,
                valid: list) -> tuple[dict, dict]:
    """A table row for the mixture of `sources` at `shifts` and `share`, and its checkpoint payload."""
    mixture, payload = assemble(sources, shifts, share)
    row = {"label": label, "model": mixture.name,
           "valid_nll": jsb_nll(mixture, valid)["nll"],
           "epochs": " + ".join(str(r["epochs"]) for r in member_rows),
           "parameters": sum(p.numel() for p in mixture.parameters())}
    if all("cpu_seconds" in r for r in member_rows):
        row.update(cpu_seconds=sum(r["cpu_seconds"] for r in member_rows),
                   wall_seconds=sum(r["wall_seconds"] for r in member_rows))
    payload["metrics"] = {"valid_nll": row["valid_nll"]}
    return row, payload


def ship(row: dict, payload: dict, member_rows: list[dict], name: str = "jsb-best") -> Path:
    """checkpoints/NAME.ckpt (weights, configs, provenance; no optimizer / RNG state) and NAME.md."""
    path = ROOT / "checkpoints" / f"{name}.ckpt"
    save_checkpoint(payload, path)
    optim, config = payload["run_config"]["optim"], payload["model"]["config"]
    members = "\n".join(
        f"  - `{m['recipe']}` (run `{m['run']}`): best epoch {m['epoch']}, valid NLL {r['valid_nll']:.3f} "
        f"alone, {r.get('cpu_seconds', 0) / 60:.0f} min CPU" for m, r in zip(payload["provenance"]["members"],
                                                                           member_rows, strict=True))
    skip = ("members", "valid_fraction", "test_fraction", "transpose")  # unused with a file's own splits
    provenance = "\n".join(f"- {k}: {v}" for k, v in payload["provenance"].items() if k not in skip)
    digest = hashlib.sha256(Path(payload["provenance"]["source"]).read_bytes()).hexdigest()
    count, shifts = len(member_rows), config["shifts"]
    write_atomic(path.with_suffix(".md"), (
        f"# {name}: {count} LSTM-NADEs x {2 * shifts + 1} transpositions mixed per frame, JSB Chorales "
        "(quarter-note grid)\n\n"
        f"- model: `{payload['model']['name']}`, {row['parameters']:,} parameters, "
        f"{path.stat().st_size / 2**20:.1f} MB (weights stored as fp16, scored as shipped); config `{config}`\n"
        f"- valid NLL: **{row['valid_nll']:.3f} nats per frame** (exact; 76 pieces, 4,602 frames; "
        f"`tunesmith benchmark jsb {name} --data FILE --split valid`)\n"
        f"- training: {row['cpu_seconds'] / 60:.0f} min CPU on one thread in all "
        f"({row['wall_seconds'] / 60:.0f} min wall-clock on a shared 2-core box); AdamW lr {optim['lr']}, "
        f"x{optim['lr_decay']} per epoch, batch {optim['batch_size']}, gradient norm clip {optim['grad_clip']}\n"
        f"- members, trained apart and assembled by `python benchmarks/jsb.py --ship`:\n{members}\n"
        "- each member: 2-layer LSTM (512) over frames + NADE (300 hidden units) over the 88 keys of a frame, "
        "trained with random transpositions of +-6 semitones given to the network as an input, dropout 0.3\n"
        f"- the mixture: q(v_t | v_<t) = sum over members k and shifts s in -{shifts}..{shifts} of "
        "w_ks(v_<t) p_k(v_t rolled by s | v_<t rolled by s, shift input s): each member also reads the piece "
        "transposed and is told by how much (as in its training); a roll is a bijection of the 2^88 frames, so "
        "every component is an exact distribution over the next frame. The weights w start uniform and follow "
        f"the piece (fixed share {config['share']}): after each frame they become "
        f"{1 - config['share']:g} x the posterior over components given the frames so far + "
        f"{config['share']:g} x uniform. They depend on previous frames only, so the model stays an exact "
        "likelihood. Shift range and share were chosen on valid; weights fit by EM on the training split "
        "scored worse on valid than uniform ones (the members fit their own training pieces unequally well).\n\n"
        f"## Data provenance\n\n{provenance}\n- source file sha256: {digest}\n\n"
        "Selected on valid only; the test split is not in this repository.\n\n"
        "Generate chorale-like pieces (quarter-note grid, 4/4 bars), optionally continuing a primer "
        "(each frame is drawn from one component, picked by its current weight):\n"
        f"`tunesmith generate {name} --out DIR --n 4 --bars 8 [--primer FILE.mid] [--temperature 0.9]`\n"
    ).encode())
    return path


def member_row(label: str, recipe: str, source: tuple, valid: list) -> dict:
    """The table row of a member taken from the shipped checkpoint (its run folder is gone)."""
    model, payload, timing = source
    return {"label": label, "model": model.name, "run": timing["run"], "valid_nll": jsb_nll(model, valid)["nll"],
            "epochs": payload["epoch"], "parameters": sum(p.numel() for p in model.parameters()),
            **{k: timing[k] for k in ("cpu_seconds", "wall_seconds") if k in timing}}


def entry_rows(runs: Path, shipped: dict[str, tuple], previous: list[dict], valid: list) -> list[dict]:
    """One row per ENTRIES recipe: its run scored, else its copy in the shipped checkpoint scored, else its
    row in the previous results (carried over unchanged), else none."""
    rows, before = [], {r["label"]: r for r in previous}
    for label, recipe in ENTRIES:
        if (runs / recipe / "checkpoints" / "best.ckpt").is_file():
            rows.append(score_run(label, runs / recipe, valid))
        elif recipe in shipped:
            rows.append(member_row(label, recipe, shipped[recipe], valid))
        elif label in before:
            rows.append(before[label])
            print(f"{label}: no run in {runs / recipe}; row carried over from the previous results", flush=True)
            continue
        else:
            print(f"{label}: no run in {runs / recipe} (use --train)", flush=True)
            continue
        print(f"{label}: valid NLL {rows[-1]['valid_nll']:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train the runs that are missing first")
    parser.add_argument("--ship", action="store_true", help="write checkpoints/jsb-best.ckpt and .md")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "jsb")
    args = parser.parse_args()
    torch.set_num_threads(1)
    valid = load_jsb(args.data)["valid"]
    for _, recipe in sorted(ENTRIES, key=lambda e: e[1] not in SHIPPED) if args.train else []:
        if not (args.runs / recipe / "checkpoints" / "best.ckpt").is_file():  # the shipped members first
            train_run(recipe, args.runs / recipe, args.data)
    out = ROOT / "benchmarks" / "results"
    previous = json.loads((out / "jsb.json").read_text()) if (out / "jsb.json").is_file() else []
    shipped = shipped_members(SHIPPED_PATH, previous)
    rows = entry_rows(args.runs, shipped, previous, valid)
    sources = member_sources(args.runs, shipped)
    if sources:
        member_rows = [next(r for r in rows if Path(r["run"]).name == recipe) for recipe in SHIPPED]
        n, variants = len(SHIPPED), 2 * SHIFTS + 1
        for label, count, shifts, share in [
                ("the first two LSTM-NADEs above, mixed per frame (jsb-best before)", 2, 0, 1.0),
                (f"the {n} LSTM-NADEs above in SHIPPED (not the pitch-class one), mixed per frame", n, 0, 1.0),
                (f"those {n} LSTM-NADEs x {variants} transpositions, fixed weights", n, SHIFTS, 1.0),
                (f"jsb-best: {n} LSTM-NADEs x {variants} transpositions, fixed share {SHARE}", n, SHIFTS, SHARE)]:
            row, payload = mixture_row(label, sources[:count], member_rows[:count], shifts, share, valid)
            row["run"] = "checkpoints/jsb-best.ckpt" if label.startswith("jsb-best") else "not shipped"
            rows.append(row)
            print(f"{row['label']}: valid NLL {row['valid_nll']:.3f}", flush=True)
        if args.ship:
            print(f"wrote {ship(row, payload, member_rows)}")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "jsb.md", table(rows).encode())
    write_atomic(out / "jsb.json", (json.dumps(rows, indent=2) + "\n").encode())
    print(f"wrote {out / 'jsb.md'}")


if __name__ == "__main__":
    main()
