"""`parafuse reason ...` and `parafuse model ...` sub-commands."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from reasoning.engines import add_engine_args, engine_from_args, engine_identity, ensure_ready
from reasoning.sampling import Sampling, sampling
from reasoning.settings import add_config_args, add_recipe_arg, config_from_args, nested, setting
from reasoning.types import InputError, SamplingParams


@dataclass
class GenerateSampling:
    """`reason generate`: how every request of the input file samples (a line's `params` override it)."""

    n: int = setting(1, "completions per prompt", flag="-n")
    sampling: Sampling = nested(sampling(temperature=1.0, top_p=1.0, max_tokens=512), "sampling of every request "
                                "(seed: the base seed each request derives a stable seed of its own from, with its "
                                "id)", prefix="")
    stop: tuple[str, ...] = setting((), "stop string; results say which one ended each completion", repeat=True)
    include_stop: bool = setting(False, "keep the matched stop string in the text")
    logprobs: bool = setting(False, "also keep each sampled token's log-prob (for training)")

    def params(self) -> SamplingParams:
        return self.sampling.params(n=self.n, stop=self.stop, include_stop_str_in_output=self.include_stop,
                                    logprobs=self.logprobs)


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
    add_recipe_arg(g)
    g.add_argument("--input", required=True, help="JSONL file of prompts")
    g.add_argument("--out", required=True, help="JSONL results (the generation store; appended to, resumable)")
    g.add_argument("--template", default=None,
                   help="prompt template that builds the user message from each line's fields "
                        "(see `parafuse prompts list`)")
    g.add_argument("--prompts-dir", default=None, help="directory of your own templates (override built-ins)")
    g.add_argument("--system", default=None, help="system message to put before each prompt")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_args(g)
    add_config_args(g, GenerateSampling, group="sampling", title_nested=False)
    g.set_defaults(func=cmd_generate, parser=g)

    from reasoning.decode_cli import register as register_decode

    register_decode(rsub)

    from reasoning.serve import register as register_serve

    register_serve(sub)

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
    t.add_argument("--preset", default="default", choices=("default", "arith"),
                   help="arith: the ~1M-parameter model sized for the arith task (4 layers, hidden 128, 4/2 heads, "
                        "digit-splitting tokenizer trained on arith text; overrides the sizes above)")
    t.add_argument("--special-tags", action="store_true",
                   help="register the tags as special tokens, as the released ThreadWeaver and ParaThinker "
                        "checkpoints do (same ids and weights as without): for testing that engines keep tags a "
                        "skip_special_tokens=True decode would delete")
    t.add_argument("--force", action="store_true", help="overwrite a model folder that is already there")
    t.set_defaults(func=cmd_tiny)


def cmd_tiny(args: argparse.Namespace) -> int:
    from reasoning.tiny_model import build_tiny_model

    target = Path(args.out_dir)
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} is a file; name a folder to write the model into")
    if (target / "config.json").exists() and not args.force:
        raise InputError(f"{target} already holds a model (config.json); pass --force to overwrite it, or name "
                         "another folder")
    if min(args.hidden_size, args.layers, args.vocab_size) < 1:
        raise InputError("--hidden-size, --layers and --vocab-size must be positive")
    try:
        out = build_tiny_model(target, vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                               layers=args.layers, seed=args.seed, preset=args.preset,
                               special_tags=args.special_tags)
    except ValueError as e:  # sizes the model cannot have (head_dim < 32, a vocabulary smaller than the tags)
        raise InputError(f"model tiny: {e}") from None
    print(f"tiny model written to {out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from prompts import PromptLibrary
    from reasoning.inputs import requests_from_jsonl
    from reasoning.runner import run_requests
    from reasoning.store import GenerationStore, request_key

    settings = config_from_args(GenerateSampling, args, args.parser)
    library = PromptLibrary(args.prompts_dir) if (args.template or args.prompts_dir) else None
    requests = requests_from_jsonl(args.input, settings.params(), template=args.template, library=library,
                                   system=args.system)
    kind, model = engine_identity(args.engine, args.model)  # a model that cannot load fails here, leaving no --out
    created = not Path(args.out).exists()
    store = GenerationStore(args.out)
    keys = [request_key(kind, model, r) for r in requests]
    if all(k in store for k in keys):  # nothing to do: do not pay for loading a model
        store.compact(keys)
        store.close()
        print(f"{len(requests)} requests: {len(requests)} ok ({len(requests)} already in the store), 0 failed; "
              f"nothing to generate", file=sys.stderr)
        return 0
    engine = None
    try:
        engine = engine_from_args(args)
        ensure_ready(engine)
    except BaseException:
        # nothing was generated: leave no empty output file behind a failed start (unreachable server, bad model)
        store.close()
        if created and Path(args.out).exists() and Path(args.out).stat().st_size == 0:
            Path(args.out).unlink()
        if engine is not None:
            engine.close()
        raise
    try:
        results, summary = run_requests(engine, requests, store, progress=not args.no_progress)
        if summary.failed == 0:
            store.compact(keys)
    finally:
        store.close()
        engine.close()
    print(summary.line(), file=sys.stderr)
    if summary.failed:
        print(f"{summary.failed} requests failed and are recorded in {args.out} with status=error; "
              f"rerun the same command to retry them. First errors:\n  " + "\n  ".join(summary.errors),
              file=sys.stderr)
        return 1
    return 0

