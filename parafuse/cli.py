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
    return p


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
