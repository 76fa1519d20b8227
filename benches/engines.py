"""The same workload through every engine, side by side: hf, vllm in-process, and openai.

`hf` is transformers in-process (one request at a time), `vllm` is vLLM's offline engine
in-process (continuous batching), `openai` is parafuse's HTTP engine against a vLLM server
the bench starts (and, with --transformers-serve, against `transformers serve` too). Each
engine is started, warmed up, timed over the whole workload and closed before the next one
starts, so they never share the memory or the cores.

Prints progress and a table on stderr, then exactly one JSON line on stdout:
`ratio` = vllm completion tokens/s over hf completion tokens/s; `target` = 1.0, i.e. vLLM
should at least match transformers.

    .venv/bin/python benches/engines.py                          # 64 chat requests, n=2, 64 tokens
    .venv/bin/python benches/engines.py --requests 8 --engines hf,vllm   # quick check
"""
from __future__ import annotations

import argparse
import os
import random
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

ENGINES = ("hf", "vllm", "openai", "openai-transformers")


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
                        "(openai = vLLM server, openai-transformers = `transformers serve`)")
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
    p.add_argument("--target", type=float, default=1.0, help="the vllm/hf tokens/s ratio we expect at least")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if args.transformers_serve and "openai-transformers" not in args.engines:
        args.engines.append("openai-transformers")
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown or not args.engines:
        p.error(f"--engines: unknown {unknown}; choose from {', '.join(ENGINES)}")
    require_positive(p, args, ("requests", "n", "max_tokens", "concurrency"))
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
    if name in ("hf", "vllm"):
        engine = make_engine(name, model, max_model_len=args.max_model_len, enforce_eager=args.enforce_eager)
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
        "ratio_means": "vllm (in-process) completion tokens/s / hf (transformers in-process) completion tokens/s; "
                       "null unless both ran",
        "meets_target": None if ratio is None else ratio >= args.target,
        "engines": per,
        "workload": {"requests": args.requests, "n": args.n, "max_tokens": args.max_tokens,
                     "temperature": args.temperature, "api": "chat", "openai_concurrency": args.concurrency,
                     "warmup": args.warmup, "max_model_len": args.max_model_len,
                     "enforce_eager": args.enforce_eager},
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
        results = {name: bench_engine(name, model, args, workdir) for name in args.engines}
    print_table(results)
    summary = summarize(results, args)
    emit(summary)
    return 1 if any(f.failures for f in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
