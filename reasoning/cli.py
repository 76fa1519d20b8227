"""`parafuse reason ...` and `parafuse model ...` sub-commands."""
from __future__ import annotations

import argparse
import asyncio
import sys

from reasoning.engines import add_engine_args, engine_from_args, engine_identity
from reasoning.types import SamplingParams


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("-n", type=int, default=1, help="completions per prompt (default 1)")
    g.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (default 1.0)")
    g.add_argument("--max-tokens", type=int, default=512, help="cap on tokens per completion (default 512)")
    g.add_argument("--stop", action="append", default=[], metavar="STR",
                   help="stop string; repeat for several. Results say which one ended each completion")
    g.add_argument("--include-stop", action="store_true", help="keep the matched stop string in the text")
    g.add_argument("--seed", type=int, default=None,
                   help="base seed; each request gets a stable seed derived from it and its id")


def sampling_from_args(a: argparse.Namespace) -> SamplingParams:
    return SamplingParams(n=a.n, temperature=a.temperature, top_p=a.top_p, max_tokens=a.max_tokens,
                          stop=tuple(a.stop), include_stop_str_in_output=a.include_stop, seed=a.seed)


def register(sub: argparse._SubParsersAction) -> None:
    reason = sub.add_parser("reason", help="generate with any engine (hf, vllm, openai)",
                            description="Inference: engines, resumable generation, parallel-thinking decoders.")
    rsub = reason.add_subparsers(dest="reason_cmd", required=True, metavar="COMMAND")
    g = rsub.add_parser(
        "generate", help="sample completions for a JSONL file of prompts (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Sample completions for every line of --input and append each result to --out as it\n"
            "finishes. Rerun the same command after a crash or Ctrl-C: finished requests are skipped,\n"
            "failed ones are retried. Input lines hold `messages` (a chat), `prompt` (one user message)\n"
            "or `raw` (text to continue as-is), an optional `id`, and optional per-line `params`.\n\n"
            "example:\n"
            "  parafuse model tiny tiny-model\n"
            "  echo '{\"id\": \"q1\", \"prompt\": \"What is 2 + 3?\"}' > prompts.jsonl\n"
            "  parafuse reason generate --model tiny-model --input prompts.jsonl --out out.jsonl -n 4\n"
        ))
    g.add_argument("--input", required=True, help="JSONL file of prompts")
    g.add_argument("--out", required=True, help="JSONL results (the generation store; appended to, resumable)")
    g.add_argument("--template", default=None,
                   help="prompt template that builds the user message from each line's fields "
                        "(see `parafuse prompts list`)")
    g.add_argument("--prompts-dir", default=None, help="directory of your own templates (override built-ins)")
    g.add_argument("--system", default=None, help="system message to put before each prompt")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_args(g)
    add_sampling_args(g)
    g.set_defaults(func=cmd_generate)

    from reasoning.decode_cli import register as register_decode

    register_decode(rsub)

    model = sub.add_parser("model", help="model utilities (build the tiny local test model)")
    msub = model.add_subparsers(dest="model_cmd", required=True, metavar="COMMAND")
    t = msub.add_parser("tiny", help="build a tiny random-weight Qwen3-style model with all tag tokens",
                        description="Build a ~0.5M-parameter random Qwen3-style model and a locally trained "
                                    "byte-level BPE tokenizer with a chat template and every parallel-thinking "
                                    "tag as a single token. Loads offline in transformers and vLLM.")
    t.add_argument("out_dir", help="where to write the model")
    t.add_argument("--seed", type=int, default=0, help="weights and tokenizer seed (default 0)")
    t.add_argument("--hidden-size", type=int, default=128, help="hidden size; /heads must be >= 32 (default 128)")
    t.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    t.add_argument("--vocab-size", type=int, default=2048, help="tokenizer size incl. tags (default 2048)")
    t.set_defaults(func=cmd_tiny)


def cmd_tiny(a: argparse.Namespace) -> int:
    from reasoning.tiny_model import build_tiny_model

    out = build_tiny_model(a.out_dir, vocab_size=a.vocab_size, hidden_size=a.hidden_size, layers=a.layers,
                           seed=a.seed)
    print(f"tiny model written to {out}")
    return 0


def cmd_generate(a: argparse.Namespace) -> int:
    from prompts import PromptLibrary
    from reasoning.inputs import requests_from_jsonl
    from reasoning.runner import run_requests
    from reasoning.store import GenerationStore, request_key

    library = PromptLibrary(a.prompts_dir) if (a.template or a.prompts_dir) else None
    requests = requests_from_jsonl(a.input, sampling_from_args(a), template=a.template, library=library,
                                   system=a.system)
    store = GenerationStore(a.out)
    kind, model = engine_identity(a.engine, a.model)
    keys = [request_key(kind, model, r) for r in requests]
    if all(k in store for k in keys):  # nothing to do: do not pay for loading a model
        store.compact(keys)
        store.close()
        print(f"{len(requests)} requests: {len(requests)} ok ({len(requests)} already in the store), 0 failed; "
              f"nothing to generate", file=sys.stderr)
        return 0
    engine = engine_from_args(a)
    try:
        if a.engine == "openai":
            asyncio.run(_ready(engine))
        results, summary = run_requests(engine, requests, store, progress=not a.no_progress)
        if summary.failed == 0:
            store.compact(keys)
    finally:
        store.close()
        engine.close()
    print(summary.line(), file=sys.stderr)
    if summary.failed:
        print(f"{summary.failed} requests failed and are recorded in {a.out} with status=error; "
              f"rerun the same command to retry them. First errors:\n  " + "\n  ".join(summary.errors),
              file=sys.stderr)
        return 1
    return 0


async def _ready(engine) -> None:
    try:
        await engine.check_ready()
    finally:
        await engine.aclose()
