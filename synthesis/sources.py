"""Seed pools: the problems synthesis starts from.

    gsm8k-train   GSM8K train (7473), Hub `openai/gsm8k` ("main", train), local `gsm8k/train.jsonl`
    math-train    MATH train (7500), Hub `DigitalLearningGmbH/MATH-lighteval` (train; the copy lighteval
                  uses), local `math/train.jsonl`; gold = the last \\boxed{} of the solution
    FILE          any JSONL/JSON file, with --question-field / --answer-field

MathFusion pairs problems within one pool (GSM8K with GSM8K, MATH with MATH), so a pool is
the unit here. Records are `eval.records.Problem`s with the same stable ids and gold parsing
as the benchmarks (a problem whose gold cannot be read keeps `gold=None`, see `eval.benchmarks`).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eval.benchmarks import BenchmarkSpec, load_file, load_spec
from eval.records import Problem
from reasoning.types import InputError

SEED_POOLS: dict[str, BenchmarkSpec] = {
    "gsm8k-train": BenchmarkSpec(
        name="gsm8k-train", hub_id="openai/gsm8k", hub_config="main", hub_split="train",
        local_path="gsm8k/train.jsonl", question_field="question", answer_field="answer",
        gold_format="gsm8k", id_field=None, size=7473, reference_field="answer",
        description="GSM8K train: grade-school word problems; gold after the last '####'."),
    "math-train": BenchmarkSpec(
        name="math-train", hub_id="DigitalLearningGmbH/MATH-lighteval", hub_config=None, hub_split="train",
        local_path="math/train.jsonl", question_field="problem", answer_field="answer",
        solution_field="solution", gold_format="math", id_field=None, size=7500, reference_field="solution",
        description="MATH train (Hendrycks et al.): competition problems; gold = last \\boxed{} of the solution."),
}


def describe_pools() -> str:
    return "\n".join(f"  {s.name:<12} {s.description} [hub {s.hub_id}; local <data-dir>/{s.local_path}]"
                     for s in SEED_POOLS.values())


def load_pool(source: str, data_dir: str | os.PathLike | None = None, question_field: str = "question",
              answer_field: str = "answer", id_field: str | None = None, limit: int | None = None,
              solution_field: str | None = None) -> list[Problem]:
    """A named seed pool (from --data-dir or the Hub) or a file of your own problems.

    A problem's worked solution, where the source has one, is in `meta["solution"]` (the whole
    GSM8K answer text, MATH's solution; for a file, `solution_field`)."""
    spec = SEED_POOLS.get(source.strip().lower())
    if spec is not None:
        return load_spec(spec, data_dir, limit)
    if Path(source).exists():
        return load_file(source, question_field, answer_field, id_field=id_field, limit=limit,
                         solution_field=solution_field)
    raise InputError(f"--input {source!r} is neither a file nor a known seed pool; known pools:\n{describe_pools()}\n"
                     "or give a JSONL file with --question-field Q --answer-field A")


@dataclass
class Pool:
    """A seed pool ready for pairing: duplicates dropped, problems without a gold counted."""

    name: str
    problems: list[Problem]
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (dropped id, kept id)
    without_answer: list[str] = field(default_factory=list)  # ids (kept: the answer only feeds checks)

    def summary(self) -> dict:
        return {"name": self.name, "problems": len(self.problems), "duplicates_dropped": len(self.duplicates),
                "without_answer": len(self.without_answer)}


def prepare_pool(problems: list[Problem], name: str, log: Callable[[str], None] | None = None) -> Pool:
    """Drop repeated questions (a problem's nearest neighbour would be its own copy) and check the size.

    A problem without a usable gold stays in the pool: fusion only needs its text. Its pairs
    skip the checks that need the answer (the conditional-fusion answer check).
    """
    from synthesis.dedup import normalize_text

    log = log or (lambda m: print(m, file=sys.stderr))
    if not problems:
        raise InputError(f"seed pool {name!r} is empty: nothing to pair")
    seen: dict[str, str] = {}
    kept, dups = [], []
    for p in problems:
        key = normalize_text(p.question)
        if key in seen:
            dups.append((p.id, seen[key]))
            continue
        seen[key] = p.id
        kept.append(p)
    if len(kept) < 2:
        raise InputError(f"seed pool {name!r} has {len(kept)} distinct problem(s) after dropping "
                         f"{len(dups)} duplicate(s); fusion pairs each problem with another, so it needs at least 2")
    no_gold = [p for p in kept if p.gold is None]
    if dups:
        log(f"{name}: dropped {len(dups)} repeated problem(s) (first kept), e.g. {dups[0][0]} = {dups[0][1]}")
    if no_gold:
        log(f"{name}: {len(no_gold)} problem(s) have no usable answer (kept; their answer checks are skipped), "
            f"first: {no_gold[0].gold_error}")
    return Pool(name, kept, dups, [p.id for p in no_gold])
