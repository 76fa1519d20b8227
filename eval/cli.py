"""`parafuse eval run`, `eval grade`, `eval task` and `eval report`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from eval.config import EvalConfig
from eval.grading.regrade import GradeSettings
from reasoning.engines import add_engine_args, engine_from_args, engine_identity, needs_own_engine
from reasoning.settings import add_config_args, add_recipe_arg, config_from_args
from reasoning.types import InputError

# EvalConfig fields that are not flags of `eval run`: the engine flags set engine and model, the
# run fills in template_version.
CLI_SKIP = ("engine", "model", "template_version")


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate: benchmarks, strategies, scaling curves, reports",
                        description="Benchmarks, grading, pass@k/maj@k, test-time-scaling sweeps, Pareto "
                                    "frontiers, saturation fits and reports.")
    esub = ev.add_subparsers(dest="eval_cmd", required=True, metavar="COMMAND")
    r = esub.add_parser(
        "run", help="sample a pool, grade it, score every strategy and budget (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate n samples per problem once (through the generation store, so a rerun resumes),\n"
                    "grade them, and score each strategy at each budget from that pool. Writes config.json,\n"
                    "samples.jsonl and results.json into --out.\n\nexample:\n"
                    "  parafuse eval run --benchmark gsm8k --data-dir ../shared/data --limit 50 \\\n"
                    "      --engine vllm --model Qwen/Qwen3-0.6B -n 16 --strategy plain,majority,best_of_n \\\n"
                    "      --out runs/qwen3-gsm8k\n  parafuse eval report runs/qwen3-gsm8k")
    add_recipe_arg(r)
    r.add_argument("--out", default=None, help="run directory (required, here or as `out:` in --config)")
    r.add_argument("--prompts-dir", default=None, help="your template directory (overrides built-ins)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_args(r, EvalConfig, skip=CLI_SKIP, group="settings")
    add_engine_args(r, model_required=False)
    add_engine_args(r, prefix="fusor-", inherit=True, with_model=False)  # the fusor's model is --fusor-model
    r.set_defaults(func=cmd_run, parser=r)

    grade = esub.add_parser(
        "grade", help="grade predictions you already have (JSONL in, graded JSONL out; resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Grade each line's prediction against its gold with the grader `eval run` uses (same\n"
                    "settings, same verdict). Every output row is the input row plus a `grade` object: correct,\n"
                    "answer (extracted), extractor (the extraction tier that found it) and reason. Rows are\n"
                    "written a chunk at a time: after Ctrl-C, rerun the same command and only the rest is graded.\n"
                    "\nexample:\n"
                    "  parafuse eval grade --input outputs.jsonl --gold-field answer --prediction-field output \\\n"
                    "      --out graded.jsonl")
    grade.add_argument("--input", required=True, help="JSONL file, one (gold, prediction) pair per line")
    grade.add_argument("--gold-field", required=True,
                       help="field holding the gold answer (a list: several answers, graded as a set; a.b for "
                            "nested fields)")
    grade.add_argument("--prediction-field", required=True, help="field holding the model's output text")
    grade.add_argument("--out", required=True, help="graded JSONL (resumable)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(grade, GradeSettings, group="grading")
    grade.set_defaults(func=cmd_grade, parser=grade)

    task = esub.add_parser(
        "task", help="write a generated task (arith) as JSONL, for training, synthesis or any other tool",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write problems of a generated task to a JSONL file: one record per problem with id,\n"
                    "question, answer and metadata, loadable with datasets.load_dataset('json', data_files=FILE)\n"
                    "and usable as `synth mathfusion --input FILE`. The train split never holds a test question.\n\n"
                    "example:\n  parafuse eval task arith --level 2 --split train --count 5000 --out arith-train.jsonl")
    task.add_argument("name", choices=("arith",), help="the task")
    task.add_argument("--level", type=int, default=2, help="difficulty level 1-4 (default 2)")
    task.add_argument("--split", choices=("train", "test"), default="train", help="split (default train)")
    task.add_argument("--count", type=int, default=1000, help="problems to write (default 1000)")
    task.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    task.add_argument("--out", required=True, help="JSONL file to write")
    task.add_argument("--solutions", action="store_true",
                      help="also write each problem's worked solution (the symbolic teacher's chain, ending in "
                           "\\boxed{}) as `solution`, e.g. for `synth mathfusion --include-originals "
                           "--solution-field solution`")
    task.set_defaults(func=cmd_task)

    rep = esub.add_parser("report", help="write report.md and a self-contained report.html with plots",
                          description="Compare one or more run directories: accuracy vs tokens with the Pareto "
                                      "frontier, pass@k and maj@k vs k, saturation fits, per-benchmark tables.")
    rep.add_argument("run_dirs", nargs="+", help="run directories written by `parafuse eval run`")
    rep.add_argument("--out", default=None, help="where to write the report (default: the first run directory)")
    rep.add_argument("--title", default=None, help="report title")
    rep.set_defaults(func=cmd_report)


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """The run's EvalConfig: defaults <- --config recipe <- flags; engine and model from the engine flags."""
    from eval.run import check_settings
    from prompts import PromptLibrary

    cfg = config_from_args(EvalConfig, args, args.parser, skip=CLI_SKIP)
    check_settings(cfg, PromptLibrary(args.prompts_dir))  # a typo costs a second, before the model is looked up
    if not args.model:
        raise InputError("--model is required (on the command line or as `model:` in --config)")
    if not args.out:
        raise InputError("--out is required (on the command line or as `out:` in --config)")
    cfg = dataclasses.replace(cfg, engine=args.engine, model=engine_identity(args.engine, args.model)[1])
    return cpu_sized(cfg, args)


# Without a GPU an in-process engine generates a few hundred tokens per second at best: the GPU-sized
# defaults (16 samples of up to 2048 tokens per problem) would take hours on a benchmark.
CPU_DEFAULTS = {("n",): 4, ("pool", "max_tokens"): 512}


def cpu_sized(cfg: EvalConfig, args: argparse.Namespace) -> EvalConfig:
    """CPU-sized defaults for an in-process engine on a machine with no GPU, for the settings neither the
    command line nor a recipe set; says so on stderr."""
    from reasoning.settings import given_flags

    if cfg.engine not in ("hf", "vllm") or getattr(args, "config", None):
        return cfg
    import torch

    if torch.cuda.is_available():
        return cfg
    given = given_flags(args, EvalConfig, CLI_SKIP)
    changed = {path: value for path, value in CPU_DEFAULTS.items() if path not in given}
    if not changed:
        return cfg
    pool = dataclasses.replace(cfg.pool, max_tokens=changed.get(("pool", "max_tokens"), cfg.pool.max_tokens))
    cfg = dataclasses.replace(cfg, n=changed.get(("n",), cfg.n), pool=pool)
    print("no GPU: using CPU-sized defaults " + ", ".join(f"{'.'.join(p)}={v}" for p, v in changed.items())
          + " (pass -n / --max-tokens to choose your own)", file=sys.stderr)
    return cfg


def deferred(args: argparse.Namespace, prefix: str, model: str):
    """The engine of a flag group; an in-process one (hf, vllm) loads its model only when the run's
    store lacks a request, so a fully cached rerun starts no engine."""
    from reasoning.engines import engine_options
    from reasoning.engines.deferred import DeferredEngine

    options = engine_options(args, prefix)
    if options["engine"] not in ("hf", "vllm"):
        return engine_from_args(args, prefix, model=model)
    kind, resolved = engine_identity(options["engine"], model)
    return DeferredEngine(lambda: engine_from_args(args, prefix, model=model), kind, resolved,
                          tokenizer=options.get("tokenizer"),
                          on_start=lambda: print(f"starting the {kind} engine for {resolved} (the store lacks "
                                                 f"some requests)", file=sys.stderr, flush=True))


def cmd_run(args: argparse.Namespace) -> int:
    from eval.run import EvalRun
    from prompts import PromptLibrary

    cfg = eval_config(args)  # checks the settings before any engine starts
    library = PromptLibrary(args.prompts_dir)
    engine = deferred(args, "", args.model)
    fusor = deferred(args, "fusor-", cfg.fusor_model or args.model) \
        if "fusion" in cfg.strategies and needs_own_engine(args, "fusor-", cfg.fusor_model) else None
    try:
        results = EvalRun(cfg, engine, Path(args.out), fusor=fusor, library=library,
                          progress=not args.no_progress).run()
    except RuntimeError as e:
        print(f"parafuse: {e}", file=sys.stderr)
        return 1
    finally:
        engine.close()
        if fusor:
            fusor.close()
    print(summary_table(results))
    return 0


def summary_table(results: dict) -> str:
    from eval.report import budget_label

    lines = [f"{results['label']}: {results['problems']['graded']} problems graded "
             f"({results['problems']['excluded']} excluded)", f"{'strategy':12s} {'budget':>9s} {'accuracy':>9s} "
             f"{'± se':>7s} {'tokens':>9s} {'crit tok':>9s} {'no ans':>7s} {'cut':>6s}"]
    for p in results["points"]:
        lines.append(f"{p['strategy']:12s} {budget_label(p):>9s} {p['accuracy']:>9.3f} {p['accuracy_se']:>7.3f} "
                     f"{p['tokens']:>9.1f} {p['critical_path_tokens']:>9.1f} {p.get('no_answer_rate', 0):>7.0%} "
                     f"{p.get('truncation_rate', 0):>6.0%}")
    for strategy, error in (results.get("failed_strategies") or {}).items():
        lines.append(f"{strategy:12s} failed: {error[:100]}")
    m = results["metrics"]
    lines.append("k: " + " ".join(str(k) for k in m["k"]))
    for name in ("pass@k", "maj@k", "avg@k"):
        lines.append(f"{name}: " + " ".join(f"{v:.3f}" for v in m[name]))
    return "\n".join(lines)


def cmd_grade(args: argparse.Namespace) -> int:
    from eval.grading.regrade import grade_file, summary_line

    settings = config_from_args(GradeSettings, args, args.parser)
    summary = grade_file(args.input, args.out, args.gold_field, args.prediction_field, settings,
                         progress=not args.no_progress)
    print(summary_line(summary, args.out), file=sys.stderr)
    return 0


def cmd_task(args: argparse.Namespace) -> int:
    from reasoning.jsonl import write_jsonl_atomic
    from reasoning.tasks.arith import generate

    problems = generate(args.level, args.count, args.split, args.seed)
    records = [p.to_record() for p in problems]
    if args.solutions:
        from reasoning.engines.symbolic import sequential_solution

        for record, problem in zip(records, problems):
            record["solution"] = sequential_solution(problem, problem.answer, "boxed")
    write_jsonl_atomic(args.out, records)
    independent = sum(p.independent for p in problems)
    print(f"wrote {len(problems)} arith level-{args.level} {args.split} problems to {args.out} "
          f"({independent} with independent parts)", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from eval.report import write_report

    dirs = [Path(d) for d in args.run_dirs]
    for d in dirs:
        if not d.exists():
            raise InputError(f"run folder {d} does not exist; name a folder written by `parafuse eval run --out`")
        if not (d / "results.json").exists():
            raise InputError(f"{d} has no results.json; is it a directory written by `parafuse eval run`?")
        json.loads((d / "results.json").read_text())
    md, html = write_report(dirs, Path(args.out) if args.out else dirs[0], title=args.title)
    print(f"wrote {md} and {html}")
    return 0
