"""How much throughput does parafuse's `openai` engine cost over a bare asyncio client?

One local vLLM OpenAI server (tiny random model) answers the same workload twice per
repetition: once through `make_engine("openai", ...)`, once through a minimal hand-written
aiohttp client (one session, a semaphore, post, parse JSON). Both send the same request
bodies at the same concurrency, so the difference is the engine's own overhead (retry
bookkeeping, thread and queue hand-off, result objects, the token ids it keeps). The two sides
run back to back in each repetition, in alternating order, and each repetition gives one paired
ratio: the figure is the median of at least 7 paired ratios, with their spread, so a slow start
or a noisy neighbour on this 2-core machine moves both sides of a pair, not the result. Each run
opens its connections untimed first, and the warm-up is a whole workload per side (vLLM's CPU
build compiles kernels per new batch size). The client's CPU milliseconds per request are reported
too: they measure the engine's own cost without the server's stalls.

Prints progress and a table on stderr, then exactly one JSON line on stdout:
`ratio` = parafuse requests/s over raw client requests/s; `target` = the ratio we aim for.

    .venv/bin/python benches/engine_overhead.py                      # 256 requests, 32 in flight
    .venv/bin/python benches/engine_overhead.py --requests 64 --repetitions 1   # quick check
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import aiohttp

from benchlib.common import SERVED_NAME, arithmetic_prompt, emit, log, parser, require_positive, tiny_model_dir

from reasoning.engines import make_engine
from reasoning.testing.servers import start_vllm_server
from reasoning.types import Failure, Request, SamplingParams


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(
        "Throughput of parafuse's openai engine against a minimal aiohttp client, both talking "
                    "to one local vLLM server with the same requests at the same concurrency. Ends with one "
                    "JSON line on stdout: ratio = parafuse requests/s / raw client requests/s.")
    p.add_argument("--model", default=None,
                   help="model directory to serve; by default a tiny random model is built into a temp dir")
    p.add_argument("--requests", type=int, default=256, help="requests per timed run (each side, each repetition)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight at once, on both sides")
    p.add_argument("--max-tokens", type=int, default=64, help="completion length of every request")
    p.add_argument("--api", choices=("chat", "completions"), default="chat",
                   help="chat: /v1/chat/completions with messages; completions: /v1/completions with raw text")
    p.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false",
                   help="let completions end at EOS (by default vLLM's ignore_eos makes every one max-tokens long, "
                        "so both sides generate exactly the same number of tokens)")
    p.add_argument("--repetitions", type=int, default=7,
                   help="timed runs per side, interleaved in alternating order; the ratio is the median of the "
                        "paired per-repetition ratios")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed requests each side sends first (default: as many as a timed run). vLLM's CPU "
                        "build compiles its kernels for each new batch size it meets, a stall of seconds: a "
                        "warm-up as large as the workload meets them all before anything is timed")
    p.add_argument("--max-model-len", type=int, default=1024, help="the server's --max-model-len")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for the vLLM server, repeatable (e.g. --server-arg=--enforce-eager)")
    p.add_argument("--server-cores", default="0",
                   help="CPU build of vLLM: the cores its server's OpenMP threads are bound to "
                        "(VLLM_CPU_OMP_THREADS_BIND; 'auto' = all). On a 2-core machine the clients need a core of "
                        "their own: when they preempt a spin-waiting OpenMP thread the server stalls for seconds, "
                        "and the timings measure that, not the client")
    p.add_argument("--target", type=float, default=0.95, help="the ratio parafuse should reach")
    args = p.parse_args(argv)
    require_positive(p, args, ("requests", "concurrency", "max_tokens", "repetitions"))
    if args.warmup is None:
        args.warmup = args.requests
    return args


# ---- workload ---------------------------------------------------------------------------------
def make_requests(count: int, max_tokens: int, api: str, seed: int = 0) -> list[Request]:
    """Distinct prompts (no prefix-cache hits between them), n=1, temperature 1, fixed length."""
    rng = random.Random(seed)
    params = SamplingParams(n=1, temperature=1.0, max_tokens=max_tokens)
    out = []
    for i in range(count):
        text = arithmetic_prompt(i, rng)
        if api == "chat":
            out.append(Request(messages=({"role": "user", "content": text},), params=params, id=str(i)))
        else:
            out.append(Request(prompt=text, params=params, id=str(i)))
    return out


def extra_body(ignore_eos: bool) -> dict:
    """vLLM-only fields both sides send: ignore_eos pins every completion to max_tokens."""
    return {"ignore_eos": True} if ignore_eos else {}


def raw_body(req: Request, extra: dict) -> tuple[str, dict]:
    """The same JSON body the openai engine sends for `req`, written out by hand."""
    p = req.params
    # return_token_ids: the engine asks a vLLM server for the sampled ids (Completion.token_ids), so the
    # floor asks for them too: both sides make the server do the same work.
    body = {"model": SERVED_NAME, "n": p.n, "temperature": p.temperature, "top_p": p.top_p,
            "max_tokens": p.max_tokens, "return_token_ids": True, **extra}
    if req.messages is not None:
        return "/chat/completions", {**body, "messages": [dict(m) for m in req.messages]}
    return "/completions", {**body, "prompt": req.prompt}


# ---- the two clients --------------------------------------------------------------------------
@dataclass
class Run:
    """One timed pass of one client over the whole workload."""

    client: str
    seconds: float
    requests: int
    failures: int
    completion_tokens: int
    cpu_seconds: float  # this process's CPU time (all threads): the client's own cost, less noisy than wall time

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds


def connection_openers(concurrency: int, api: str) -> list[Request]:
    """One one-token request per connection a run will hold open, sent untimed before it."""
    return make_requests(concurrency, 1, api, seed=2)


def run_parafuse(url: str, requests: list[Request], concurrency: int, extra: dict,
                 openers: Sequence[Request] = ()) -> Run:
    """Through the public engine API, as a user would: make_engine + iter_results."""
    engine = make_engine("openai", SERVED_NAME, base_url=url, max_concurrency=concurrency, extra_body=extra)
    for _ in engine.iter_results(list(openers)):  # open the connections before the clock starts
        pass
    t0, c0 = time.perf_counter(), time.process_time()
    tokens = failures = 0
    try:
        for _, res in engine.iter_results(requests):
            if isinstance(res, Failure):
                failures += 1
            else:
                tokens += res.completion_tokens
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        engine.close()
    return Run("parafuse", seconds, len(requests), failures, tokens, cpu)


async def _raw_all(url: str, bodies: list[tuple[str, dict]], concurrency: int,
                   openers: list[tuple[str, dict]]) -> tuple[list[tuple[str, int] | None], float, float]:
    """(results, wall seconds, CPU seconds) of the timed bodies, after the untimed openers."""
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def one(path: str, body: dict) -> tuple[str, int] | None:
            async with sem:
                for attempt in range(3):
                    try:
                        async with session.post(url + path, json=body) as resp:
                            if resp.status != 200:
                                return None
                            data = await resp.json()
                        break
                    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                        # The server closed a kept-alive connection as it was reused: any correct
                        # client (the engine too) sends the request again.
                        if attempt == 2:
                            return None
            choice = data["choices"][0]
            text = choice["text"] if "text" in choice else choice["message"]["content"]
            return text, data["usage"]["completion_tokens"]

        await asyncio.gather(*(one(path, body) for path, body in openers))  # open the connections first
        t0, c0 = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(one(path, body) for path, body in bodies))
        return results, time.perf_counter() - t0, time.process_time() - c0


def run_raw(url: str, requests: list[Request], concurrency: int, extra: dict,
            openers: Sequence[Request] = ()) -> Run:
    """The floor to compare against: the least a correct asyncio client has to do."""
    bodies = [raw_body(r, extra) for r in requests]
    results, seconds, cpu = asyncio.run(_raw_all(url, bodies, concurrency, [raw_body(r, extra) for r in openers]))
    done = [r for r in results if r is not None]
    return Run("raw", seconds, len(requests), len(results) - len(done), sum(t for _, t in done), cpu)


CLIENTS = {"parafuse": run_parafuse, "raw": run_raw}


# ---- driver -----------------------------------------------------------------------------------
def measure(url: str, args: argparse.Namespace) -> dict[str, list[Run]]:
    """Warm both clients up, then alternate which goes first in each repetition."""
    extra = extra_body(args.ignore_eos)
    warm = make_requests(args.warmup, args.max_tokens, args.api, seed=1) if args.warmup else []
    for name, client in CLIENTS.items():
        if warm:
            client(url, warm, args.concurrency, extra)
            log(f"warmed up {name} with {len(warm)} requests")
    requests = make_requests(args.requests, args.max_tokens, args.api)
    # Both clients open their connections (one per request in flight) untimed: a burst of new TCP
    # connections on a loaded 2-core machine sometimes waits seconds for a SYN to be retried, which
    # would time the kernel, not the client.
    openers = connection_openers(args.concurrency, args.api)
    runs: dict[str, list[Run]] = {name: [] for name in CLIENTS}
    for rep in range(args.repetitions):
        order = list(CLIENTS) if rep % 2 == 0 else list(CLIENTS)[::-1]
        for name in order:
            run = CLIENTS[name](url, requests, args.concurrency, extra, openers)
            runs[name].append(run)
            log(f"rep {rep + 1}/{args.repetitions} {name:>8}: {run.seconds:7.2f} s  "
                f"{run.requests_per_s:8.2f} req/s  {run.tokens_per_s:9.1f} tok/s  "
                f"client cpu {run.cpu_seconds:5.2f} s  tokens={run.completion_tokens} failures={run.failures}")
    return runs


def summarize(runs: dict[str, list[Run]], args: argparse.Namespace, server_start_s: float) -> dict:
    """Medians per client, the ratio, and the checks that make the comparison valid."""
    med = {name: {"requests_per_s": statistics.median(r.requests_per_s for r in rs),
                  "tokens_per_s": statistics.median(r.tokens_per_s for r in rs),
                  "seconds": statistics.median(r.seconds for r in rs),
                  "client_cpu_s": statistics.median(r.cpu_seconds for r in rs)}
           for name, rs in runs.items()}
    tokens = {name: [r.completion_tokens for r in rs] for name, rs in runs.items()}
    failures = {name: sum(r.failures for r in rs) for name, rs in runs.items()}
    # One ratio per repetition, from the two runs made back to back: the noise they share cancels.
    paired = [p.requests_per_s / r.requests_per_s for p, r in zip(runs["parafuse"], runs["raw"])]
    ratio = statistics.median(paired)
    quartiles = statistics.quantiles(paired, n=4) if len(paired) >= 2 else [ratio] * 3
    return {
        "bench": "engine_overhead",
        "ratio": round(ratio, 4),
        "target": args.target,
        "ratio_means": "median over repetitions of (parafuse openai engine requests/s / raw aiohttp client "
                       "requests/s), each pair run back to back",
        "paired_ratios": [round(x, 4) for x in paired],
        "spread": {"min": round(min(paired), 4), "q1": round(quartiles[0], 4), "q3": round(quartiles[2], 4),
                   "max": round(max(paired), 4)},
        "ratio_of_medians": round(med["parafuse"]["requests_per_s"] / med["raw"]["requests_per_s"], 4),
        # The client's own cost, free of the server's stalls: CPU milliseconds per request, median over runs.
        "client_cpu_ms_per_request": {name: round(1000 * statistics.median(r.cpu_seconds for r in rs) / args.requests,
                                                  4) for name, rs in runs.items()},
        "meets_target": ratio >= args.target,
        "parafuse": {k: round(v, 3) for k, v in med["parafuse"].items()},
        "raw": {k: round(v, 3) for k, v in med["raw"].items()},
        "tokens_ratio": round(med["parafuse"]["tokens_per_s"] / med["raw"]["tokens_per_s"], 4),
        "completion_tokens": tokens,
        "tokens_match": len({t for ts in tokens.values() for t in ts}) == 1,
        "failures": failures,
        "runs": {name: [asdict(r) for r in rs] for name, rs in runs.items()},
        "workload": {"requests": args.requests, "concurrency": args.concurrency, "max_tokens": args.max_tokens,
                     "api": args.api, "n": 1, "temperature": 1.0, "ignore_eos": args.ignore_eos,
                     "repetitions": args.repetitions, "warmup": args.warmup},
        "server_start_s": round(server_start_s, 2),
    }


def print_table(summary: dict) -> None:
    log(f"\n{'client':>10} {'req/s':>10} {'tok/s':>10} {'median s':>10} {'client cpu s':>13}")
    for name in CLIENTS:
        m = summary[name]
        log(f"{name:>10} {m['requests_per_s']:10.2f} {m['tokens_per_s']:10.1f} {m['seconds']:10.2f} "
            f"{m['client_cpu_s']:13.3f}")
    spread = summary["spread"]
    log(f"paired ratios {summary['paired_ratios']} -> median {summary['ratio']:.3f} "
        f"(min {spread['min']:.3f}, IQR {spread['q1']:.3f}-{spread['q3']:.3f}, max {spread['max']:.3f})")
    log(f"ratio {summary['ratio']:.3f} (target {summary['target']}); completion tokens per run "
        f"{summary['completion_tokens']}; tokens match: {summary['tokens_match']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="parafuse-bench-") as workdir:
        model = args.model or tiny_model_dir(workdir)
        t0 = time.perf_counter()
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", args.server_cores)  # read by vllm-cpu only
        server = start_vllm_server(model, served_name=SERVED_NAME, max_model_len=args.max_model_len,
                                   extra_args=args.server_arg, log_dir=os.path.join(workdir, "logs"))
        try:
            server.wait()
            start_s = time.perf_counter() - t0
            log(f"vLLM server up in {start_s:.1f} s at {server.url}")
            runs = measure(server.url, args)
        except Exception:
            log("the vLLM server's last lines:\n" + server.log_tail(40))
            raise
        finally:
            server.stop()
    summary = summarize(runs, args, start_s)
    print_table(summary)
    emit(summary)
    # The numbers are only comparable when both sides did all the work.
    return 0 if not any(summary["failures"].values()) and (summary["tokens_match"] or not args.ignore_eos) else 1


if __name__ == "__main__":
    sys.exit(main())
