"""CLI fuzz (issue 10 item 8): every subcommand with bad command lines, through the real entry point.

Each case runs `tunesmith.cli.main()` in-process (a few also as a subprocess) and must end with exit
code 2, exactly one line on stderr, no traceback anywhere, and nothing half-written in its folder:
no temp (`.tmp`) file and no 0-byte file. Exit code 1 is kept for bugs (an unexpected exception); a
bad path, a full disk or a missing permission on an output is the user's to fix, so it is 2 as well.

Placeholders in a case's command line: `{out}` a folder that does not exist yet, `{file}` a regular
file and `{dir}` an empty folder (all inside the case's own folder); any other name is a bad input
built once by the `bad` fixture below.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import FIXTURES, REALMIDI
from tunesmith import cli
from tunesmith.models.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MELODIES = REALMIDI / "sara_munafo_gan_nndl"
CHORALE = FIXTURES / "bach40" / "chorale_00_1.mid"
JSB = FIXTURES / "jsb" / "jsb-tiny-quarter.json"
DEBUG = ROOT / "configs" / "debug"
FILE_TEXT = "keep me\n"
GEN = ("--n", "1", "--bars", "1")


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]


def case(case_id: str, *argv: str) -> Case:
    return Case(case_id, argv)


# ---------------------------------------------------------------- the bad inputs, built once


def _midi_without_notes() -> bytes:
    track = b"\x00\xff\x51\x03\x07\xa1\x20" + b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track


def _write_inputs(root: Path) -> None:
    files = {
        "text.mid": b"this is not a MIDI file\n",
        "empty.mid": b"",
        "truncated.mid": CHORALE.read_bytes()[:60],
        "header_only.mid": CHORALE.read_bytes()[:14],
        "notes0.mid": _midi_without_notes(),
        "random.mid": os.urandom(2048),
        "binary.yaml": b"\x00\x01\x02\xff" * 64,
        "nonutf8.yaml": b"name: \xff\xfe\xfa\n",
        "empty.yaml": b"",
        "comments.yaml": b"# nothing but a comment\n",
        "list.yaml": b"- a\n- b\n",
        "scalar.yaml": b"42\n",
        "syntax.yaml": b"name: [1, 2\nmodel: {\n",
        "unknown_key.yaml": (DEBUG / "lstm.yaml").read_bytes() + b"bogus_key: 1\n",
        "no_model.yaml": b"name: x\ndata: {source: bach}\nmodel: {name: no-such-family}\n",
        "jsb_list.json": b"[1, 2, 3]\n",
        "jsb_scalar.json": b"7\n",
        "jsb_empty.json": b"{}\n",
        "jsb_unknown_split.json": b'{"training": [[[60]]]}\n',
        "jsb_bad_pitch.json": b'{"valid": [[[5, 200]]]}\n',
        "jsb_bad_step.json": b'{"valid": [["C", "E"]]}\n',
        "jsb_broken.json": b'{"valid": [[[60, 64]\n',
        "jsb_no_valid.json": b'{"train": [[[60, 64], [62]]]}\n',
        "jsb_pickle.pkl": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00]\x94K\x01a.",
        "text.ckpt": b"not a checkpoint\n",
        "empty.ckpt": b"",
        "ref1/only.mid": CHORALE.read_bytes(),
        "gen/a.mid": (FIXTURES / "bach40" / "chorale_01_2.mid").read_bytes(),
        "gen/b.mid": (FIXTURES / "bach40" / "chorale_02_3.mid").read_bytes(),
        "textdir/readme.txt": b"no MIDI here\n",
        "junkmidi/a.mid": b"junk",
        "junkmidi/b.mid": b"",
        "noconfig_run/checkpoints/notes.txt": b"x\n",
        "emptyconfig_run/config.yaml": b"",
        "listconfig_run/config.yaml": b"- 1\n",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "emptydir").mkdir()
    (root / "emptyconfig_run" / "checkpoints").mkdir()
    (root / "truncated.ckpt").write_bytes((ROOT / "checkpoints" / "midinet.ckpt").read_bytes()[:5000])
    torch.save({"model": {"name": "lstm"}, "weights": {}}, root / "no_marker.ckpt")
    torch.save([1, 2, 3], root / "list.ckpt")


def _first_float(weights: dict) -> str:
    return next(k for k, v in weights.items() if v.is_floating_point() and v.dim() >= 2)


def _size_key(config: dict) -> str:
    return "hidden_size" if "hidden_size" in config else "gen_hidden"


def _corruptions(payload: dict) -> dict[str, dict]:
    """Named damaged copies of a checkpoint payload (each a fresh dict; tensors shared where unchanged)."""
    weights, key = payload["weights"], _first_float(payload["weights"])
    config = payload["model"]["config"]
    rep = payload["representation"]

    def with_(**parts):
        return {**payload, **parts}

    return {
        "missing_weight": with_(weights={k: v for k, v in weights.items() if k != key}),
        "extra_weight": with_(weights={**weights, "bogus.weight": torch.zeros(3)}),
        "wrong_shape": with_(weights={**weights, key: torch.zeros(3, 3)}),
        "nan_weight": with_(weights={**weights, key: torch.full_like(weights[key], float("nan"))}),
        "inf_weight": with_(weights={**weights, key: torch.full_like(weights[key], float("inf"))}),
        "unknown_config": with_(model={**payload["model"], "config": {**config, "bogus_key": 3}}),
        "bad_config_value": with_(model={**payload["model"], "config": {**config, "dropout": -2.0}}),
        "config_string": with_(model={**payload["model"], "config": {**config, "dropout": "lots"}}),
        "huge_size": with_(model={**payload["model"], "config": {**config, _size_key(config): 10**23}}),
        "unknown_family": with_(model={**payload["model"], "name": "no-such-family"}),
        "no_model": {k: v for k, v in payload.items() if k != "model"},
        "no_weights": {k: v for k, v in payload.items() if k != "weights"},
        "weights_list": with_(weights=[1, 2]),
        "rep_unknown": with_(representation={**rep, "name": "no-such-representation"}),
        "rep_damaged": with_(representation="garbage"),
        "rep_bad_config": with_(representation={**rep, "config": {**rep["config"], "bogus_key": 1}}),
    }


def _write_checkpoints(root: Path) -> None:
    for name in ("lstm-bach", "midinet"):
        payload = load_checkpoint(name)
        payload.pop("format")
        for kind, damaged in _corruptions(payload).items():
            save_checkpoint(damaged, root / f"{name}-{kind}.ckpt")
    bach = load_checkpoint("lstm-bach")
    bach.pop("format")
    vocab = bach["representation"]["state"]["vocab"]
    short = dict(list(vocab.items())[:-5]) if isinstance(vocab, dict) else vocab[:-5]
    rep = {**bach["representation"], "state": {**bach["representation"]["state"], "vocab": short}}
    save_checkpoint({**bach, "representation": rep}, root / "lstm-bach-rep_mismatch.ckpt")
    midinet = load_checkpoint("midinet")
    midinet.pop("format")
    rep = {**midinet["representation"], "config": {**midinet["representation"]["config"], "steps_per_bar": 8}}
    save_checkpoint({**midinet, "representation": rep}, root / "midinet-rep_mismatch.ckpt")
    run = root / "run_no_last" / "checkpoints"
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(b"")


def _write_runs(root: Path) -> None:
    """Run folders whose last checkpoint cannot be resumed (names in RESUME_DAMAGE), beside a good one."""
    from tunesmith.training.config import load_config
    from tunesmith.training.loop import train

    overrides = [f"data.source={MELODIES}", "trainer.max_steps=2", "trainer.max_epochs=1"]
    good = train(load_config(DEBUG / "lstm.yaml", overrides), root / "runs" / "good")
    payload = load_checkpoint(good / "checkpoints" / "last.ckpt")
    payload.pop("format")
    key = _first_float(payload["weights"])
    checkpoints = {
        "family": load_checkpoint("midinet"), "export": load_checkpoint("lstm-bach"),
        "nan": {**payload, "weights": {**payload["weights"], key: payload["weights"][key] * float("nan")}},
        "optimizer": {**payload, "optimizer": {"main": {"state": {}, "param_groups": [{"params": [0]}]}}},
        "position": {**payload, "position": {"step": 1, "bogus": 2}}, "rng": {**payload, "rng": {"torch": 1}},
    }
    for name in RESUME_DAMAGE:
        run = root / "runs" / name
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.yaml").write_bytes((good / "config.yaml").read_bytes())
        if name in checkpoints:
            save_checkpoint({k: v for k, v in checkpoints[name].items() if k != "format"},
                            run / "checkpoints" / "last.ckpt")
    (root / "runs" / "truncated" / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    (root / "runs" / "folder" / "checkpoints" / "last.ckpt").mkdir()


@pytest.fixture(scope="session")
def bad(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad-inputs")
    _write_inputs(root)
    _write_checkpoints(root)
    _write_runs(root)
    names = {p.relative_to(root).as_posix(): str(p) for p in root.rglob("*")}
    return {name.replace("/", "__").replace(".", "_").replace("-", "_"): path for name, path in names.items()}


# ---------------------------------------------------------------- the table

MIDI_INPUTS = ("{missing}", "{dir}", "{text_mid}", "{empty_mid}", "{truncated_mid}", "{header_only_mid}",
               "{random_mid}", "{file}")
RECIPES = ("binary_yaml", "nonutf8_yaml", "empty_yaml", "comments_yaml", "list_yaml", "scalar_yaml",
           "syntax_yaml", "unknown_key_yaml", "no_model_yaml")
BAD_SETS = (
    "optim.lr=-1", "optim.lr=0", "optim.lr=nan", "optim.lr=inf", "optim.lr=abc", "optim.lr=[1]",
    "optim.batch_size=0", "optim.batch_size=-1", "optim.batch_size=1.5", "optim.batch_size=99999999999999999999999",
    "optim.grad_clip=-1", "optim.grad_clip=nan", "optim.betas=[2,3]", "optim.betas=abc",
    "trainer.max_epochs=0", "trainer.max_epochs=-1", "trainer.max_steps=-1", "trainer.max_steps=0",
    "trainer.max_minutes=-1", "trainer.max_minutes=inf", "trainer.valid_batches=0", "trainer.checkpoint_every=0",
    "trainer.log_every=0", "trainer.num_threads=-1", "trainer.device=cuda:7", "trainer.device=tpu",
    "trainer.seed=abc", "trainer.bogus=1", "data.window=0", "data.window=-4", "data.limit=-1",
    "data.valid_fraction=1.5", "data.valid_fraction=nan", "data.source=/no/such/folder",
    "data.representation=no-such-rep", "data.transpose=-1", "model.name=no-such-family",
    "model.config.hidden_size=0", "model.config.hidden_size=-3", "model.config.hidden_size=big",
    "model.config.dropout=2", "model.config.bogus=1", "model.config.hidden_size=99999999999999999999999",
    "model.config.num_layers=99999999999999999999999", "data.window=99999999999999999999999",
    "trainer.seed=99999999999999999999999", "trainer.num_threads=99999999999999999999999",
    "data.transpose=99999999999999999999999", "optim.lr=1e999", "model.config.vocab_size=5",
    "data.representation_config.steps_per_quarter=1000000", "data.representation_config.bogus=1",
    "data.representation=pianoroll", "model=3", "data=null",
    "name=../../etc", "optim.betas=[0.9]", "data.limit=1", "data.valid_fraction=0", "data.test_fraction=0.99",
    "model.config.cell=rnn", "model.config.hidden_size=2147483647", "no_equals_sign", "=1", "nosuch.key=1",
)
DEBUG_LSTM = str(DEBUG / "lstm.yaml")
RESUME_DAMAGE = ("family", "export", "nan", "optimizer", "position", "rng", "truncated", "folder")
SHIPPED = ("lstm-bach", "midinet", "jsb-best")
BAD_GENERATE_OPTIONS = (
    ("temperature_inf", "--temperature", "inf"), ("temperature_minus_inf", "--temperature", "-inf"),
    ("temperature_0", "--temperature", "0"), ("temperature_neg", "--temperature", "-1"),
    ("temperature_nan", "--temperature", "nan"), ("temperature_word", "--temperature", "hot"),
    ("top_p_2", "--top-p", "2"), ("top_p_neg", "--top-p", "-0.5"), ("top_p_nan", "--top-p", "nan"),
    ("top_k_0", "--top-k", "0"), ("top_k_neg", "--top-k", "-3"), ("seed_huge", "--seed", "1180591620717411303424"),
    ("seed_neg", "--seed", "-1"), ("seed_float", "--seed", "1.5"), ("n_0", "--n", "0"), ("n_cap", "--n", "100000"),
    ("bars_0", "--bars", "0"), ("bars_cap", "--bars", "100000"), ("steps_0", "--steps", "0"),
    ("steps_cap", "--steps", "1000000"), ("primer_bars_alone", "--primer-bars", "4"),
    ("primer_bars_0", "--primer", str(CHORALE), "--primer-bars", "0"),
)
PRIMERS = ("{missing}", "{dir}", "{text_mid}", "{empty_mid}", "{truncated_mid}", "{notes0_mid}")
CKPT_DAMAGE = ("missing_weight", "extra_weight", "wrong_shape", "nan_weight", "inf_weight", "unknown_config",
               "bad_config_value", "config_string", "huge_size", "unknown_family", "no_model", "no_weights",
               "weights_list", "rep_unknown", "rep_damaged", "rep_bad_config", "rep_mismatch")
CKPT_FILES = ("{text_ckpt}", "{empty_ckpt}", "{truncated_ckpt}", "{no_marker_ckpt}", "{list_ckpt}", "{missing}",
              "{emptydir}", "{run_no_last}", "{text_mid}", "no-such-shipped-name")
JSB_DATA = ("{missing}", "{dir}", "{text_mid}", "{empty_mid}", "{jsb_list_json}", "{jsb_scalar_json}",
            "{jsb_empty_json}", "{jsb_unknown_split_json}", "{jsb_bad_pitch_json}", "{jsb_bad_step_json}",
            "{jsb_broken_json}", "{jsb_no_valid_json}", "{jsb_pickle_pkl}", str(CHORALE))
GOOD_MIDI = str(CHORALE)


def _top_level() -> list[Case]:
    return [case("unknown-command", "nosuch"), case("unknown-option", "--bogus"),
            case("corpus-unknown", "corpus", "nosuch"), case("benchmark-unknown", "benchmark", "nosuch"),
            case("models-extra-arg", "models", "extra"), case("models-bad-option", "models", "--bogus"),
            case("corpus-list-extra", "corpus", "list", "extra")]


def _corpus() -> list[Case]:
    return [case("export-unknown", "corpus", "export", "nosuch", "--out", "{out}"),
            case("export-no-out", "corpus", "export", "bach"),
            case("export-no-name", "corpus", "export", "--out", "{out}"),
            case("export-out-file", "corpus", "export", "bach", "--out", "{file}"),
            case("export-out-under-file", "corpus", "export", "bach", "--out", "{file}/sub")]


def _ingest() -> list[Case]:
    return [case("ingest-missing", "ingest", "{missing}", "--out", "{out}"),
            case("ingest-src-file", "ingest", GOOD_MIDI, "--out", "{out}"),
            case("ingest-no-out", "ingest", str(MELODIES)),
            case("ingest-out-file", "ingest", str(MELODIES), "--out", "{file}"),
            case("ingest-out-under-file", "ingest", str(MELODIES), "--out", "{file}/sub"),
            case("ingest-workers-neg", "ingest", str(MELODIES), "--out", "{out}", "--workers", "-1"),
            case("ingest-workers-word", "ingest", str(MELODIES), "--out", "{out}", "--workers", "many"),
            case("ingest-out-is-src", "ingest", "{gen}", "--out", "{gen}")]


def _render_and_plot() -> list[Case]:
    cases = []
    for i, src in enumerate(MIDI_INPUTS + ("{notes0_mid}",)):
        cases.append(case(f"render-input-{i}", "render", src, "--out", "{out}/a.wav"))
        cases.append(case(f"plot-input-{i}", "plot", src, "--out", "{out}/a.png"))
    for command, suffix in (("render", "wav"), ("plot", "png")):
        cases += [case(f"{command}-out-dir", command, GOOD_MIDI, "--out", "{dir}"),
                  case(f"{command}-out-under-file", command, GOOD_MIDI, "--out", f"{{file}}/a.{suffix}"),
                  case(f"{command}-out-suffix", command, GOOD_MIDI, "--out", "{out}/a.txt"),
                  case(f"{command}-no-out", command, GOOD_MIDI)]
    cases.append(case("render-engine", "render", GOOD_MIDI, "--out", "{out}/a.wav", "--engine", "nosuch"))
    return cases


def _train() -> list[Case]:
    cases = [case("train-nothing", "train"), case("train-missing", "train", "{missing}"),
             case("train-dir", "train", "{dir}"), case("train-midi-as-recipe", "train", GOOD_MIDI)]
    cases += [case(f"train-recipe-{name}", "train", f"{{{name}}}", "--out", "{out}") for name in RECIPES]
    cases += [case(f"train-set-{value}", "train", DEBUG_LSTM, "--set", value, "--out", "{out}") for value in BAD_SETS]
    cases += [case("train-set-source-text", "train", DEBUG_LSTM, "--set", "data.source={textdir}", "--out", "{out}"),
              case("train-set-source-junk", "train", DEBUG_LSTM, "--set", "data.source={junkmidi}", "--out", "{out}"),
              case("train-out-file", "train", DEBUG_LSTM, "--out", "{file}"),
              case("train-out-under-file", "train", DEBUG_LSTM, "--out", "{file}/run"),
              case("train-resume-missing", "train", "--resume", "{missing}"),
              case("train-resume-file", "train", "--resume", "{file}"),
              case("train-resume-no-config", "train", "--resume", "{noconfig_run}"),
              case("train-resume-empty-config", "train", "--resume", "{emptyconfig_run}"),
              case("train-resume-list-config", "train", "--resume", "{listconfig_run}"),
              case("train-allow-change-alone", "train", DEBUG_LSTM, "--allow-data-change", "--out", "{out}")]
    cases += [case(f"train-resume-{name}", "train", "--resume", f"{{runs__{name}}}", "--allow-data-change")
              for name in RESUME_DAMAGE]
    return cases


def _generate() -> list[Case]:
    cases = []
    for model in SHIPPED:
        cases += [case(f"gen-{model}-{name}", "generate", model, "--out", "{out}", *GEN, *args)
                  for name, *args in BAD_GENERATE_OPTIONS]
        cases += [case(f"gen-{model}-primer-{i}", "generate", model, "--out", "{out}", *GEN, "--primer", p)
                  for i, p in enumerate(PRIMERS)]
        cases += [case(f"gen-{model}-out-file", "generate", model, "--out", "{file}", *GEN),
                  case(f"gen-{model}-out-under-file", "generate", model, "--out", "{file}/sub", *GEN)]
    cases += [case("gen-midinet-steps", "generate", "midinet", "--out", "{out}", "--n", "1", "--steps", "4"),
              case("gen-jsb-best-top-k", "generate", "jsb-best", "--out", "{out}", *GEN, "--top-k", "3"),
              case("gen-jsb-best-top-p", "generate", "jsb-best", "--out", "{out}", *GEN, "--top-p", "0.9"),
              case("gen-jsb-best-chords", "generate", "jsb-best", "--out", "{out}", *GEN, "--chords", "C G"),
              case("gen-lstm-bach-chords", "generate", "lstm-bach", "--out", "{out}", *GEN, "--chords", "C G"),
              case("gen-midinet-bad-chord", "generate", "midinet", "--out", "{out}", *GEN, "--chords", "H# Xm7"),
              case("gen-midinet-empty-chords", "generate", "midinet", "--out", "{out}", *GEN, "--chords", " "),
              case("gen-no-out", "generate", "lstm-bach"), case("gen-nothing", "generate")]
    cases += [case(f"gen-ckpt-{i}", "generate", path, "--out", "{out}", *GEN) for i, path in enumerate(CKPT_FILES)]
    for model in ("lstm-bach", "midinet"):
        cases += [case(f"gen-{model}-{damage}", "generate", f"{{{model.replace('-', '_')}_{damage}_ckpt}}",
                       "--out", "{out}", *GEN) for damage in CKPT_DAMAGE]
    return cases


def _evaluate_and_compare() -> list[Case]:
    ev = ("evaluate", "{gen}")
    cases = [case("eval-missing-gen", "evaluate", "{missing}", "--reference", str(MELODIES), "--out", "{out}/r.json"),
             case("eval-gen-file", "evaluate", GOOD_MIDI, "--reference", str(MELODIES), "--out", "{out}/r.json"),
             case("eval-gen-empty", "evaluate", "{emptydir}", "--reference", str(MELODIES), "--out", "{out}/r.json"),
             case("eval-gen-junk", "evaluate", "{junkmidi}", "--reference", str(MELODIES), "--out", "{out}/r.json"),
             case("eval-no-reference", *ev, "--out", "{out}/r.json"),
             case("eval-ref-missing", *ev, "--reference", "{missing}", "--out", "{out}/r.json"),
             case("eval-ref-name", *ev, "--reference", "no-such-corpus", "--out", "{out}/r.json"),
             case("eval-ref-empty", *ev, "--reference", "{emptydir}", "--out", "{out}/r.json"),
             case("eval-ref-text", *ev, "--reference", "{textdir}", "--out", "{out}/r.json"),
             case("eval-ref-one", *ev, "--reference", "{ref1}", "--out", "{out}/r.json"),
             case("eval-ref-file", *ev, "--reference", "{text_mid}", "--out", "{out}/r.json"),
             case("eval-train-missing", *ev, "--reference", str(MELODIES), "--train", "{missing}",
                  "--out", "{out}/r.json"),
             case("eval-out-dir", *ev, "--reference", str(MELODIES), "--out", "{dir}"),
             case("eval-out-under-file", *ev, "--reference", str(MELODIES), "--out", "{file}/r.json"),
             case("eval-out-suffix", *ev, "--reference", str(MELODIES), "--out", "{out}/r.txt"),
             case("eval-limit-1", *ev, "--reference", str(MELODIES), "--out", "{out}/r.json", "--limit", "1"),
             case("eval-limit-word", *ev, "--reference", str(MELODIES), "--out", "{out}/r.json", "--limit", "x"),
             case("eval-checkpoint-missing", *ev, "--reference", str(MELODIES), "--out", "{out}/r.json",
                  "--checkpoint", "{missing}"),
             case("eval-checkpoint-text", *ev, "--reference", str(MELODIES), "--out", "{out}/r.json",
                  "--checkpoint", "{text_ckpt}"),
             case("eval-checkpoint-nan", *ev, "--reference", str(MELODIES), "--out", "{out}/r.json",
                  "--checkpoint", "{midinet_nan_weight_ckpt}"),
             case("eval-checkpoint-no-likelihood", *ev, "--reference", str(MELODIES), "--out", "{out}/r.json",
                  "--checkpoint", "midinet"),
             case("eval-embedder-missing", *ev, "--reference", str(MELODIES), "--out", "{out}/r.json",
                  "--embedder", "{missing}"),
             case("eval-embedder-not-ae", *ev, "--reference", str(MELODIES), "--out", "{out}/r.json",
                  "--embedder", "midinet")]
    cases += [case("compare-nothing", "compare", "--reference", str(MELODIES)),
              case("compare-missing-run", "compare", "{missing}", "--reference", str(MELODIES),
                   "--out", "{out}/c.json"),
              case("compare-run-file", "compare", GOOD_MIDI, "--reference", str(MELODIES), "--out", "{out}/c.json"),
              case("compare-run-empty", "compare", "{gen}", "{emptydir}", "--reference", str(MELODIES),
                   "--out", "{out}/c.json"),
              case("compare-no-reference", "compare", "{gen}", "--out", "{out}/c.json"),
              case("compare-ref-missing", "compare", "{gen}", "--reference", "{missing}", "--out", "{out}/c.json"),
              case("compare-ref-one", "compare", "{gen}", "--reference", "{ref1}", "--out", "{out}/c.json"),
              case("compare-out-dir", "compare", "{gen}", "--reference", str(MELODIES), "--out", "{dir}"),
              case("compare-out-under-file", "compare", "{gen}", "--reference", str(MELODIES),
                   "--out", "{file}/c.html"),
              case("compare-out-suffix", "compare", "{gen}", "--reference", str(MELODIES), "--out", "{out}/c.md")]
    return cases


def _benchmark() -> list[Case]:
    bench = ("benchmark", "jsb")
    cases = [case(f"jsb-data-{i}", *bench, "jsb-best", "--data", data, "--split", "valid", "--out", "{out}/r.json")
             for i, data in enumerate(JSB_DATA)]
    cases += [case(f"jsb-ckpt-{i}", *bench, path, "--data", str(JSB), "--out", "{out}/r.json")
              for i, path in enumerate(CKPT_FILES[:6])]
    cases += [case("jsb-token-model", *bench, "lstm-bach", "--data", str(JSB), "--out", "{out}/r.json"),
              case("jsb-gan-model", *bench, "midinet", "--data", str(JSB), "--out", "{out}/r.json"),
              case("jsb-split-train", *bench, "jsb-best", "--data", str(JSB), "--split", "train",
                   "--out", "{out}/r.json"),
              case("jsb-split-bogus", *bench, "jsb-best", "--data", str(JSB), "--split", "nope",
                   "--out", "{out}/r.json"),
              case("jsb-no-data", *bench, "jsb-best"),
              case("jsb-out-dir", *bench, "jsb-best", "--data", str(JSB), "--out", "{dir}"),
              case("jsb-out-under-file", *bench, "jsb-best", "--data", str(JSB), "--out", "{file}/r.json")]
    return cases


def _demo() -> list[Case]:
    return [case("demo-out-file", "demo", "--out", "{file}"), case("demo-out-under-file", "demo", "--out", "{file}/d"),
            case("demo-extra", "demo", "extra")]


CASES = [*_top_level(), *_corpus(), *_ingest(), *_render_and_plot(), *_train(), *_generate(),
         *_evaluate_and_compare(), *_benchmark(), *_demo()]
SUBPROCESS_CASES = [c for c in CASES if c.id in {"train-recipe-binary_yaml", "gen-midinet-steps", "render-input-2"}]


# ---------------------------------------------------------------- running and checking


def _case_argv(c: Case, bad: dict[str, str], folder: Path) -> list[str]:
    (folder / "dir").mkdir()
    (folder / "file").write_text(FILE_TEXT)
    names = {**bad, "out": str(folder / "out"), "file": str(folder / "file"), "dir": str(folder / "dir"),
             "missing": str(folder / "no-such-file")}
    return [arg.format(**names) for arg in c.argv]


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run `tunesmith ARGV` in this process; returns (exit code, stdout, stderr). The root logger, which
    the CLI points at this test's captured stderr, is put back afterwards."""
    saved, handlers, level = sys.argv, logging.root.handlers[:], logging.root.level
    sys.argv = ["tunesmith", *argv]
    try:
        cli.main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv = saved
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_outcome(code: int, out: str, err: str, folder: Path) -> None:
    """Exit 2, one line on stderr, no traceback, nothing half-written under `folder`, {file} untouched."""
    assert "Traceback" not in out + err, err
    assert code == 2, f"exit {code}; stdout {out[-500:]!r}; stderr {err[-500:]!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"stderr has {len(lines)} lines: {err[-800:]!r}"
    assert lines[0].startswith("error: "), lines[0]
    leftovers = [p for p in folder.rglob("*") if p.name.endswith(".tmp") or (p.is_file() and p.stat().st_size == 0)]
    assert not leftovers, f"half-written files left: {leftovers}"
    assert (folder / "file").read_text() == FILE_TEXT


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_bad_command_line_is_one_sentence_and_exit_2(c: Case, bad, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # generate's thread count must not leak
    argv = _case_argv(c, bad, tmp_path)
    code, out, err = run_main(argv, capsys)
    check_outcome(code, out, err, tmp_path)


@pytest.mark.parametrize("c", SUBPROCESS_CASES, ids=lambda c: c.id)
def test_bad_command_line_as_a_subprocess(c: Case, bad, tmp_path):
    argv = _case_argv(c, bad, tmp_path)
    result = subprocess.run([sys.executable, "-m", "tunesmith.cli", *argv], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    check_outcome(result.returncode, result.stdout, result.stderr, tmp_path)


def test_the_table_is_large_and_covers_every_subcommand():
    commands = {c.argv[0] for c in CASES} | {" ".join(c.argv[:2]) for c in CASES}
    expected = {"corpus export", "ingest", "render", "plot", "train", "generate", "models", "evaluate", "compare",
                "benchmark jsb", "demo"}
    assert expected <= commands
    assert len(CASES) + len(SUBPROCESS_CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)


def test_a_good_command_line_passes_the_same_checks_except_the_exit_code(tmp_path, capsys):
    """The harness can tell success from failure: a good generate exits 0 and writes complete files."""
    code, out, err = run_main(["generate", "midinet", "--out", str(tmp_path / "g"), *GEN], capsys)
    assert code == 0, err
    written = json.loads((tmp_path / "g" / "generation.json").read_text())["files"]
    assert written == ["sample_01.mid"] and (tmp_path / "g" / "sample_01.mid").stat().st_size > 14


def test_help_documents_the_exit_codes(capsys):
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and "Exit codes: 0 done; 2 bad input" in " ".join(out.split())
