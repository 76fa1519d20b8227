"""`parafuse synth mathfusion`, `synth fusion` and `synth traces`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reasoning.engines import (EnginePool, add_engine_args, engine_from_args, engine_identity, engine_options,
                               needs_own_engine)
from reasoning.settings import add_config_args, add_recipe_arg, config_from_args
from reasoning.types import InputError
from synthesis.config import FusionDataConfig, MathFusionConfig

MATHFUSION_EXAMPLE = """\
examples:
  # a smoke run on 50 GSM8K train problems with the local copy of the data
  parafuse synth mathfusion --input gsm8k-train --data-dir ../shared/data --limit 50 \\
      --engine openai --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --out runs/mf-gsm8k

  # the paper's scale: both pools, all three strategies, a consistency filter, pushed to the Hub
  parafuse synth mathfusion --input gsm8k-train,math-train --engine vllm --model Qwen/Qwen2.5-72B-Instruct \\
      --tensor-parallel-size 8 --min-majority-share 0.5 --out runs/mf --push-to-hub me/mathfusion-qwen

  # the same settings from a recipe file (flags given on the command line win)
  parafuse synth mathfusion --config recipe.yaml

  # the paper's settings (text-embedding-3-large pairing, one unfiltered solution, originals included);
  # any flag still overrides the preset, e.g. a local embeddings server instead of OpenAI's API
  parafuse synth mathfusion --preset paper --input gsm8k-train,math-train --engine openai \\
      --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-72B-Instruct \\
      --embeddings-base-url http://localhost:8001/v1 --embedder openai:Qwen/Qwen3-Embedding-8B --out runs/mf-paper

Rerun the same command after a crash or Ctrl-C: finished requests come from DIR/store.jsonl and
are not sent again. Changing a filter setting and rerunning regenerates nothing.
"""

FUSION_EXAMPLE = """\
examples:
  # a pool of three teachers (two samples from the first), fused by a fourth model
  parafuse synth fusion --input gsm8k-train --data-dir ../shared/data --limit 200 \\
      --teacher openai:Qwen/Qwen3-8B@http://gpu1:8000/v1*2 --teacher openai:google/gemma-3-12b-it@http://gpu2:8000/v1 \\
      --teacher vllm:meta-llama/Llama-3.1-8B-Instruct \\
      --engine openai --base-url http://gpu3:8000/v1 --model Qwen/Qwen3-32B --out runs/fusion-gsm8k

The fusor is --engine/--model; teacher specs are ENGINE:MODEL[@BASE_URL][*N][,OPTION=VALUE...]. A teacher
takes the command's engine options (--max-model-len, --dtype, ...) unless its spec sets its own
(`vllm:M*2,max-model-len=8192`); teachers and the fusor that name the same engine, model and
options share one engine (the model is loaded once).
For open-ended prompts use --template generic/user (the prompt field is --question-field).
"""


TRACES_EXAMPLE = """\
examples:
  # ThreadWeaver two-stage data on the embedded arith task, with the symbolic teacher
  parafuse eval task arith --level 3 --split train --count 2000 --out arith-train.jsonl
  parafuse synth traces --method threadweaver --input arith-train.jsonl --engine symbolic --model arith-teacher \\
      --out runs/tw-traces

  # Parallel-R1 cold-start data from GSM8K with a served teacher, strict format check, written as ThreadWeaver
  parafuse synth traces --method parallel_r1 --input gsm8k-train --data-dir ../shared/data --limit 1000 \\
      --engine openai --base-url http://localhost:8000/v1 --model Qwen/Qwen3-32B --format-mode strict \\
      --output-format threadweaver --out runs/pr1

Rerun the same command after a crash or Ctrl-C: finished requests come from DIR/store.jsonl.
Changing a filter setting and rerunning regenerates nothing.
"""


def register(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="synthesize training data: MathFusion, Fusion-of-N, parallel-thinking traces",
                           description="Data synthesis pipelines. Every run is resumable and writes a dataset "
                                       "folder (JSONL + parquet + dataset card).")
    ssub = synth.add_subparsers(dest="synth_cmd", required=True, metavar="COMMAND")
    m = ssub.add_parser("mathfusion", help="fuse pairs of similar problems into new ones, solve and filter them",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=MATHFUSION_EXAMPLE,
                        description="MathFusion: pair each seed problem with its nearest neighbour, fuse each pair "
                                    "(sequential, parallel, conditional), solve every fused problem k times, keep "
                                    "rows by answer agreement, drop near-duplicates and benchmark overlaps.")
    _common(m, MathFusionConfig)
    add_engine_args(m, prefix="solver-", inherit=True, with_model=False)  # the model is --solver-model
    m.set_defaults(func=cmd_mathfusion, parser=m)

    f = ssub.add_parser("fusion", help="Fusion-of-N data: a teacher pool answers, a fusor writes one answer",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=FUSION_EXAMPLE,
                        description="Fusion-of-N (Khairi et al.): every prompt is answered by a pool of teachers "
                                    "(N samples in all); the fusor (--engine/--model) reads all of them and writes "
                                    "one answer. For math, each candidate and the fusion are graded.")
    _common(f, FusionDataConfig, skip=("teachers",))
    f.add_argument("--teacher", action="append", default=None, dest="teachers", metavar="SPEC",
                   help="a teacher: ENGINE:MODEL[@BASE_URL][*N][,OPTION=VALUE...]; repeat for a pool (N samples from "
                        "it, default 1; OPTIONs: engine flags without `--`, e.g. max-model-len=8192)")
    f.set_defaults(func=cmd_fusion, parser=f)

    from synthesis.traces.config import TracesConfig

    t = ssub.add_parser("traces", help="parallel-thinking training traces: Parallel-R1, ThreadWeaver, ParaThinker",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRACES_EXAMPLE,
                        description="Ask a teacher for the training data of a parallel-thinking method and keep only "
                                    "what passes that method's filters (format, independence, answer, speedup); "
                                    "every rejection is recorded with its reason.")
    _common(t, TracesConfig)
    t.set_defaults(func=cmd_traces, parser=t)


def _common(p: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    add_recipe_arg(p)
    p.add_argument("--out", default=None, help="output folder (dataset, card, store); rerun to resume")
    p.add_argument("--prompts-dir", default=None, help="your template directory (overrides built-ins)")
    p.add_argument("--push-to-hub", default=None, metavar="REPO", help="also upload the dataset and card to this "
                                                                        "Hub dataset repo (token: $HF_TOKEN or login)")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(p, cls, skip=skip, group="settings")
    add_engine_args(p, model_required=False)


def explicit_settings(cls, args: argparse.Namespace, parser: argparse.ArgumentParser,
                      skip: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The field paths of `cls` that the recipe (`--config`) or the command line set: a preset fills
    in only the others."""
    from reasoning.settings import flatten, given_flags, leaves, read_yaml

    paths = set(given_flags(args, cls, skip))
    paths |= {(name,) for name in skip if getattr(args, name, None) is not None}
    if getattr(args, "config", None):
        own = {leaf.dest for leaf in leaves(cls)}
        others = tuple(a.dest for a in parser._actions if a.dest not in own and a.dest not in ("help", "config"))
        paths |= set(flatten(read_yaml(args.config), cls, str(args.config), extra_keys=others)[0])
    return paths


def _settings(cls, args: argparse.Namespace, skip: tuple[str, ...] = ()):
    cfg = config_from_args(cls, args, args.parser, skip=skip)
    if hasattr(cfg, "with_preset"):  # defaults <- preset <- recipe <- flags
        cfg = cfg.with_preset(explicit_settings(cls, args, args.parser, skip))
    if not args.model:
        raise InputError("--model is required (on the command line or as `model:` in --config)")
    if not args.out:
        raise InputError("--out is required (on the command line or as `out:` in --config)")
    cfg.check()
    return cfg


def cmd_mathfusion(args: argparse.Namespace) -> int:
    from prompts import PromptLibrary
    from synthesis.mathfusion.pipeline import synthesize_mathfusion

    cfg = _settings(MathFusionConfig, args)
    library = PromptLibrary(args.prompts_dir)
    engine = engine_from_args(args)
    solver = engine_from_args(args, "solver-", model=cfg.solver_model or args.model) \
        if needs_own_engine(args, "solver-", cfg.solver_model) else None
    try:
        stats = synthesize_mathfusion(cfg, engine, Path(args.out), solver=solver, library=library,
                                      progress=not args.no_progress, hub_repo=args.push_to_hub,
                                      hub_private=args.private)
    finally:
        engine.close()
        if solver is not None:
            solver.close()
    print(mathfusion_summary(stats, args.out), file=sys.stderr)
    return 0


def mathfusion_summary(stats: dict, out: str) -> str:
    lines = [f"{stats['jobs']} jobs: {stats['fused']} fused, {stats['kept']} rows kept -> {out}/data/train.parquet "
             f"(card {out}/README.md)",
             f"requests: {stats['requests_sent']} sent, {stats['requests_from_store']} from the store; "
             f"generation {stats['generation_s']:.1f} s; tokens "
             + ", ".join(f"{k} {v:,}" for k, v in stats["tokens"].items())]
    for r in stats["per_strategy_source"]:
        lines.append(f"  {r['strategy']:<12} {r['source']:<14} jobs {r['jobs']:>6}  fused {r.get('fused', 0):>6}  "
                     f"kept {r.get('kept', 0):>6}")
    if stats["failure_reasons"]:
        lines.append("  failures: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["failure_reasons"].items()))
                     + f" (replies in {out}/failures.jsonl)")
    if stats["removed_reasons"]:
        lines.append("  removed: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["removed_reasons"].items()))
                     + f" (rows in {out}/removed.jsonl)")
    return "\n".join(lines)


def cmd_fusion(args: argparse.Namespace) -> int:
    from prompts import PromptLibrary
    from synthesis.fusion_data import parse_teacher, summary, synthesize_fusion_data

    cfg = _settings(FusionDataConfig, args, skip=("teachers",))
    specs = [parse_teacher(spec) for spec in cfg.teachers]
    library = PromptLibrary(args.prompts_dir)
    pool = EnginePool()  # one engine per distinct (engine, model, options): `vllm:M` and `--model M` load M once
    fusor_options = engine_options(args)
    fusor_kind = fusor_options.pop("engine")
    try:
        fusor = pool.get(fusor_kind, args.model, **fusor_options)
        teachers = [(pool.get(spec.engine, spec.model, **teacher_options(spec, args, fusor_kind)), spec.n)
                    for spec in specs]
        stats = synthesize_fusion_data(cfg, teachers, fusor, Path(args.out), library=library,
                                       progress=not args.no_progress, hub_repo=args.push_to_hub,
                                       hub_private=args.private)
    finally:
        pool.close()
    print(summary(stats, args.out), file=sys.stderr)
    return 0


def teacher_options(spec, args: argparse.Namespace, fusor_kind: str) -> dict:
    """A teacher's engine options: the command's (--max-model-len, --dtype, ...), then the spec's own.

    The spec names the server (`@URL`); the command's --base-url is the fusor's. --tokenizer is the
    fusor model's, so a teacher takes it only when it is that model on the same engine."""
    options = {k: v for k, v in engine_options(args).items() if k not in ("engine", "base_url", "tokenizer")}
    options["base_url"] = spec.base_url
    if engine_identity(spec.engine, spec.model) == engine_identity(fusor_kind, args.model):
        options["tokenizer"] = args.tokenizer
    return {**options, **dict(spec.options)}


def cmd_traces(args: argparse.Namespace) -> int:
    from prompts import PromptLibrary
    from synthesis.traces import TracesConfig, summary, synthesize_traces

    cfg = _settings(TracesConfig, args)
    engine = engine_from_args(args)
    try:
        stats = synthesize_traces(cfg, engine, Path(args.out), library=PromptLibrary(args.prompts_dir),
                                  progress=not args.no_progress, hub_repo=args.push_to_hub, hub_private=args.private)
    finally:
        engine.close()
    print(summary(stats, args.out), file=sys.stderr)
    return 0
