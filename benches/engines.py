"""The same workload through every engine, side by side: hf, vllm in-process, and openai.

`hf` is transformers in-process (compatible requests batched, up to --batch-size prompts per
generate() call), `hf-exact` the same one request at a time (`--exact-seeds`), `vllm` is vLLM's
offline engine in-process (continuous batching), `openai` is parafuse's HTTP engine against a
vLLM server the bench starts (and, with --transformers-serve, against `transformers serve` too).
Each engine is started, warmed up, timed over the whole workload and closed before the next one
starts, so they never share the memory or the cores.

Prints progress and a table on stderr, then exactly one JSON line on stdout:
`ratio` = vllm completion tokens/s over hf completion tokens/s; `target` = 1.0, i.e. vLLM
should at least match transformers.

With --hf-batching it compares instead hf batched against hf one request at a time on one loaded
model, in the same run: each repetition times the workload both ways back to back (alternating
which goes first), and `ratio` is the median of the paired batched/one-at-a-time tokens/s ratios,
with their spread; `target` = 4.0.

    .venv/bin/python benches/engines.py                          # 64 chat requests, n=2, 64 tokens
    .venv/bin/python benches/engines.py --requests 8 --engines hf,vllm   # quick check
    .venv/bin/python benches/engines.py --hf-batching            # hf batched vs one at a time
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from benchlib.common import arithmetic_prompt, emit, log, parser, require_positive, tiny_model_dir

from reasoning.engines import make_engine
from reasoning.engines.base import Engine
from reasoning.testing.servers import ServerProcess, start_transformers_server, start_vllm_server
from reasoning.types import Failure, Request, SamplingParams

ENGINES = ("hf", "hf-exact", "vllm", "openai", "openai-transformers")
TARGETS = {"engines": 1.0, "engines-hf-batching": 4.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(
        "Run one workload through parafuse's engines (hf, vllm in-process, openai against a vLLM "
                    "server, optionally openai against `transformers serve`) one after another and compare "
                    "requests/s, completion tokens/s and start-up time. Ends with one JSON line on stdout: "
                    "ratio = vllm tokens/s / hf tokens/s.")
    p.add_argument("--model", default=None,
                   help="model directory; by default a tiny random model is built into a temp dir")
    p.add_argument("--engines", default="hf,vllm,openai",
                   help=f"comma-separated engines to run, in order, from: {', '.join(ENGINES)} "
                        "(hf-exact = hf one request at a time, openai = vLLM server, openai-transformers = "
                        "`transformers serve`)")
    p.add_argument("--hf-batching", action="store_true",
                   help="instead: hf batched vs hf one request at a time (--exact-seeds) on one loaded model, "
                        "paired repetitions; ratio = batched tokens/s / one-at-a-time tokens/s")
    p.add_argument("--batch-size", type=int, default=None,
                   help="hf: prompts per generate() call (default: the engine's, 16)")
    p.add_argument("--repetitions", type=int, default=5,
                   help="--hf-batching: paired repetitions (each times the workload both ways)")
    p.add_argument("--transformers-serve", action="store_true",
                   help="also run openai against `transformers serve` (same as adding openai-transformers)")
    p.add_argument("--requests", type=int, default=64, help="chat requests in the timed workload")
    p.add_argument("--n", type=int, default=2, help="completions sampled per request")
    p.add_argument("--max-tokens", type=int, default=64, help="cap on tokens per completion")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--concurrency", type=int, default=32, help="openai: requests in flight at once")
    p.add_argument("--warmup", type=int, default=2, help="untimed requests each engine runs first")
    p.add_argument("--max-model-len", type=int, default=1024, help="vllm and the vLLM server: context length cap")
    p.add_argument("--enforce-eager", action="store_true",
                   help="vllm and the vLLM server: skip torch.compile (faster start, slower decode)")
    p.add_argument("--target", type=float, default=None,
                   help="the ratio we expect at least (default: 1.0 for vllm/hf, 4.0 with --hf-batching)")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if args.transformers_serve and "openai-transformers" not in args.engines:
        args.engines.append("openai-transformers")
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown or not args.engines:
        p.error(f"--engines: unknown {unknown}; choose from {', '.join(ENGINES)}")
    require_positive(p, args, ("requests", "n", "max_tokens", "concurrency", "repetitions"))
    if args.batch_size is not None and args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    if args.target is None:
        args.target = TARGETS["engines-hf-batching" if args.hf_batching else "engines"]
    return args


def make_requests(count: int, n: int, max_tokens: int, temperature: float, seed: int = 0) -> list[Request]:
    """Distinct chat prompts with the same sampling params; no seeds, so vLLM batches freely."""
    rng = random.Random(seed)
    params = SamplingParams(n=n, temperature=temperature, max_tokens=max_tokens)
    out = []
    for i in range(count):
        text = arithmetic_prompt(i, rng)
        out.append(Request(messages=({"role": "user", "content": text},), params=params, id=str(i)))
    return out


# ---- engines ----------------------------------------------------------------------------------
@contextmanager
def serving(server: ServerProcess) -> Iterator[ServerProcess]:
    """Wait for a server and stop it however the block ends (a leaked vLLM server holds GBs)."""
    try:
        yield server.wait()
    finally:
        server.stop()


@contextmanager
def open_engine(name: str, model: str, args: argparse.Namespace, workdir: str) -> Iterator[Engine]:
    """Start engine `name` (and its server, for openai*); close both when the block ends."""
    logs = os.path.join(workdir, "logs", name)
    if name in ("hf", "hf-exact", "vllm"):
        engine = make_engine("hf" if name == "hf-exact" else name, model, max_model_len=args.max_model_len,
                             enforce_eager=args.enforce_eager, batch_size=args.batch_size,
                             exact_seeds=name == "hf-exact")
        try:
            yield engine
        finally:
            engine.close()
        return
    if name == "openai":
        extra = ["--enforce-eager"] if args.enforce_eager else []
        server = start_vllm_server(model, max_model_len=args.max_model_len, extra_args=extra, log_dir=logs)
    else:
        server = start_transformers_server(model, log_dir=logs)
    with serving(server):
        # The served name is the model directory, so the engine can also use it as its tokenizer.
        engine = make_engine("openai", server.model, base_url=server.url, max_concurrency=args.concurrency)
        try:
            yield engine
        finally:
            engine.close()


@dataclass
class Figures:
    """What one engine did on the timed workload."""

    engine: str
    startup_s: float
    seconds: float
    requests: int
    failures: int
    completions: int
    completion_tokens: int

    def to_dict(self) -> dict:
        return {"startup_s": round(self.startup_s, 2), "seconds": round(self.seconds, 3),
                "requests_per_s": round(self.requests / self.seconds, 3),
                "tokens_per_s": round(self.completion_tokens / self.seconds, 1),
                "requests": self.requests, "failures": self.failures, "completions": self.completions,
                "completion_tokens": self.completion_tokens}


def timed_run(engine: Engine, requests: list[Request]) -> tuple[float, int, int, int]:
    """(seconds, failures, completions, completion tokens) for the whole workload."""
    failures = completions = tokens = 0
    t0 = time.perf_counter()
    for _, res in engine.iter_results(requests):
        if isinstance(res, Failure):
            failures += 1
            log(f"  failure: {res.error[:200]}")
        else:
            completions += len(res.completions)
            tokens += res.completion_tokens
    return time.perf_counter() - t0, failures, completions, tokens


def bench_engine(name: str, model: str, args: argparse.Namespace, workdir: str) -> Figures:
    """Start-up (to a ready engine), warm-up (untimed), then the timed workload."""
    log(f"[{name}] starting")
    t0 = time.perf_counter()
    with open_engine(name, model, args, workdir) as engine:
        startup = time.perf_counter() - t0
        log(f"[{name}] ready in {startup:.1f} s")
        if args.warmup:
            # Warm-up also lets the openai engine learn the server is vLLM (exact per-completion token counts).
            engine.generate(make_requests(args.warmup, args.n, args.max_tokens, args.temperature, seed=1))
        requests = make_requests(args.requests, args.n, args.max_tokens, args.temperature)
        seconds, failures, completions, tokens = timed_run(engine, requests)
    figures = Figures(name, startup, seconds, len(requests), failures, completions, tokens)
    d = figures.to_dict()
    log(f"[{name}] {seconds:.2f} s, {d['requests_per_s']} req/s, {d['tokens_per_s']} tok/s, "
        f"{tokens} tokens, {failures} failures")
    return figures


# ---- hf batched vs one at a time ----------------------------------------------------------------
def bench_hf_batching(model: str, args: argparse.Namespace, workdir: str) -> dict:
    """Paired repetitions on one loaded hf engine: the workload batched, then one request at a time
    (`exact_seeds`), back to back, alternating which goes first; one summary dict."""
    log("[hf] starting")
    t0 = time.perf_counter()
    with open_engine("hf", model, args, workdir) as engine:
        startup = time.perf_counter() - t0
        log(f"[hf] ready in {startup:.1f} s, batch size {engine.batch_size}")
        requests = make_requests(args.requests, args.n, args.max_tokens, args.temperature)
        runs: dict[str, list[Figures]] = {"batched": [], "one_at_a_time": []}

        def run(mode: str) -> Figures:
            engine.exact_seeds = mode == "one_at_a_time"  # the same weights either way: only batching differs
            seconds, failures, completions, tokens = timed_run(engine, requests)
            return Figures(mode, startup, seconds, len(requests), failures, completions, tokens)

        if args.warmup:
            warm = make_requests(args.warmup, args.n, args.max_tokens, args.temperature, seed=1)
            for mode in runs:
                engine.exact_seeds = mode == "one_at_a_time"
                engine.generate(warm)
        for rep in range(args.repetitions):
            for mode in (("batched", "one_at_a_time") if rep % 2 == 0 else ("one_at_a_time", "batched")):
                runs[mode].append(run(mode))
            b, o = runs["batched"][-1], runs["one_at_a_time"][-1]
            log(f"[hf] repetition {rep + 1}/{args.repetitions}: batched {b.completion_tokens / b.seconds:.0f} tok/s "
                f"({b.seconds:.2f} s), one at a time {o.completion_tokens / o.seconds:.0f} tok/s ({o.seconds:.2f} s)")
        batch_size = engine.batch_size
    rate = {mode: [f.completion_tokens / f.seconds for f in figs] for mode, figs in runs.items()}
    paired = [b / o for b, o in zip(rate["batched"], rate["one_at_a_time"])]
    ratio = statistics.median(paired)
    quartiles = statistics.quantiles(paired, n=4, method="inclusive") if len(paired) >= 2 else [ratio] * 3

    def side(mode: str) -> dict:
        figs = runs[mode]
        return {"tokens_per_s_median": round(statistics.median(rate[mode]), 1),
                "tokens_per_s": [round(x, 1) for x in rate[mode]],
                "seconds": [round(f.seconds, 3) for f in figs],
                "completion_tokens": [f.completion_tokens for f in figs],
                "failures": sum(f.failures for f in figs)}

    return {
        "bench": "engines-hf-batching",
        "ratio": round(ratio, 4),
        "target": args.target,
        "ratio_means": "hf batched completion tokens/s / hf one-request-at-a-time (--exact-seeds) completion "
                       "tokens/s, median of the paired repetitions (each pair run back to back on one model)",
        "meets_target": ratio >= args.target,
        "paired_ratios": [round(x, 4) for x in paired],
        "spread": {"min": round(min(paired), 4), "q1": round(quartiles[0], 4), "q3": round(quartiles[2], 4),
                   "max": round(max(paired), 4)},
        "batched": side("batched"),
        "one_at_a_time": side("one_at_a_time"),
        "startup_s": round(startup, 2),
        "workload": {"requests": args.requests, "n": args.n, "max_tokens": args.max_tokens,
                     "temperature": args.temperature, "api": "chat", "batch_size": batch_size,
                     "repetitions": args.repetitions, "warmup": args.warmup, "model": args.model or "tiny"},
        "environment": {"cpu_count": os.cpu_count(), "torch_threads": torch_threads(),
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }


# ---- report -----------------------------------------------------------------------------------
def print_table(results: dict[str, Figures]) -> None:
    log(f"\n{'engine':>20} {'start-up s':>11} {'run s':>8} {'req/s':>8} {'tok/s':>9} {'tokens':>8} {'fail':>5}")
    for name, f in results.items():
        d = f.to_dict()
        log(f"{name:>20} {d['startup_s']:11.1f} {d['seconds']:8.2f} {d['requests_per_s']:8.2f} "
            f"{d['tokens_per_s']:9.1f} {f.completion_tokens:8d} {f.failures:5d}")


def summarize(results: dict[str, Figures], args: argparse.Namespace) -> dict:
    per = {name: f.to_dict() for name, f in results.items()}
    ratio = None
    if "hf" in per and "vllm" in per and per["hf"]["tokens_per_s"] > 0:
        ratio = round(per["vllm"]["tokens_per_s"] / per["hf"]["tokens_per_s"], 4)
    return {
        "bench": "engines",
        "ratio": ratio,
        "target": args.target,
        "ratio_means": "vllm (in-process) completion tokens/s / hf (transformers in-process, batched) completion "
                       "tokens/s; null unless both ran",
        "meets_target": None if ratio is None else ratio >= args.target,
        "engines": per,
        "workload": {"requests": args.requests, "n": args.n, "max_tokens": args.max_tokens,
                     "temperature": args.temperature, "api": "chat", "openai_concurrency": args.concurrency,
                     "warmup": args.warmup, "max_model_len": args.max_model_len,
                     "enforce_eager": args.enforce_eager, "hf_batch_size": args.batch_size},
        # hf decodes with torch's intra-op threads: its figures drop sharply when other work shares the cores.
        "environment": {"cpu_count": os.cpu_count(), "torch_threads": torch_threads()},
    }


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def preload_shared_imports() -> None:
    """Import torch and transformers before any start-up clock runs.

    Every engine needs them (vllm and openai for their tokenizers too), and building the tiny
    model imports them anyway; without this, hf's start-up would include them only when
    --model is given.
    """
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # vLLM logs to stdout by default, and stdout is kept for the one JSON line; vllm is imported
    # lazily (in make_engine), so this still takes effect here, and its engine process inherits it.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    preload_shared_imports()
    with tempfile.TemporaryDirectory(prefix="parafuse-bench-") as workdir:
        model = args.model or tiny_model_dir(workdir)
        if args.hf_batching:
            summary = bench_hf_batching(model, args, workdir)
            s = summary["spread"]
            log(f"hf batched / one at a time: {summary['ratio']:.2f}x tokens/s (paired, min {s['min']:.2f}, "
                f"IQR {s['q1']:.2f}-{s['q3']:.2f}, max {s['max']:.2f}); batched "
                f"{summary['batched']['tokens_per_s_median']} tok/s, one at a time "
                f"{summary['one_at_a_time']['tokens_per_s_median']} tok/s")
            emit(summary)
            return 1 if summary["batched"]["failures"] or summary["one_at_a_time"]["failures"] else 0
        results = {name: bench_engine(name, model, args, workdir) for name in args.engines}
    print_table(results)
    summary = summarize(results, args)
    emit(summary)
    return 1 if any(f.failures for f in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
