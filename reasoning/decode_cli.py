"""`parafuse reason decode`: parallel-thinking decoding of a JSONL file of prompts (resumable).

Every engine call goes through a `CachedEngine` over a generation store next to --out
(`OUT.requests.jsonl`), so a rerun after a crash or Ctrl-C replays finished requests from it
and sends only the rest. --out gets one row per prompt.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from reasoning import quiet
from reasoning.engines import add_engine_args, engine_from_args, engine_identity, ensure_ready
from reasoning.methods import METHODS, REGISTRY, get_method
from reasoning.sampling import Sampling
from reasoning.settings import Leaf, add_leaf_arg, add_recipe_arg, build, flatten, leaves, read_yaml
from reasoning.types import InputError, SamplingParams

DESCRIPTION = (
    "Decode every line of --input with a parallel-thinking method: the model's sequential text,\n"
    "a block of concurrent branch requests when it opens one, a join, and so on. One row per\n"
    "prompt goes to --out (text, per-request usage, total and critical-path tokens, wall time,\n"
    "format problems). Every engine call is kept in OUT.requests.jsonl: rerun the same command\n"
    "after a crash and nothing finished is sent again. Input lines are as for `reason generate`.\n\n"
    "example:\n"
    "  parafuse reason decode --method threadweaver --model tiny-model --input prompts.jsonl \\\n"
    "      --out decoded.jsonl --max-tokens 128 --max-thread-tokens 64 --force-open\n\n"
    "Every method takes the same caps: --max-tokens each main request (ParaThinker, which has none:\n"
    "each path), --max-path-tokens or its other name --max-thread-tokens each path or thread,\n"
    "--max-summary-tokens each summary, --max-total-tokens the main requests' running total. A\n"
    "setting a method has no request for is refused (ThreadWeaver's summary cap, ParaThinker's\n"
    "--force-open: its paths always open at the prompt).\n\n"
    "A line's `params` (temperature, top_p, max_tokens, seed) override the sampling settings for\n"
    "that prompt. Every row keeps the trace's segments: each piece of the text, whether the model\n"
    "generated it or the decoder inserted it, and the generated pieces' token ids (and log-probs\n"
    "with --logprobs), which is what a trainer needs to score a rollout without re-tokenizing.\n"
)


# What the shared flags mean in a decode, over every method (each config's own help speaks of one).
DECODER_SAMPLING_HELP = {
    "sampling.max_tokens": "cap on each main request: the model's own text before, between and after the parallel "
                           "blocks (ThreadWeaver: also the continuation after each join). ParaThinker has no main "
                           "request: there it caps each path unless --max-path-tokens is set. Paths, threads and "
                           "summaries have their own caps below",
    "sampling.seed": "base seed: each request derives its own from it, the decode key, its role, block and branch "
                     "(none: unseeded)",
    "max_total_tokens": "response-length cap on the main requests: each is cut to what is left of it, and none is "
                        "issued once this many tokens were generated in all (a forked block still runs and is "
                        "summarized); none = no cap. ParaThinker: a cap on all its tokens, paths and summary (the "
                        "summary keeps one path's share)",
    "max_path_tokens": "cap on each branch request: a Parallel-R1 or ParaThinker path, a ThreadWeaver thread (the "
                       "same setting as --max-thread-tokens; ParaThinker's none = --max-tokens)",
    "max_thread_tokens": "the same setting as --max-path-tokens: cap on each branch request (path or thread)",
    "max_summary_tokens": "cap on each summary request; ThreadWeaver refuses it (it has no summary request: what "
                          "follows a join is a main request, capped by --max-tokens)",
    "force_open": "test/bench aid: the decoder itself opens the first parallel block instead of waiting for the "
                  "model to, so a model that never emits the tags still forks; ParaThinker refuses it (its paths "
                  "always open at the prompt)",
}
# Every method takes both spellings of the per-branch cap; each maps onto the method's own `branch_cap`.
BRANCH_CAPS = ("max_path_tokens", "max_thread_tokens")


def _leaves_by_flag() -> dict[str, list[tuple[str, Leaf]]]:
    """Every decoder setting (by its dotted name) -> [(method, leaf)], over the registered methods."""
    out: dict[str, list[tuple[str, Leaf]]] = {}
    for name, method in REGISTRY.items():
        for leaf in leaves(method.config_class):
            out.setdefault(leaf.dest, []).append((name, leaf))
    return out


def add_method_args(parser: argparse.ArgumentParser) -> None:
    """One flag per decoder setting (the union over methods); unset flags keep the method's default."""
    group = parser.add_argument_group("method settings (unset: the method's default)")
    for entries in _leaves_by_flag().values():
        _, leaf = entries[0]
        if leaf.dest in BRANCH_CAPS:  # every method has one, under one name or the other
            entries = [(m, _branch_leaf(m)) for m in REGISTRY]
        defaults = {repr(e.default) for _, e in entries}
        shown = defaults.pop() if len(defaults) == 1 else ", ".join(f"{m} {e.default!r}" for m, e in entries)
        only = "" if len(entries) == len(REGISTRY) else f" [{', '.join(m for m, _ in entries)} only]"
        text = DECODER_SAMPLING_HELP.get(leaf.dest, leaf.field.metadata["help"])
        help_ = f"{text}{only} (default {shown})"
        add_leaf_arg(group, leaf, help_)


def _branch_leaf(method: str) -> Leaf:
    m = get_method(method)
    return next(leaf for leaf in leaves(m.config_class) if leaf.dest == m.branch_cap)


def _flag(dest: str) -> str:
    return "--" + dest.split(".")[-1].replace("_", "-")


def _branch_cap(method: str, given: dict[str, Any], where: str) -> dict[str, Any]:
    """`given` with --max-path-tokens / --max-thread-tokens (or their recipe keys) moved onto the
    method's own branch cap; the two set to different values is an error."""
    values = {d: given.pop(d) for d in BRANCH_CAPS if d in given}
    if len(set(values.values())) > 1:
        raise InputError(f"{where}: {' and '.join(_flag(d) for d in values)} are the same setting (the cap on each "
                         f"path or thread); give one value")
    if values:
        given[get_method(method).branch_cap] = next(iter(values.values()))
    return given


def _refuse(method: str, names: list[str], where: str = "") -> None:
    """An InputError for settings `method` does not have or ignores, saying why and who has them."""
    refuses = get_method(method).refuses
    why = []
    for name in names:
        if name in refuses:
            why.append(f"{_flag(name)} does not apply to --method {method}: {refuses[name]}")
        else:
            owners = [m for m, _ in _leaves_by_flag().get(name, ())]
            why.append(f"{_flag(name)} does not apply to --method {method}"
                       + (f" (a setting of {', '.join(owners)})" if owners else ""))
    raise InputError((f"{where}: " if where else "") + "; ".join(why))


def config_from_args(method: str, args: argparse.Namespace):
    """The method's decoder config: its defaults <- the --config recipe <- the flags given.

    Every method takes the same cap flags: --max-tokens (main requests; ParaThinker's paths),
    --max-path-tokens = --max-thread-tokens (each branch), --max-summary-tokens, --max-total-tokens.
    A setting the method does not have, or has but ignores (`Method.refuses`), is an InputError.
    """
    m = get_method(method)
    cls = m.config_class
    mine = {leaf.dest for leaf in leaves(cls)}
    defaults = {leaf.dest: leaf.default for leaf in leaves(cls)}
    values: dict[tuple[str, ...], Any] = {}
    if getattr(args, "config", None):
        recipe = _branch_cap(method, {str(k).replace("-", "_"): v for k, v in read_yaml(args.config).items()},
                             str(args.config))
        found, _ = flatten(recipe, cls, str(args.config))
        refused = [".".join(p) for p, v in found.items() if ".".join(p) in m.refuses and v != defaults[".".join(p)]]
        if refused:
            _refuse(method, refused, str(args.config))
        values.update(found)
    given = {dest: getattr(args, dest) for dest in _leaves_by_flag() if getattr(args, dest, None) is not None}
    given = _branch_cap(method, given, "the command line")
    foreign = sorted((set(given) - mine) | {d for d in set(given) & set(m.refuses) & mine if given[d] != defaults[d]})
    if foreign:
        _refuse(method, foreign)
    values.update({tuple(dest.split(".")): value for dest, value in given.items()})
    cfg = build(cls, values)
    cfg.check()
    return cfg


# Per-line `params` a decode honours: they set the line's sampling block (n, stop and the rest are the decoder's).
LINE_PARAMS = ("temperature", "top_p", "max_tokens", "seed")


def line_config(cfg, params: Any, where: str):
    """`cfg` with a line's `params` applied to its sampling block; other params are an error naming the line."""
    if not params:
        return cfg
    if not isinstance(params, dict):
        raise InputError(f"{where}: field `params` must be an object of sampling params")
    other = sorted(set(params) - set(LINE_PARAMS))
    if other:
        raise InputError(f"{where}: field `params`: {', '.join(other)} cannot be set per line in a decode (the "
                         f"decoder sets them per request); allowed: {', '.join(LINE_PARAMS)}")
    found, _ = flatten(params, Sampling, f"{where}: field `params`")
    block = dataclasses.replace(cfg.sampling, **{path[0]: value for path, value in found.items()})
    return dataclasses.replace(cfg, sampling=block)


def register(rsub: argparse._SubParsersAction) -> None:
    d = rsub.add_parser("decode", help="parallel-thinking decoding (Parallel-R1, ThreadWeaver, ParaThinker)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION)
    d.add_argument("--method", required=True, choices=METHODS, help="decoding method")
    add_recipe_arg(d, "the method's settings: nested `sampling: {temperature: 0.6}` or flat")
    d.add_argument("--input", required=True, help="JSONL file of prompts (messages, prompt or raw; optional id)")
    d.add_argument("--out", required=True, help="JSONL, one row per prompt (rewritten in input order at the end)")
    d.add_argument("--template", default=None, help="prompt template that builds the user message from each "
                                                    "line's fields (see `parafuse prompts list`); `method` = the "
                                                    "method's own prompt (methods/METHOD). Unset: lines that give "
                                                    "only a `question` get the method's own prompt; messages, "
                                                    "prompt and raw lines are sent as written")
    d.add_argument("--prompts-dir", default=None, help="directory of your own templates (override built-ins)")
    d.add_argument("--system", default=None, help="system message to put before each prompt")
    d.add_argument("--concurrency", type=int, default=8, help="prompts decoded at once (default 8)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_args(d)
    add_method_args(d)
    d.set_defaults(func=cmd_decode)


def method_template(method: str, given: str | None, input_path: str) -> str | None:
    """The template a decode renders lines with: `method` names the method's own prompt; with none given, a
    file whose lines hold no prompt of their own (messages, prompt, raw) gets the method's own prompt too."""
    own = get_method(method).prompt_templates[0]
    if given == "method":
        return own
    if given:
        return given
    from reasoning.jsonl import read_jsonl

    try:
        rows = read_jsonl(input_path)
    except (OSError, InputError):
        return None  # requests_from_jsonl reports the file's problem
    if rows and all(isinstance(r, dict) and "question" in r and not {"messages", "prompt", "raw"} & set(r)
                    for r in rows):
        return own
    return None


def store_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".requests.jsonl")


def cmd_decode(args: argparse.Namespace) -> int:
    from prompts import PromptLibrary
    from reasoning.cached_engine import CachedEngine
    from reasoning.decoders import DecodeResult, run_decodes
    from reasoning.inputs import requests_from_jsonl
    from reasoning.jsonl import read_jsonl, write_jsonl_atomic
    from reasoning.store import GenerationStore

    t0 = time.perf_counter()
    quiet.for_run(progress=not args.no_progress)
    cfg = config_from_args(args.method, args)
    template = method_template(args.method, args.template, args.input)
    library = PromptLibrary(args.prompts_dir) if (template or args.prompts_dir) else None
    requests = requests_from_jsonl(args.input, SamplingParams(), template=template, library=library,
                                   system=args.system)
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = [i for i in ids if i in seen or seen.add(i)]
        raise InputError(f"{args.input}: ids must be unique (repeated: {dup[:5]})")
    # A line's own `params` set that prompt's sampling block.
    lines = read_jsonl(args.input)
    configs = [line_config(cfg, line.get("params"), f"{args.input}:{n}") for n, line in enumerate(lines, 1)]
    kind, model = engine_identity(args.engine, args.model)

    def identity(i: int) -> dict[str, Any]:
        return {"method": args.method, "config": configs[i].to_dict(), "engine": kind, "model": model}

    # Resume: rows already in --out for the same prompt and settings are kept as they are.
    out = Path(args.out)
    rows: dict[str, dict] = {}
    if out.exists():
        wanted = {rid: identity(i) for i, rid in enumerate(ids)}
        for row in read_jsonl(out, repair_tail=True):
            mine = wanted.get(row.get("id"))
            if row.get("status") == "ok" and mine and all(row.get(k) == v for k, v in mine.items()):
                rows[row["id"]] = row
    todo = [i for i, r in enumerate(requests) if r.id not in rows]
    resumed = len(requests) - len(todo)
    calls = hits = 0
    if todo:
        engine = engine_from_args(args)
        store = GenerationStore(store_path(out))
        cached = CachedEngine(engine, store)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            ensure_ready(engine)
            with open(out, "a", encoding="utf-8") as sink:

                def done(job: int, res: DecodeResult | BaseException) -> None:
                    i = todo[job]
                    if isinstance(res, DecodeResult):
                        row = {"id": ids[i], "status": "ok", **identity(i), **res.to_dict(), "usage": res.requests}
                        row.pop("requests")
                    else:
                        row = {"id": ids[i], "status": "error", **identity(i), "error": f"{type(res).__name__}: {res}"}
                    rows[ids[i]] = row
                    sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                    sink.flush()

                jobs = [(ids[i], requests[i].messages if requests[i].messages is not None else requests[i].prompt,
                         configs[i]) for i in todo]
                run_decodes(cached, args.method, jobs, concurrency=args.concurrency, on_done=done,
                            progress=not args.no_progress, desc=f"decode {args.method}")
        finally:
            calls, hits = cached.calls, cached.hits
            store.close()
            engine.close()
    ordered = [rows[i] for i in ids if i in rows]
    write_jsonl_atomic(out, ordered)
    ok = [r for r in ordered if r["status"] == "ok"]
    failed = [r for r in ordered if r["status"] != "ok"]
    print(summary_line(ok, len(failed), resumed, calls, hits, time.perf_counter() - t0), file=sys.stderr)
    if failed:
        print(f"{len(failed)} prompts failed (rows with status=error in {out}); rerun the same command to retry "
              f"them. First: {failed[0]['id']}: {failed[0]['error']}", file=sys.stderr)
        return 1
    return 0


def summary_line(ok: list[dict], failed: int, resumed: int, calls: int, hits: int, elapsed: float) -> str:
    n = max(len(ok), 1)
    total = sum(r["total_tokens"] for r in ok)
    crit = sum(r["critical_path_tokens"] for r in ok)
    invalid = sum(1 for r in ok if r["validation_errors"])
    return (f"{len(ok) + failed} prompts: {len(ok)} decoded ({resumed} already in --out), {failed} failed; "
            f"engine requests sent {calls}, answered from the store {hits}; generated tokens {total:,} "
            f"(mean {total / n:,.1f}, critical path {crit / n:,.1f}, blocks {sum(r['blocks'] for r in ok) / n:.2f}); "
            f"mean wall {sum(r['wall_s'] for r in ok) / n:.2f} s; {invalid} with format problems; "
            f"{elapsed:.1f} s in all")
