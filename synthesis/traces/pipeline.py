"""`synthesize_traces`: generate, grade, filter and write a parallel-thinking dataset folder with its card."""
from __future__ import annotations

import functools
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval.metrics import maj_at_k
from prompts import PromptLibrary, default_library
from reasoning import quiet
from reasoning.engines.base import Engine
from reasoning.formats import convert, get_format
from reasoning.formats.metrics import approx_tokens, trace_metrics
from reasoning.formats.trace import FormatError
from reasoning.run_folder import RunFolder
from synthesis.output import generator_name, markdown_table, push_to_hub, write_card, write_dataset
from synthesis.sources import load_pool
from synthesis.traces import checks
from synthesis.traces.config import TracesConfig
from synthesis.traces.generate import TraceOutcome, TracesRun

Log = Callable[[str], None]


def token_counter(engine: Engine) -> Callable[[str], int]:
    """How trace lengths are counted: the engine's tokenizer; words for a model-free engine; for a
    server with no local tokenizer (no --tokenizer), the approximation of `reasoning.formats.metrics`.

    Cached: a trace is counted piece by piece, and tags and short separators repeat in every trace."""
    if engine.kind in ("scripted", "symbolic"):
        return functools.lru_cache(maxsize=65536)(lambda text: len(text.split()))
    if engine.tokenizer_name is None:
        return approx_tokens
    tokenizer = engine.tokenizer
    return functools.lru_cache(maxsize=65536)(lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]))


def gold_text(gold) -> str | None:
    """A gold as the dataset's text column (several parts joined by commas)."""
    if gold is None:
        return None
    return ", ".join(map(str, gold)) if isinstance(gold, (list, tuple)) else str(gold)


# Rules judged before the format check: a row rejected by one of them was never format-checked.
BEFORE_FORMAT = ("empty_reply", "stage1_wrong")


def _grades(outcomes: list[TraceOutcome], method: str) -> list[dict[str, Any]]:
    """Per outcome, the grader's verdicts this method's rules need (None where there is no gold)."""
    from eval.grading.equivalence import Grader

    from eval.grading.extract import extract_answer

    asks: list[tuple[int, str, Any, str]] = []  # (outcome, verdict name, gold, text to grade)
    for k, o in enumerate(outcomes):
        if o.failure is not None:
            continue
        gold = o.problem.gold
        if method == "threadweaver":
            first, _ = extract_answer(o.sequential or "")
            if gold is not None:
                asks.append((k, "stage1_correct", gold, o.sequential or ""))
            if first is not None:  # the rewrite keeps the sequential solution's answer
                asks.append((k, "unchanged", first, o.reply or ""))
        elif gold is not None:
            asks.append((k, "correct", gold, o.reply or ""))
            asks += [(k, f"path{i}", gold, path) for i, path in enumerate(o.paths)]
    out: list[dict[str, Any]] = [{} for _ in outcomes]
    if asks:
        with Grader() as grader:
            grades = grader.grade_many([(gold, text) for _, _, gold, text in asks])
            for (k, name, _, _), grade in zip(asks, grades):
                out[k][name] = grade.correct
                out[k][name + "_answer"] = grade.answer
    return out


def judge(o: TraceOutcome, verdicts: dict[str, Any], cfg: TracesConfig, count: Callable[[str], int]) -> str | None:
    """The first reason to reject this outcome (None: keep it)."""
    if cfg.method == "parallel_r1":
        return checks.parallel_r1(o.reply, o.reply_tokens, cfg.max_response_tokens, cfg.format_mode,
                                  verdicts.get("correct"))
    if cfg.method == "threadweaver":
        stage1 = verdicts.get("stage1_correct") if o.problem.gold is not None else None
        return checks.threadweaver(o.problem.question, o.sequential, o.reply, count, stage1,
                                   verdicts.get("unchanged"))
    return checks.parathinker(verdicts.get("correct"))


def trace_text(o: TraceOutcome, cfg: TracesConfig) -> str:
    """The kept trace in the method's own format (ParaThinker's is assembled from paths and summary)."""
    if cfg.method == "parathinker":
        paths = "".join(f"<think{k}>{p}</think{k}>" for k, p in enumerate(o.paths, 1))
        return f"{paths}<summary>{(o.reply or '').strip()}</summary>"
    return o.reply or ""


def describe(text: str, fmt: str, count: Callable[[str], int]) -> tuple[list[dict[str, Any]] | None, int, int, int]:
    """(pieces, total tokens, critical-path tokens, blocks) of a kept trace, from one parse.

    The pieces (text, kind, block, branch) are what training builds masks and positions from. A trace
    the reference check accepts but the strict grammar cannot place (text between a block's tags) is
    kept, as the paper's filter keeps it, with no pieces, counted as one sequence."""
    module = get_format(fmt)
    try:
        trace = module.parse(text, **getattr(module, "STRUCTURE_ONLY", {}))
    except FormatError:
        return None, count(text), count(text), text.count("<Parallel>")
    pieces = [{"text": p.text, "kind": p.kind, "block": p.block, "branch": p.branch}
              for p in module.pieces(trace).pieces]
    metrics = trace_metrics(trace, count)
    return pieces, metrics.total_tokens, metrics.critical_path_tokens, metrics.blocks


def features():
    from datasets import Features, List, Value

    text, i64, f64 = Value("string"), Value("int64"), Value("float64")
    return Features({
        "id": text, "source": text, "problem": text, "answer": text, "method": text, "format": text, "trace": text,
        "messages": List({"role": text, "content": text}),
        "pieces": List({"text": text, "kind": text, "block": i64, "branch": i64}),
        "total_tokens": i64, "critical_path_tokens": i64, "speedup": f64, "blocks": i64,
        "sequential": text, "sequential_from": text, "paths": List(text), "summary_fixed_majority": Value("bool"),
        "prompt_tokens": i64, "completion_tokens": i64, "engine": text, "model": text, "seed": i64,
        "generator": text})


def synthesize_traces(cfg: TracesConfig, engine: Engine, out_dir: Path, library: PromptLibrary | None = None,
                      progress: bool = True, hub_repo: str | None = None, hub_private: bool = False,
                      log: Log = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Generate, grade, filter and write the dataset folder with its card; returns the statistics."""
    cfg.check()
    library = library or default_library()
    for name in (cfg.cold_start_template, cfg.solve_template, cfg.rewrite_template, cfg.summary_template):
        library.variables(name)  # a missing or broken template fails now, not after generation
    folder = RunFolder(out_dir)
    folder.start(cfg.to_dict())
    problems = []
    for source in [s.strip() for s in cfg.input.split(",") if s.strip()]:
        problems += load_pool(source, cfg.data_dir, cfg.question_field, cfg.answer_field, cfg.id_field, cfg.limit,
                              cfg.solution_field)
    log(f"{len(problems)} problems -> {cfg.method} traces ({cfg.trace_format} format)")
    quiet.freeze_gc()  # long-lived objects need no collector passes during generation
    t0 = time.perf_counter()
    with folder.store() as store:
        run = TracesRun(cfg, engine, store, library, progress)
        outcomes = run.run(problems)
    elapsed = time.perf_counter() - t0
    verdicts = _grades(outcomes, cfg.method)
    count = token_counter(engine)
    rows, rejected, failures = [], [], []
    reasons: Counter = Counter()
    fixed = 0
    generator = generator_name()
    for o, v in zip(outcomes, verdicts):
        if o.failure is not None:
            failures.append({"id": o.problem.id, "problem": o.problem.question, "error": o.failure,
                             "reply": o.reply})
            continue
        reason = judge(o, v, cfg, count)
        summary_fixed = None
        if cfg.method == "parathinker" and o.paths:
            majority = maj_at_k([v.get(f"path{i}_answer") for i in range(len(o.paths))],
                                [bool(v.get(f"path{i}")) for i in range(len(o.paths))], len(o.paths))
            summary_fixed = bool(v.get("correct")) and majority < 0.5
            fixed += bool(summary_fixed)
        if reason is not None:
            reasons[reason] += 1
            rejected.append({"id": o.problem.id, "problem": o.problem.question, "reason": reason, "reply": o.reply,
                             "sequential": o.sequential, "paths": o.paths})
            continue
        native = trace_text(o, cfg)
        text = native if cfg.trace_format == cfg.method else convert(native, cfg.method, cfg.trace_format)
        pieces, total, critical, blocks = describe(text, cfg.trace_format, count)
        rows.append({
            "id": f"traces/{cfg.method}/{o.problem.id}", "source": o.problem.benchmark, "problem": o.problem.question,
            "answer": gold_text(o.problem.gold), "method": cfg.method,
            "format": cfg.trace_format, "trace": text,
            "messages": [{"role": "user", "content": o.problem.question}, {"role": "assistant", "content": text}],
            "pieces": pieces, "total_tokens": total,
            "critical_path_tokens": critical, "speedup": total / critical if critical else 1.0,
            "blocks": blocks, "sequential": o.sequential, "sequential_from": o.sequential_from,
            "paths": o.paths, "summary_fixed_majority": summary_fixed, "prompt_tokens": o.prompt_tokens,
            "completion_tokens": o.completion_tokens, "engine": engine.kind, "model": engine.model, "seed": cfg.seed,
            "generator": generator})
    done = len(outcomes) - len(failures)
    stats = {
        "method": cfg.method, "format": cfg.trace_format, "problems": len(outcomes), "generated": done,
        "failed": len(failures), "kept": len(rows), "acceptance_rate": len(rows) / done if done else 0.0,
        "rejected_by": dict(reasons.most_common()),
        "format_valid_rate": format_valid_rate(done, reasons),
        "mean_speedup": sum(r["speedup"] for r in rows) / len(rows) if rows else 0.0,
        "kept_without_structure": sum(r["pieces"] is None for r in rows),
        "summary_fixed_majority": fixed if cfg.method == "parathinker" else None,
        "tokens": {"prompt": sum(o.prompt_tokens for o in outcomes),
                   "completion": sum(o.completion_tokens for o in outcomes),
                   "kept_trace": sum(r["total_tokens"] for r in rows)},
        "requests_sent": run.requests_sent, "requests_from_store": run.requests_from_store,
        "generation_s": round(elapsed, 2)}
    write_dataset(out_dir, rows, features())
    folder.write_rows("rejected.jsonl", rejected)
    folder.write_failures(failures)
    folder.write_stats(stats)
    write_card(out_dir, f"{cfg.method} parallel-thinking traces", card_body(stats, engine, cfg),
               ["synthetic", "parallel-thinking", cfg.method, "parafuse"], cfg.to_dict())
    if hub_repo:
        log(f"pushed to the Hub: {push_to_hub(out_dir, hub_repo, hub_private)}")
    return stats


def format_valid_rate(generated: int, reasons: Counter) -> float:
    """The share of format-checked replies that passed the format check."""
    checked = generated - sum(reasons.get(r, 0) for r in BEFORE_FORMAT)
    return (checked - reasons.get("format", 0)) / checked if checked else 0.0


def card_body(stats: dict[str, Any], engine: Engine, cfg: TracesConfig) -> str:
    rules = {"parallel_r1": "a valid format (the " + cfg.format_mode + " check), at most "
                            f"{cfg.max_response_tokens} tokens, a right answer",
             "threadweaver": "valid fork-join text, threads numbered 1..k, no thread using a sibling's result, the "
                             "sequential solution's answer unchanged, a shorter critical path",
             "parathinker": "the summary's answer is right"}[cfg.method]
    parts = [f"Parallel-thinking traces ({cfg.method}, written as {cfg.trace_format}) generated with parafuse by "
             f"`{engine.kind}:{engine.model}`. Kept when: {rules}. Each row holds the chat (`messages`), the trace, "
             "its pieces (text, kind, block, branch) and its token metrics.",
             "## Counts", markdown_table([{k: stats[k] for k in ("problems", "generated", "failed", "kept")}],
                                         ["problems", "generated", "failed", "kept"]),
             f"Acceptance rate {stats['acceptance_rate']:.3f}; format validity {stats['format_valid_rate']:.3f}; mean "
             f"per-problem speedup (total / critical-path tokens) {stats['mean_speedup']:.3f}.",
             "## Rejected, by rule", markdown_table([{"rule": k, "rows": v} for k, v in stats["rejected_by"].items()],
                                                   ["rule", "rows"]) if stats["rejected_by"] else "None.",
             "## Tokens", markdown_table([{"kind": k, "tokens": v} for k, v in stats["tokens"].items()],
                                         ["kind", "tokens"])]
    if stats["summary_fixed_majority"] is not None:
        parts.append(f"The summary was right where most paths were wrong on {stats['summary_fixed_majority']} "
                     "problems.")
    return "\n\n".join(parts)


def summary(stats: dict[str, Any], out: str) -> str:
    rejected = ", ".join(f"{k} {v}" for k, v in stats["rejected_by"].items()) or "none"
    return (f"{stats['problems']} problems: {stats['kept']} traces kept ({stats['acceptance_rate']:.1%} of "
            f"{stats['generated']} generated; {stats['failed']} failed) -> {out}/data/train.parquet; rejected: "
            f"{rejected}; mean speedup {stats['mean_speedup']:.2f}; requests: {stats['requests_sent']} sent, "
            f"{stats['requests_from_store']} from the store; generation {stats['generation_s']:.1f} s")
