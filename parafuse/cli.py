"""The `parafuse` console script: it only mounts each package's own sub-commands."""
from __future__ import annotations

import argparse
import os
import sys

from parafuse import __version__


def build_parser() -> argparse.ArgumentParser:
    from eval import cli as eval_cli
    from prompts import cli as prompts_cli
    from reasoning import cli as reasoning_cli
    from rl import cli as rl_cli
    from synthesis import cli as synthesis_cli

    p = argparse.ArgumentParser(
        prog="parafuse",
        description="LLM reasoning and data synthesis: engines, parallel thinking, fusion, training recipes "
                    "and test-time-scaling evaluation.",
        epilog="Run `parafuse COMMAND --help` for the flags of each command.")
    p.add_argument("--version", action="version", version=f"parafuse {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reasoning_cli.register(sub)
    synthesis_cli.register(sub)
    eval_cli.register(sub)
    rl_cli.register(sub)
    prompts_cli.register(sub)
    register_demo(sub)
    return p


DEMO_EXAMPLES = """examples:
  parafuse demo --out runs/demo                 # the whole loop on a CPU, about 12 min on 2 cores (make demo)
  parafuse demo --out runs/demo-smoke --smoke   # the same stages at CI sizes (about 6.5 min)
  parafuse demo --out runs/demo --print-plan    # every stage's command, nothing run
  parafuse demo --out runs/real --recipe real   # Qwen3-4B-Base, GSM8K seeds, a served teacher, vLLM, accelerate
  parafuse demo --out runs/mine --recipe my-demo.yaml   # your own sizes (same keys as parafuse/recipes/demo.yaml)

Output: DIR/README.md (what each model reached, each stage's time and command), DIR/report/ (report.html
with the Pareto frontiers and saturation fits, report.md), DIR/models/, DIR/data/, DIR/eval/, DIR/logs/.
A rerun with the same --out resumes: finished stages are skipped, the running one continues. Sizes and
how they were measured: docs/demo.md."""


def register_demo(sub) -> None:
    from parafuse.demo import RUNNERS

    demo = sub.add_parser("demo", help="the whole loop: data, SFT, GRPO, evaluation and a report (resumable)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=DEMO_EXAMPLES,
                          description="Build the arith model, synthesize its training data with the symbolic "
                                      "teacher, fine-tune a sequential and a parallel-thinking model, run a short "
                                      "GRPO stage, evaluate every model with sequential and parallel strategies, "
                                      "and write one report, all into one folder.")
    demo.add_argument("--out", required=True, help="the run folder (rerun to resume)")
    demo.add_argument("--smoke", action="store_true", help="the recipe's smoke variant (CI sizes)")
    demo.add_argument("--recipe", default=None,
                      help="a demo recipe: a YAML file, or a bundled name (demo, real; default: demo)")
    demo.add_argument("--print-plan", action="store_true", help="print every stage's command and exit")
    demo.add_argument("--stage-runner", choices=RUNNERS, default="fork",
                      help="how each stage runs: fork (a child of the demo's process, which loads torch, "
                           "transformers and TRL once: about 10 s saved per stage on a 2-core CPU; where the OS "
                           "cannot fork, subprocess) or subprocess (a fresh Python per stage); stages with a "
                           "launcher (accelerate launch) always run under it")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    import shlex
    from pathlib import Path

    from parafuse.demo import load_config, plan, run_demo

    cfg = load_config(args.recipe, "smoke" if args.smoke else None)
    if args.print_plan:
        for stage in plan(cfg):
            print(f"# {stage.name}: {stage.what}\nparafuse {shlex.join(stage.command)}")
        return 0
    run_demo(cfg, Path(args.out), echo=lambda line: print(line, file=sys.stderr, flush=True),
             runner=args.stage_runner)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from prompts import PromptError
    from reasoning.types import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InputError, PromptError) as e:
        print(f"parafuse: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("parafuse: interrupted; finished results are saved, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
