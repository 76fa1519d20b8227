"""Helpers the benches share: logging, the one JSON result line (`emit`), argument parsing, the
tiny model, a fault server in its own process.

Every bench prints progress on stderr and exactly one JSON line on stdout at the end.
"""
from __future__ import annotations

import argparse
import json
import random
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVED_NAME = "parafuse-tiny"
REPO = Path(__file__).resolve().parents[2]
WORDS = ("apples", "cost", "price", "hours", "minutes", "speed", "distance", "area", "total", "sum", "product",
         "step", "path", "case")


def log(msg: str) -> None:
    """Progress goes to stderr: stdout carries only the final JSON line."""
    print(msg, file=sys.stderr, flush=True)


def emit(summary: dict) -> None:
    """The bench's one line on stdout."""
    print(json.dumps(summary), flush=True)


def parser(description: str, **kwargs) -> argparse.ArgumentParser:
    """An argument parser that shows each option's default in --help."""
    return argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                   **kwargs)


def require_positive(p: argparse.ArgumentParser, args: argparse.Namespace, names) -> None:
    """Exit with a usage error when any of the options `names` (dest spelling) is below 1."""
    for name in names:
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")


def arithmetic_prompt(i: int, rng: random.Random) -> str:
    """A distinct short question (random filler words and operands), so prompts share no cached prefix."""
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    return f"Request {i}: {' '.join(rng.choices(WORDS, k=6))}. What is {a} + {b}?"


def tiny_model_dir(workdir: str, max_positions: int | None = None) -> str:
    """Build the tiny random model under `workdir` and return its directory."""
    from reasoning.tiny_model import build_tiny_model

    t0 = time.perf_counter()
    kwargs = {} if max_positions is None else {"max_positions": max_positions}
    out = build_tiny_model(Path(workdir) / "tiny-model", **kwargs)
    log(f"built the tiny model in {time.perf_counter() - t0:.1f} s: {out}")
    return str(out)


@contextmanager
def fault_server_process(*server_args: str, start_timeout_s: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `python -m reasoning.testing.fault_server *server_args` as a process of its own (its CPU
    then does not share a GIL with the client under test); yields (its /v1 base URL, the process)
    and stops it on exit. Its stderr goes to ours. It runs in the repository root: `-m` puts the
    working directory first on sys.path, and a bench named like a package (benches/synthesis.py)
    must not shadow it."""
    cmd = [sys.executable, "-m", "reasoning.testing.fault_server", *server_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], start_timeout_s)
        url = proc.stdout.readline().strip() if ready else ""
        if not url.startswith("http"):
            raise RuntimeError(f"the fault server printed no URL within {start_timeout_s:.0f} s "
                               f"(exit status {proc.poll()}): {' '.join(cmd)}")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
