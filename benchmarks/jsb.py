"""JSB Chorales table: every piano-roll model we trained, its exact valid NLL, next to the published figures.

Each entry is a recipe in configs/ trained into runs/jsb/NAME (with `--train`, missing runs are trained
here, one at a time on one thread, and their wall-clock and CPU seconds saved in RUN/timing.json), then
scored with the benchmark's own code (`scoring.jsb.jsb_nll`) on the valid split: nats per
quarter-note frame, 88 keys summed, all 76 pieces, conditioning on previous frames only. The published
figures are on the test split, which is not in this repository (tune on valid, report test once).
The shipped model (jsb-best) is the per-frame mixture of the two single LSTM-NADE runs (bass-first and
soprano-first key orders), assembled from their best checkpoints. Writes benchmarks/results/jsb.md and
jsb.json; with `--ship`, also checkpoints/jsb-best.ckpt (no optimizer state) and checkpoints/jsb-best.md.
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
]
SHIPPED = ("lstm-nade-jsb", "lstm-nade-down-jsb")  # members of checkpoints/jsb-best.ckpt
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


def table(rows: list[dict]) -> str:
    lines = ["# JSB Chorales: negative log-likelihood per quarter-note frame (nats, 88 keys)", "",
             "Ours: exact NLL on the **valid** split (76 pieces, 4,602 frames) of "
             "`shared/data/jsb/jsb-chorales-quarter.trainvalid.json`, from `python benchmarks/jsb.py`; "
             "training on one thread of this (shared, 2-core) CPU.", "",
             "| model | valid NLL | parameters | epochs | training CPU time | wall-clock |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        cpu = f"{r['cpu_seconds'] / 60:.0f} min" if "cpu_seconds" in r else "n/a"
        wall = f"{r['wall_seconds'] / 60:.0f} min" if "wall_seconds" in r else "n/a"
        lines.append(f"| {r['label']} (`{r['model']}`) | {r['valid_nll']:.3f} | {r['parameters']:,} | "
                     f"{r['epochs']} | {cpu} | {wall} |")
    lines += ["", "Published, **test** split (the test split is not in this repository):", "",
              "| model | test NLL |", "|---|---|"]
    lines += [f"| {name} | {nll} |" for name, nll in PUBLISHED]
    return "\n".join(lines) + "\n"


def assemble(runs: list[Path]) -> tuple[NADEMixture, dict]:
    """The shipped mixture from the members' best checkpoints, and its checkpoint payload."""
    members, payloads = [], []
    for run in runs:
        model, payload = load_scorable(run / "checkpoints" / "best.ckpt")
        members.append(model)
        payloads.append(payload)
    mixture = NADEMixture.from_members(members).eval()
    # fp16 storage keeps 7.2M parameters under the 20 MB cap; loading casts back to fp32, and what we
    # score below is the rounded model, i.e. exactly what ships
    weights = {k: v.half() if v.is_floating_point() else v for k, v in mixture.state_dict().items()}
    mixture.load_state_dict(weights)
    first = payloads[0]
    provenance = {**first["provenance"], "members": [
        {"run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
         "recipe": f"configs/{p['run_config']['name']}.yaml", "epoch": p["epoch"]}
        for run, p in zip(runs, payloads, strict=True)]}
    payload = {"model": {"name": mixture.name, "config": dataclasses.asdict(mixture.config)},
               "representation": first["representation"], "weights": weights,
               "optimizer": {}, "rng": {}, "step": sum(p["step"] for p in payloads),
               "epoch": max(p["epoch"] for p in payloads), "provenance": provenance, "metrics": {},
               "run_config": first["run_config"]}
    return mixture, payload


def shipped_row(runs: list[Path], member_rows: list[dict], valid: list) -> tuple[dict, dict]:
    mixture, payload = assemble(runs)
    row = {"label": "jsb-best: the two LSTM-NADEs above, mixed per frame", "model": mixture.name,
           "run": "checkpoints/jsb-best.ckpt", "valid_nll": jsb_nll(mixture, valid)["nll"],
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
    optim = payload["run_config"]["optim"]
    members = "\n".join(
        f"  - `{m['recipe']}` (run `{m['run']}`): best epoch {m['epoch']}, valid NLL {r['valid_nll']:.3f}, "
        f"{r.get('cpu_seconds', 0) / 60:.0f} min CPU" for m, r in zip(payload["provenance"]["members"],
                                                                     member_rows, strict=True))
    skip = ("members", "valid_fraction", "test_fraction", "transpose")  # unused with a file's own splits
    provenance = "\n".join(f"- {k}: {v}" for k, v in payload["provenance"].items() if k not in skip)
    digest = hashlib.sha256(Path(payload["provenance"]["source"]).read_bytes()).hexdigest()
    path.with_suffix(".md").write_text(
        f"# {name}: two LSTM-NADEs mixed per frame, JSB Chorales (quarter-note grid)\n\n"
        f"- model: `{payload['model']['name']}`, {row['parameters']:,} parameters, "
        f"{path.stat().st_size / 2**20:.1f} MB (weights stored as fp16, scored as shipped); "
        f"config `{payload['model']['config']}`\n"
        f"- valid NLL: **{row['valid_nll']:.3f} nats per frame** (exact; 76 pieces, 4,602 frames; "
        f"`tunesmith benchmark jsb {name} --data FILE --split valid`)\n"
        f"- training: {row['cpu_seconds'] / 60:.0f} min CPU on one thread in all "
        f"({row['wall_seconds'] / 60:.0f} min wall-clock on a shared 2-core box); AdamW lr {optim['lr']}, "
        f"x{optim['lr_decay']} per epoch, batch {optim['batch_size']}, gradient norm clip {optim['grad_clip']}\n"
        f"- members, trained apart and assembled by `python benchmarks/jsb.py --ship`:\n{members}\n\n"
        "- each member: 2-layer LSTM (512) over frames + NADE (300 hidden units) over the 88 keys of a frame, "
        "trained with random transpositions of +-6 semitones given to the network as an input (shift 0 "
        "when scoring and generating), dropout 0.3; key orders bass-first and soprano-first\n\n"
        f"## Data provenance\n\n{provenance}\n- source file sha256: {digest}\n\n"
        "Selected on valid only; the test split is not in this repository.\n\n"
        "Generate chorale-like pieces (quarter-note grid, 4/4 bars), optionally continuing a primer:\n"
        f"`tunesmith generate {name} --out DIR --n 4 --bars 8 [--primer FILE.mid] [--temperature 0.9]`\n")
    return path


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
    rows = []
    for label, recipe in ENTRIES:
        run_dir = args.runs / recipe
        if (run_dir / "checkpoints" / "best.ckpt").is_file():
            rows.append(score_run(label, run_dir, valid))
            print(f"{label}: valid NLL {rows[-1]['valid_nll']:.3f}", flush=True)
        else:
            print(f"{label}: no run in {run_dir} (use --train)", flush=True)
    member_rows = [r for r in rows if Path(r["run"]).name in SHIPPED]
    if len(member_rows) == len(SHIPPED):
        row, payload = shipped_row([args.runs / m for m in SHIPPED], member_rows, valid)
        rows.append(row)
        print(f"{row['label']}: valid NLL {row['valid_nll']:.3f}", flush=True)
        if args.ship:
            print(f"wrote {ship(row, payload, member_rows)}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "jsb.md").write_text(table(rows))
    (out / "jsb.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out / 'jsb.md'}")


if __name__ == "__main__":
    main()
