"""`parafuse reason decode`: parallel-thinking decoding of a JSONL file of prompts (resumable).

Every engine call goes through a `CachedEngine` over a generation store next to --out
(`OUT.requests.jsonl`), so a rerun after a crash or Ctrl-C replays finished requests from it
and sends only the rest. --out gets one row per prompt.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

from reasoning.engines import add_engine_args, engine_from_args, engine_identity
from reasoning.types import InputError, SamplingParams

DESCRIPTION = (
    "Decode every line of --input with a parallel-thinking method: the model's sequential text,\n"
    "a block of concurrent branch requests when it opens one, a join, and so on. One row per\n"
    "prompt goes to --out (text, per-request usage, total and critical-path tokens, wall time,\n"
    "format problems). Every engine call is kept in OUT.requests.jsonl: rerun the same command\n"
    "after a crash and nothing finished is sent again. Input lines are as for `reason generate`.\n\n"
    "example:\n"
    "  parafuse reason decode --method threadweaver --model tiny-model --input prompts.jsonl \\\n"
    "      --out decoded.jsonl --max-tokens 128 --max-thread-tokens 64 --force-open\n"
)


def _fields() -> dict[str, list[tuple[str, dataclasses.Field, Any]]]:
    """Every config field name -> [(method, field, resolved type)], over all methods."""
    from reasoning.decoders import CONFIGS

    out: dict[str, list] = {}
    for method, cls in CONFIGS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out.setdefault(f.name, []).append((method, f, hints[f.name]))
    return out


def _parser_for(tp):
    args = typing.get_args(tp)
    optional = isinstance(tp, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else tp

    def parse(text: str):
        if optional and text.lower() == "none":
            return None
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base.__name__}{' or none' if optional else ''}, "
                                             f"got {text!r}") from None
    parse.__name__ = base.__name__
    return parse


def add_method_args(p: argparse.ArgumentParser) -> None:
    """One flag per decoder setting (the union over methods); unset flags keep the method's default."""
    g = p.add_argument_group("method settings (unset: the method's default)")
    for name, entries in _fields().items():
        _, f, tp = entries[0]
        values = {repr(f2.default) for _, f2, _ in entries}
        defaults = values.pop() if len(values) == 1 else ", ".join(f"{m} {f2.default!r}" for m, f2, _ in entries)
        only = "" if len(entries) == 3 else f" [{', '.join(m for m, _, _ in entries)} only]"
        flag = "--" + name.replace("_", "-")
        if tp is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{f.metadata['help']}{only} (default {defaults})")
        else:
            g.add_argument(flag, type=_parser_for(tp), default=None, metavar=name.upper(),
                           help=f"{f.metadata['help']}{only} (default {defaults})")


def config_from_args(method: str, a: argparse.Namespace):
    from reasoning.decoders import get_decoder

    _, cls = get_decoder(method)
    mine = {f.name for f in dataclasses.fields(cls)}
    given = {name: getattr(a, name) for name in _fields() if getattr(a, name) is not None}
    foreign = sorted(set(given) - mine)
    if foreign:
        raise InputError(f"--{', --'.join(n.replace('_', '-') for n in foreign)} "
                         f"{'does' if len(foreign) == 1 else 'do'} not apply to --method {method}")
    cfg = cls(**given)
    cfg.check()
    return cfg


def register(rsub: argparse._SubParsersAction) -> None:
    from reasoning.decoders import METHODS

    d = rsub.add_parser("decode", help="parallel-thinking decoding (Parallel-R1, ThreadWeaver, ParaThinker)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION)
    d.add_argument("--method", required=True, choices=METHODS, help="decoding method")
    d.add_argument("--input", required=True, help="JSONL file of prompts (messages, prompt or raw; optional id)")
    d.add_argument("--out", required=True, help="JSONL, one row per prompt (rewritten in input order at the end)")
    d.add_argument("--template", default=None, help="prompt template that builds the user message from each "
                                                    "line's fields (see `parafuse prompts list`)")
    d.add_argument("--prompts-dir", default=None, help="directory of your own templates (override built-ins)")
    d.add_argument("--system", default=None, help="system message to put before each prompt")
    d.add_argument("--concurrency", type=int, default=8, help="prompts decoded at once (default 8)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_args(d)
    add_method_args(d)
    d.set_defaults(func=cmd_decode)


def store_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".requests.jsonl")


def cmd_decode(a: argparse.Namespace) -> int:
    from prompts import PromptLibrary
    from reasoning.cached_engine import CachedEngine
    from reasoning.decoders import DecodeResult, run_decodes
    from reasoning.inputs import requests_from_jsonl
    from reasoning.store import GenerationStore, read_jsonl

    t0 = time.perf_counter()
    cfg = config_from_args(a.method, a)
    library = PromptLibrary(a.prompts_dir) if (a.template or a.prompts_dir) else None
    requests = requests_from_jsonl(a.input, SamplingParams(), template=a.template, library=library, system=a.system)
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = [i for i in ids if i in seen or seen.add(i)]
        raise InputError(f"{a.input}: ids must be unique (repeated: {dup[:5]})")
    kind, model = engine_identity(a.engine, a.model)
    identity = {"method": a.method, "config": cfg.to_dict(), "engine": kind, "model": model}
    out = Path(a.out)
    rows: dict[str, dict] = {}
    if out.exists():
        for row in read_jsonl(out, repair_tail=True):
            if row.get("status") == "ok" and all(row.get(k) == v for k, v in identity.items()):
                rows[row["id"]] = row
    todo = [r for r in requests if r.id not in rows]
    resumed = len(requests) - len(todo)
    calls = hits = 0
    if todo:
        engine = engine_from_args(a)
        store = GenerationStore(store_path(out))
        cached = CachedEngine(engine, store)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if a.engine == "openai":
                from reasoning.cli import _ready

                asyncio.run(_ready(engine))
            with open(out, "a", encoding="utf-8") as f:

                def done(i: int, res: DecodeResult | BaseException) -> None:
                    req = todo[i]
                    if isinstance(res, DecodeResult):
                        row = {"id": req.id, "status": "ok", **identity, **res.to_dict(), "usage": res.requests}
                        row.pop("requests")
                    else:
                        row = {"id": req.id, "status": "error", **identity, "error": f"{type(res).__name__}: {res}"}
                    rows[req.id] = row
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    f.flush()

                jobs = [(r.id, r.messages if r.messages is not None else r.prompt, cfg) for r in todo]
                run_decodes(cached, a.method, jobs, concurrency=a.concurrency, on_done=done,
                            progress=not a.no_progress, desc=f"decode {a.method}")
        finally:
            calls, hits = cached.calls, cached.hits
            store.close()
            engine.close()
    ordered = [rows[i] for i in ids if i in rows]
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered), encoding="utf-8")
    tmp.replace(out)
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
