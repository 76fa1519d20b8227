"""How close does `parafuse synth traces --method threadweaver` come to the request rate its server allows?

A fault server in echo mode stands in for the teacher (`reasoning.testing.teacher:arith_teacher`, the
symbolic arith teacher: sequential solutions, then their fork-join rewrites), in a process of its
own, holding every answer `--delay-s` seconds so the server is the bottleneck, as a GPU server
would be. Per repetition, two timed passes against it:

  pipeline  `parafuse synth traces --method threadweaver ... --engine openai` as a subprocess, wall
            clock end to end (interpreter start, imports, generation of both stages, grading,
            filtering, writing the dataset folder and its card);
  raw       every request the pipeline sent (its store's rows), replayed by a bare aiohttp client at
            the same number in flight with no dependencies between them: the ceiling.

`ratio` = raw wall / pipeline wall (the same requests). Each problem's two stages depend on each
other (the rewrite needs the solution), so even a perfect pipeline takes two rounds of latency per
wave of problems; `ideal_two_stage_s` is that figure, for reference.

Prints progress on stderr, then exactly one JSON line on stdout.

    .venv/bin/python benches/synth_traces.py                 # 3000 problems, 1 s latency, 128 in flight
    .venv/bin/python benches/synth_traces.py --problems 200  # quick check
"""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.common import REPO, emit, fault_server_process, log, parser, require_positive
from benchlib.replay import run_raw, stored_requests

MODEL = "teacher"
RESPONDER = "reasoning.testing.teacher:arith_teacher"


def parse_args(argv: list[str] | None = None):
    p = parser("synth traces (ThreadWeaver two-stage) end to end against a scripted teacher at a fixed latency, "
               "versus a bare client replaying the same requests. Ends with one JSON line on stdout.")
    p.add_argument("--problems", type=int, default=3000,
                   help="arith problems (level 3) to turn into traces; the pipeline's fixed start-up and writing "
                        "cost (a few seconds) weighs less on longer runs")
    p.add_argument("--delay-s", type=float, default=1.0, help="the teacher's latency per request, seconds")
    p.add_argument("--concurrency", type=int, default=128, help="requests in flight (both sides)")
    p.add_argument("--repetitions", type=int, default=1, help="pipeline/raw pairs; the median ratio is reported")
    p.add_argument("--target", type=float, default=0.9, help="the ratio the pipeline should reach")
    args = p.parse_args(argv)
    require_positive(p, args, ("problems", "concurrency", "repetitions"))
    return args


def run_pipeline(url: str, pool: Path, out: Path, args) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "parafuse.cli", "synth", "traces", "--method", "threadweaver", "--input", str(pool),
           "--engine", "openai", "--base-url", url, "--model", MODEL,
           "--max-concurrency", str(args.concurrency), "--concurrency", str(args.concurrency), "--out", str(out),
           "--no-progress"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"the pipeline exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return wall, json.loads((out / "stats.json").read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from reasoning.tasks.arith import generate

    with tempfile.TemporaryDirectory(prefix="parafuse-bench-") as workdir:
        root = Path(workdir)
        pool = root / "arith.jsonl"
        pool.write_text("".join(json.dumps(p.to_record()) + "\n" for p in generate(3, args.problems, "train")))
        server_args = ["--mode", "echo", "--responder", RESPONDER, "--delay-s", str(args.delay_s), "--model", MODEL]
        pairs = []
        with fault_server_process(*server_args) as (url, server):
            for rep in range(args.repetitions):
                out = root / f"run{rep}"
                wall, stats = run_pipeline(url, pool, out, args)
                requests = stored_requests(out / "store.jsonl")
                raw = run_raw(url, requests, args.concurrency, server, MODEL)
                log(f"rep {rep + 1}: pipeline {wall:.2f} s for {stats['requests_sent']} requests "
                    f"({stats['kept']} traces kept); raw replay {raw.wall_s:.2f} s ({raw.failures} failures)")
                pairs.append((wall, raw.wall_s, stats, raw))
    ratios = [raw_s / wall for wall, raw_s, _, _ in pairs]
    wall, raw_s, stats, raw = pairs[len(pairs) // 2]
    waves = math.ceil(args.problems / args.concurrency)
    emit({"bench": "synth_traces", "ratio": round(statistics.median(ratios), 4), "target": args.target,
          "ratios": [round(r, 4) for r in ratios], "pipeline_wall_s": round(wall, 2),
          "pipeline_generation_s": stats["generation_s"], "raw_wall_s": round(raw_s, 2),
          "requests": stats["requests_sent"], "kept": stats["kept"], "acceptance_rate": stats["acceptance_rate"],
          "rejected_by": stats["rejected_by"], "raw_failures": raw.failures,
          "ideal_raw_s": round(math.ceil(stats["requests_sent"] / args.concurrency) * args.delay_s, 2),
          "ideal_two_stage_s": round(2 * waves * args.delay_s, 2), "problems": args.problems,
          "delay_s": args.delay_s, "concurrency": args.concurrency})
    return 0


if __name__ == "__main__":
    sys.exit(main())
