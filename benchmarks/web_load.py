"""Load on the web studio (issue 16, item 4): `tunesmith serve` on 127.0.0.1 against a bounded asyncio client.

Starts the server as a subprocess on a free local port, then sends, all at once:
- `--jobs` concurrent generate requests (default 100; the queue holds 4 waiting jobs, so most are
  expected to be refused with 429 and a sentence: that is the bounded queue working, not an error);
- malformed uploads: a text file, a 50 MB body, a truncated MIDI, a MIDI under a path-traversal name,
  an empty file, a request without a file, and bad generate bodies (unknown checkpoint, bars 0,
  an option the family does not honour, a primer id that was never issued).
Every accepted job is polled until it finishes. Reported: status counts, any 5xx (goal: none), whether
every refusal carried a one-sentence `detail`, latency percentiles of the requests and of the accepted
jobs (submit -> done), the server's peak resident memory (VmHWM) against its memory at start, and
whether the server is still alive and answering afterwards.

Usage: python benchmarks/web_load.py [--jobs 100] [--checkpoint lstm-bach] [--bars 2] [--out benchmarks/results]
Writes benchmarks/results/web_load.md. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRIMER = REPO / "tests" / "fixtures" / "bach40" / "chorale_04_5.mid"
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    command = [sys.executable, "-c", "from tunesmith.cli import main; main()", "serve", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/checkpoints", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the server did not answer within 120 s")


def memory_kib(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of a process, KiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def bad_uploads() -> list[tuple[str, dict]]:
    """(label, httpx request keywords) for every malformed upload; each must get a 4xx with a sentence."""
    midi = PRIMER.read_bytes()
    return [
        ("text file as MIDI", {"files": {"file": ("notes.mid", b"this is not a MIDI file\n" * 40, "audio/midi")}}),
        ("50 MB body", {"files": {"file": ("huge.mid", b"MThd" + b"\0" * (50 * MiB), "audio/midi")}}),
        ("truncated MIDI", {"files": {"file": ("cut.mid", midi[: len(midi) // 3], "audio/midi")}}),
        ("path-traversal name", {"files": {"file": ("../../etc/passwd", midi, "audio/midi")}}),
        ("empty file", {"files": {"file": ("empty.mid", b"", "audio/midi")}}),
        ("no file field", {"data": {"other": "x"}}),
    ]


def bad_jobs(checkpoint: str) -> list[tuple[str, dict]]:
    return [
        ("unknown checkpoint", {"checkpoint": "../../secret", "bars": 2}),
        ("bars 0", {"checkpoint": checkpoint, "bars": 0}),
        ("option the family does not honour", {"checkpoint": checkpoint, "bars": 2, "chords": "C G Am F"}),
        ("primer id never issued", {"checkpoint": checkpoint, "bars": 2, "primer_id": "0" * 32}),
    ]


async def timed(client: httpx.AsyncClient, method: str, url: str, **kwargs) -> tuple[int, float, dict]:
    started = time.perf_counter()
    response = await client.request(method, url, **kwargs)
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, time.perf_counter() - started, body if isinstance(body, dict) else {}


async def run_job(client: httpx.AsyncClient, body: dict, limit_s: float) -> dict:
    status, seconds, answer = await timed(client, "POST", "/api/generate", json=body)
    result = {"status": status, "request_s": seconds, "detail": answer.get("detail")}
    if status != 202:
        return result
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        code, _, job = await timed(client, "GET", answer["status_url"])
        if code != 200 or job.get("stage") in ("done", "failed"):
            result |= {"job_status": code, "stage": job.get("stage"), "job_s": time.perf_counter() - started + seconds}
            return result
        await asyncio.sleep(0.2)
    return result | {"stage": "still running"}


async def load(port: int, args: argparse.Namespace) -> dict:
    limits = httpx.Limits(max_connections=args.jobs + 20)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300, limits=limits) as client:
        good = {"checkpoint": args.checkpoint, "bars": args.bars, "audio": False}
        jobs = [run_job(client, {**good, "seed": i}, args.job_limit) for i in range(args.jobs)]
        uploads = [timed(client, "POST", "/api/primers", **kw) for _, kw in bad_uploads()]
        wrong = [timed(client, "POST", "/api/generate", json=body) for _, body in bad_jobs(args.checkpoint)]
        results = await asyncio.gather(*jobs, *uploads, *wrong, return_exceptions=True)
        alive, _, _ = await timed(client, "GET", "/api/checkpoints")
    n_up = len(uploads)
    return {"jobs": results[: args.jobs], "uploads": results[args.jobs: args.jobs + n_up],
            "wrong": results[args.jobs + n_up:], "alive_after": alive}


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"


def report(outcome: dict, memory: dict, args: argparse.Namespace) -> str:
    jobs = [j for j in outcome["jobs"] if isinstance(j, dict)]
    crashed = [repr(j) for j in outcome["jobs"] if not isinstance(j, dict)]
    statuses = Counter(j["status"] for j in jobs)
    done = [j for j in jobs if j.get("stage") == "done"]
    refusals = [(label, r) for (label, _), r in zip(bad_uploads() + bad_jobs(args.checkpoint),
                                                    outcome["uploads"] + outcome["wrong"], strict=True)]
    lines = [f"# Web studio under load\n\n`python benchmarks/web_load.py --jobs {args.jobs} --checkpoint "
             f"{args.checkpoint} --bars {args.bars}` (server and client on this machine, 127.0.0.1 only)\n",
             "| measure | value |", "|---|---|",
             f"| generate requests | {len(outcome['jobs'])} sent at once: " + ", ".join(
                 f"{n} x {s}" for s, n in sorted(statuses.items())) + (f", {len(crashed)} client errors" if crashed
                                                                       else "") + " |",
             f"| refused jobs with a sentence | {sum(bool(j['detail']) for j in jobs if j['status'] >= 400)} of "
             f"{sum(j['status'] >= 400 for j in jobs)} |",
             f"| accepted jobs finished | {len(done)} of {statuses.get(202, 0)} |",
             f"| request latency (all generate requests) | {percentiles([j['request_s'] for j in jobs])} |",
             f"| accepted job latency (submit -> done) | {percentiles([j['job_s'] for j in done])} |",
             f"| 5xx answers | {sum(s >= 500 for s in statuses)} kinds, "
             f"{sum(n for s, n in statuses.items() if s >= 500)} answers |",
             f"| server memory | {memory['start'] / 1024:.0f} MiB at start, peak {memory['peak'] / 1024:.0f} MiB "
             f"({memory['peak'] / max(1, memory['start']):.2f}x) |",
             f"| server alive and answering afterwards | {'yes' if outcome['alive_after'] == 200 else 'NO'} |",
             "\n| malformed request | status | detail |", "|---|---|---|"]
    for label, result in refusals:
        if isinstance(result, tuple) and result[0] == 200 and "primer_id" in result[2]:  # the name was ignored
            lines.append(f"| {label} | 200 | accepted as a MIDI file and stored as {result[2]['primer_id'][:8]}...: "
                         "the client's file name is never used as a path |")
        elif isinstance(result, tuple):
            lines.append(f"| {label} | {result[0]} | {str(result[2].get('detail', ''))[:110]} |")
        else:
            lines.append(f"| {label} | client error | {result!r:.110} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--checkpoint", default="lstm-bach")
    parser.add_argument("--bars", type=int, default=2)
    parser.add_argument("--job-limit", type=float, default=600.0, help="seconds to wait for an accepted job")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    port = free_port()
    server = start_server(port)
    try:
        memory = {"start": memory_kib(server.pid, "VmRSS")}
        outcome = asyncio.run(load(port, args))
        memory["peak"] = memory_kib(server.pid, "VmHWM")
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = report(outcome, memory, args) + ("" if alive else "\nTHE SERVER PROCESS DIED\n")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "web_load.md").write_text(text)
    if not alive or any(isinstance(j, dict) and j["status"] >= 500 for j in outcome["jobs"]):
        raise SystemExit(1)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
