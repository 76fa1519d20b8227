"""How close does `parafuse synth mathfusion` come to the request rate its server allows?

A fault server in echo mode stands in for the teacher (`reasoning.testing.teacher:scripted_teacher`
writes well-formed fusion replies, with a seeded 20% malformed so some fusions are retried,
and boxed answers for the solve prompts). It runs as a process of its own and holds every
answer `--delay-s` seconds, so the server is the bottleneck, as a GPU server would be.

Per repetition, two timed passes against that one server:

  pipeline  `parafuse synth mathfusion ... --engine openai` as a subprocess, timed wall clock
            end to end: interpreter start, imports, pool loading, pairing, generation (fuse,
            retries, solve), grading, filtering and writing the dataset folder. Its stderr lines
            are timestamped as they arrive, which splits the wall time into phases.
  raw       every request the pipeline sent (one row each in DIR/store.jsonl), replayed by a
            minimal aiohttp client at the same number in flight with no dependencies between
            them: the ceiling for that workload on that server.

rows = the jobs the pipeline finished (stats.json `jobs`: each ends as a kept row, a removed
row or a failure row); rows/s = jobs / wall time on both sides, so `ratio` = raw wall /
pipeline wall. `ratio_generation` uses the pipeline's own generation time (stats.json
`generation_s`) instead of its wall time, so what startup and writing cost shows separately.

Two reference figures come from the same requests: `ideal_s`, every answer exactly --delay-s
with nothing between them (ceil(requests / concurrency) rounds), and `ideal_dependent_s`, a
simulation of an overhead-free pipeline that keeps each job's fuse -> retry -> solve order.

The pipeline pays a fixed ~5 s whatever the size (interpreter and imports ~1.5 s, importing
scikit-learn for TF-IDF pairing ~2 s, filtering and writing the dataset ~1.5 s), so the ratio
grows with the run: the default, 2000 seeds (6000 jobs, about 2 minutes per pass), is still far
below one real pool (GSM8K or MATH train: 7.5k seeds, 22.5k jobs). Measured on the 2-core CPU
machine: --limit 1000 0.87-0.89, --limit 2000 0.91.

Prints progress and a table on stderr, then exactly one JSON line on stdout.

    .venv/bin/python benches/synth_mathfusion.py              # 2000 seeds (6000 jobs), 1 s latency, 128 in flight
    .venv/bin/python benches/synth_mathfusion.py --limit 100  # quick check
"""
from __future__ import annotations

import argparse
import collections
import heapq
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from benchlib.common import REPO, emit, fault_server_process, log, parser, require_positive
from benchlib.replay import RawRun, process_cpu_s, run_raw, stored_requests

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODEL = "teacher"
RESPONDER = "reasoning.testing.teacher:scripted_teacher"
STEP_ID = re.compile(r"^(?P<job>.+)/(?:fuse(?:/\d+)?|solve)$")  # request ids: JOB/fuse, JOB/fuse/2, JOB/solve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(
        "Rows/s of `parafuse synth mathfusion` end to end against a local OpenAI-compatible server with "
        "a fixed latency, next to the same requests replayed by a minimal aiohttp client at the same "
        "concurrency. Ends with one JSON line on stdout: ratio = pipeline rows/s / raw client rows/s.")
    p.add_argument("--data-dir", type=lambda s: Path(s).resolve(), default=DEFAULT_DATA_DIR,
                   help="the shared data directory (the pipeline's --data-dir)")
    p.add_argument("--input", default="gsm8k-train", help="seed pool(s), the pipeline's --input")
    p.add_argument("--limit", type=int, default=2000,
                   help="seed problems (each is paired once and fused by all three strategies: 3 jobs)")
    p.add_argument("--delay-s", type=float, default=1.0, help="the server's latency per request (model time)")
    p.add_argument("--concurrency", type=int, default=128,
                   help="requests in flight at once: the pipeline's --max-concurrency and the raw client's limit")
    p.add_argument("--job-concurrency", type=int, default=None,
                   help="the pipeline's --concurrency (fused problems in flight; default 2 x --concurrency)")
    p.add_argument("--repetitions", type=int, default=1, help="timed pipeline + replay pairs; medians are compared")
    p.add_argument("--pipeline-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `parafuse synth mathfusion`, repeatable "
                        "(e.g. --pipeline-arg=--num-solutions=8)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="write each run's output folder under DIR (rep-1, rep-2, ...) and keep it; default a temp dir")
    p.add_argument("--target", type=float, default=0.9, help="the ratio the pipeline should reach")
    args = p.parse_args(argv)
    require_positive(p, args, ("limit", "concurrency", "repetitions"))
    if args.job_concurrency is None:
        args.job_concurrency = 2 * args.concurrency
    require_positive(p, args, ("job_concurrency",))
    if args.delay_s < 0:
        p.error("--delay-s must be >= 0")
    if not args.data_dir.is_dir():
        p.error(f"--data-dir {args.data_dir} is not a directory (the shared data with gsm8k/ etc.)")
    return args


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# ---- the pipeline, end to end ------------------------------------------------------------------
@dataclass
class PipelineRun:
    wall_s: float
    generation_s: float
    jobs: int
    kept: int
    requests: int
    cpu_s: float  # the pipeline process's own CPU time (all threads)
    server_cpu_s: float | None
    phases: dict[str, float | None] = field(default_factory=dict)
    ideal_dependent_s: float | None = None  # see ideal_with_dependencies_s
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, stderr line)

    @property
    def rows_per_s(self) -> float:
        return self.jobs / self.wall_s


def pipeline_command(url: str, args: argparse.Namespace, out_dir: Path) -> list[str]:
    return [sys.executable, "-m", "parafuse.cli", "synth", "mathfusion", "--input", args.input,
            "--data-dir", str(args.data_dir), "--limit", str(args.limit), "--embedder", "tfidf",
            "--engine", "openai", "--model", MODEL, "--base-url", url, "--max-concurrency", str(args.concurrency),
            "--concurrency", str(args.job_concurrency), "--out", str(out_dir), "--no-progress", *args.pipeline_arg]


def _first(timeline: list[tuple[float, str]], pattern: str) -> tuple[float, re.Match] | None:
    rx = re.compile(pattern)
    for t, line in timeline:
        m = rx.search(line)
        if m:
            return t, m
    return None


def phases(timeline: list[tuple[float, str]], wall_s: float, generation_s: float) -> dict[str, float | None]:
    """Split the wall time at the pipeline's own log lines: everything before the "N fusion jobs"
    line (interpreter start, imports, pools, decontamination references, pairing), generation,
    and everything after it (rows, grading, dedup, decontamination, dataset files, exit)."""
    first = timeline[0][0] if timeline else None
    paired = _first(timeline, r"pairs by \S+ in ([0-9.]+) s")
    jobs = _first(timeline, r"^\d+ fusion jobs")
    start = jobs[0] if jobs else None
    return {
        "first_log_line_s": round(first, 2) if first is not None else None,
        "pairing_s": float(paired[1].group(1)) if paired else None,
        "before_generation_s": round(start, 2) if start is not None else None,
        "generation_s": generation_s,
        "after_generation_s": round(wall_s - start - generation_s, 2) if start is not None else None,
    }


def run_pipeline(url: str, args: argparse.Namespace, out_dir: Path, server: subprocess.Popen) -> PipelineRun:
    """`parafuse synth mathfusion` as a user runs it, timed from spawn to exit."""
    cmd = pipeline_command(url, args, out_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each log line arrives when it is written
    cpu0, srv0 = children_cpu_s(), process_cpu_s(server.pid)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=env, cwd=REPO)
    timeline = []
    for line in proc.stderr:  # universal newlines: a progress bar's \r also ends a line
        if line.strip():
            timeline.append((time.perf_counter() - t0, line.rstrip()))
    rc = proc.wait()
    wall = time.perf_counter() - t0
    cpu, srv1 = children_cpu_s() - cpu0, process_cpu_s(server.pid)
    if rc != 0:
        tail = "\n".join(line for _, line in timeline[-20:])
        raise RuntimeError(f"the pipeline exited with status {rc}:\n{' '.join(cmd)}\n{tail}")
    st = json.loads((out_dir / "stats.json").read_text())
    if st.get("requests_from_store"):
        raise RuntimeError(f"{st['requests_from_store']} requests came from an old store in {out_dir}: "
                           "the timing needs a fresh output folder")
    return PipelineRun(wall_s=wall, generation_s=float(st["generation_s"]), jobs=int(st["jobs"]),
                       kept=int(st["kept"]), requests=int(st["requests_sent"]), cpu_s=cpu,
                       server_cpu_s=None if srv0 is None or srv1 is None else srv1 - srv0,
                       phases=phases(timeline, wall, float(st["generation_s"])),
                       timeline=[(round(t, 3), line[:160]) for t, line in timeline])


# ---- what a perfect pipeline would take ------------------------------------------------------
def job_chains(requests: list[dict[str, Any]]) -> list[int] | None:
    """Requests per job (fuse attempts, then the solve), jobs in the order they first appear; None
    when an id does not read as JOB/fuse[/N] or JOB/solve."""
    chains: dict[str, int] = {}
    for r in requests:
        m = STEP_ID.match(str(r.get("id")))
        if m is None:
            return None
        chains[m["job"]] = chains.get(m["job"], 0) + 1
    return list(chains.values())


def ideal_with_dependencies_s(chains: list[int], concurrency: int, job_concurrency: int, delay_s: float) -> float:
    """Wall time of a pipeline with no overhead at all: `job_concurrency` workers take jobs in order,
    a job sends its requests one after another, at most `concurrency` are in flight (first come,
    first served) and every answer takes exactly `delay_s`. The gap to the dependency-free ideal
    is what the fuse -> retry -> solve chains cost by themselves."""
    started = min(job_concurrency, len(chains))
    ready = collections.deque((j, 0) for j in range(started))  # (job, step) waiting for a slot
    in_flight: list[tuple[float, int, int]] = []  # heap of (answer time, job, step)
    now = 0.0
    while ready or in_flight:
        while ready and len(in_flight) < concurrency:
            j, step = ready.popleft()
            heapq.heappush(in_flight, (now + delay_s, j, step))
        now, j, step = heapq.heappop(in_flight)
        if step + 1 < chains[j]:
            ready.append((j, step + 1))
        elif started < len(chains):
            ready.append((started, 0))
            started += 1
    return now


# ---- driver -----------------------------------------------------------------------------------
def measure(url: str, server: subprocess.Popen, args: argparse.Namespace,
            root: Path) -> list[tuple[PipelineRun, RawRun]]:
    """Pipeline first (a fresh output folder each time), then the replay of what it sent."""
    runs = []
    for rep in range(args.repetitions):
        out_dir = root / f"rep-{rep + 1}"
        pipe = run_pipeline(url, args, out_dir, server)
        ph = pipe.phases
        log(f"rep {rep + 1}/{args.repetitions} pipeline: {pipe.wall_s:7.2f} s wall  {pipe.rows_per_s:7.2f} rows/s  "
            f"jobs={pipe.jobs} kept={pipe.kept} requests={pipe.requests}  before generation "
            f"{ph['before_generation_s']} s (pairing {ph['pairing_s']} s), generation {pipe.generation_s} s, "
            f"after {ph['after_generation_s']} s  cpu {pipe.cpu_s:.1f} s")
        requests = stored_requests(out_dir / "store.jsonl")
        chains = job_chains(requests)
        if chains is not None:
            pipe.ideal_dependent_s = ideal_with_dependencies_s(chains, args.concurrency, args.job_concurrency,
                                                               args.delay_s)
        raw = run_raw(url, requests, args.concurrency, server, MODEL)
        log(f"rep {rep + 1}/{args.repetitions}      raw: {raw.wall_s:7.2f} s wall  "
            f"{pipe.jobs / raw.wall_s:7.2f} rows/s  "
            f"requests={raw.requests} failures={raw.failures}  cpu {raw.cpu_s:.1f} s")
        runs.append((pipe, raw))
    return runs


def summarize(runs: list[tuple[PipelineRun, RawRun]], args: argparse.Namespace,
              load_before: tuple[float, ...]) -> dict[str, Any]:
    med = statistics.median
    pipe_wall = med(p.wall_s for p, _ in runs)
    gen = med(p.generation_s for p, _ in runs)
    raw_wall = med(r.wall_s for _, r in runs)
    jobs, kept, requests = runs[0][0].jobs, runs[0][0].kept, runs[0][1].requests
    pipe_rps, raw_rps = jobs / pipe_wall, jobs / raw_wall
    ratio = pipe_rps / raw_rps
    ideal_dep = runs[0][0].ideal_dependent_s  # the same requests every repetition
    phase_names = list(runs[0][0].phases)
    phase_med = {k: (med(vs) if (vs := [p.phases[k] for p, _ in runs if p.phases[k] is not None]) else None)
                 for k in phase_names}
    return {
        "bench": "synth_mathfusion",
        "ratio": round(ratio, 4),
        "target": args.target,
        "ratio_means": "pipeline rows/s (jobs / wall of `parafuse synth mathfusion`) / raw aiohttp replay of the "
                       "same requests at the same concurrency (jobs / replay wall); medians",
        "meets_target": ratio >= args.target,
        "ratio_generation": round(raw_wall / gen, 4),
        "pipeline_wall_s": round(pipe_wall, 2),
        "pipeline_generation_s": round(gen, 2),
        "raw_wall_s": round(raw_wall, 2),
        "ideal_s": round(math.ceil(requests / args.concurrency) * args.delay_s, 2),
        "ideal_dependent_s": None if ideal_dep is None else round(ideal_dep, 2),
        "requests": requests,
        "jobs": jobs,
        "kept": kept,
        "rows_per_s_pipeline": round(pipe_rps, 3),
        "rows_per_s_ceiling": round(raw_rps, 3),
        "rows_per_s_generation": round(jobs / gen, 3),
        "concurrency": args.concurrency,
        "job_concurrency": args.job_concurrency,
        "delay_s": args.delay_s,
        "limit": args.limit,
        "input": args.input,
        "repetitions": args.repetitions,
        "phases_s": phase_med,
        "raw_failures": sum(r.failures for _, r in runs),
        # 1/5/15-minute load averages before the run: on a small machine another job skews every figure
        "loadavg_before": [round(x, 2) for x in load_before],
        "runs": [{"pipeline": {k: v for k, v in asdict(p).items() if k != "timeline"}, "raw": asdict(r)}
                 for p, r in runs],
        "timeline": runs[0][0].timeline,
    }


def print_table(s: dict[str, Any]) -> None:
    log(f"\n{s['jobs']} jobs ({s['kept']} kept), {s['requests']} requests, {s['concurrency']} in flight, "
        f"{s['delay_s']} s per answer")
    log(f"{'':>24} {'wall s':>8} {'rows/s':>8}")
    figures = [("pipeline, end to end", s["pipeline_wall_s"]), ("pipeline, generation", s["pipeline_generation_s"]),
               ("raw client replay", s["raw_wall_s"]), ("ideal, no dependencies", s["ideal_s"]),
               ("ideal, job chains", s["ideal_dependent_s"])]
    for name, wall in figures:
        if wall:
            log(f"{name:>24} {wall:8.2f} {s['jobs'] / wall:8.2f}")
    log("pipeline phases (s): " + ", ".join(f"{k.removesuffix('_s')} {v}" for k, v in s["phases_s"].items()))
    log(f"ratio {s['ratio']:.3f} (target {s['target']}); generation only {s['ratio_generation']:.3f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    server_args = ["--mode", "echo", "--responder", RESPONDER, "--delay-s", str(args.delay_s), "--model", MODEL]
    with tempfile.TemporaryDirectory(prefix="parafuse-bench-synth-") as tmp:
        root = Path(args.keep).resolve() if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        if args.keep and any(root.glob("rep-*")):
            log(f"error: {root} already holds rep-* folders; a rerun there would be served from the store")
            return 2
        with fault_server_process(*server_args) as (url, server):
            log(f"fault server at {url} (pid {server.pid}, {args.delay_s} s per answer)")
            runs = measure(url, server, args, root)
    summary = summarize(runs, args, load_before)
    print_table(summary)
    emit(summary)
    return 0 if summary["raw_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
