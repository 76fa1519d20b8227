"""`parafuse eval run` and `parafuse eval report`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from eval.config import EvalConfig
from reasoning.engines import add_engine_args, engine_from_args, make_engine


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _help(name: str) -> str:
    f = next(f for f in dataclasses.fields(EvalConfig) if f.name == name)
    return f.metadata["help"] + (f" (default {f.default})" if f.default not in (None, "", ()) else "")


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
    r.add_argument("--benchmark", default="gsm8k", help=_help("benchmark"))
    r.add_argument("--data-dir", default=None, help=_help("data_dir"))
    r.add_argument("--data", default=None, help=_help("data"))
    r.add_argument("--question-field", default="question", help=_help("question_field"))
    r.add_argument("--answer-field", default="answer", help=_help("answer_field"))
    r.add_argument("--limit", type=int, default=None, help=_help("limit"))
    r.add_argument("-n", type=int, default=16, help=_help("n"))
    r.add_argument("--strategy", default="plain,majority",
                   help="comma-separated: plain, majority, best_of_n, fusion, budget, and the parallel-thinking "
                        "decoders parallel_r1, threadweaver, parathinker (default plain,majority)")
    r.add_argument("--budgets", type=_ints, default=(), help=_help("budgets") + "; e.g. 1,2,4,8,16")
    r.add_argument("--token-budgets", type=_ints, default=(256, 512, 1024), help=_help("token_budgets"))
    r.add_argument("--budget-samples", type=int, default=4, help=_help("budget_samples"))
    r.add_argument("--temperature", type=float, default=0.6, help=_help("temperature"))
    r.add_argument("--top-p", type=float, default=0.95, help=_help("top_p"))
    r.add_argument("--max-tokens", type=int, default=2048, help=_help("max_tokens"))
    r.add_argument("--template", default="math/boxed", help=_help("template"))
    r.add_argument("--prompts-dir", default=None, help="your template directory (overrides built-ins)")
    r.add_argument("--system", default=None, help=_help("system"))
    r.add_argument("--seed", type=int, default=0, help=_help("seed"))
    r.add_argument("--scorer", default="agreement", help=_help("scorer"))
    r.add_argument("--fusor-model", default=None, help=_help("fusor_model") + "; same --engine kind")
    r.add_argument("--fusor-max-tokens", type=int, default=1024, help=_help("fusor_max_tokens"))
    r.add_argument("--allow-last-number", action="store_true", help=_help("allow_last_number"))
    r.add_argument("--grader-timeout", type=float, default=5.0, help=_help("grader_timeout"))
    r.add_argument("--epsilon", type=float, default=0.01, help=_help("epsilon"))
    r.add_argument("--out", required=True, help="run directory")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_args(r)
    r.set_defaults(func=cmd_run)

    rep = esub.add_parser("report", help="write report.md and a self-contained report.html with plots",
                          description="Compare one or more run directories: accuracy vs tokens with the Pareto "
                                      "frontier, pass@k and maj@k vs k, saturation fits, per-benchmark tables.")
    rep.add_argument("run_dirs", nargs="+", help="run directories written by `parafuse eval run`")
    rep.add_argument("--out", default=None, help="where to write the report (default: the first run directory)")
    rep.add_argument("--title", default=None, help="report title")
    rep.set_defaults(func=cmd_report)


def config_from_args(a: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        benchmark=a.benchmark, data_dir=a.data_dir, data=a.data, question_field=a.question_field,
        answer_field=a.answer_field, limit=a.limit, engine=a.engine, model=a.model, n=a.n,
        strategies=tuple(s.strip() for s in a.strategy.split(",") if s.strip()), budgets=a.budgets,
        token_budgets=a.token_budgets, budget_samples=a.budget_samples, temperature=a.temperature,
        top_p=a.top_p, max_tokens=a.max_tokens, template=a.template, system=a.system, seed=a.seed,
        scorer=a.scorer, fusor_model=a.fusor_model, fusor_max_tokens=a.fusor_max_tokens,
        allow_last_number=a.allow_last_number, grader_timeout=a.grader_timeout, epsilon=a.epsilon)


def cmd_run(a: argparse.Namespace) -> int:
    from eval.run import EvalRun
    from prompts import PromptLibrary
    from reasoning.engines import engine_identity

    cfg = config_from_args(a)
    cfg.model = engine_identity(cfg.engine, cfg.model)[1]
    engine = engine_from_args(a)
    fusor = make_engine(a.engine, a.fusor_model, base_url=a.base_url, tokenizer=a.tokenizer) \
        if a.fusor_model and "fusion" in cfg.strategies else None
    try:
        results = EvalRun(cfg, engine, Path(a.out), fusor=fusor, library=PromptLibrary(a.prompts_dir),
                          progress=not a.no_progress).run()
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
    lines = [f"{results['label']}: {results['problems']['graded']} problems graded "
             f"({results['problems']['excluded']} excluded)", f"{'strategy':12s} {'budget':>7s} {'accuracy':>9s} "
             f"{'± se':>7s} {'tokens':>9s} {'crit tok':>9s}"]
    for p in results["points"]:
        lines.append(f"{p['strategy']:12s} {p['budget']:>7d} {p['accuracy']:>9.3f} {p['accuracy_se']:>7.3f} "
                     f"{p['tokens']:>9.1f} {p['critical_path_tokens']:>9.1f}")
    m = results["metrics"]
    lines.append("k: " + " ".join(str(k) for k in m["k"]))
    for name in ("pass@k", "maj@k", "avg@k"):
        lines.append(f"{name}: " + " ".join(f"{v:.3f}" for v in m[name]))
    return "\n".join(lines)


def cmd_report(a: argparse.Namespace) -> int:
    from eval.report import write_report
    from reasoning.types import InputError

    dirs = [Path(d) for d in a.run_dirs]
    for d in dirs:
        if not (d / "results.json").exists():
            raise InputError(f"{d} has no results.json; is it a directory written by `parafuse eval run`?")
        json.loads((d / "results.json").read_text())
    md, html = write_report(dirs, Path(a.out) if a.out else dirs[0], title=a.title)
    print(f"wrote {md} and {html}")
    return 0
