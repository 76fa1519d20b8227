"""The records eval passes between its parts: problems, graded samples, scaling points, and the
per-problem outcomes (`Scored`) a strategy collects before they become a point.

All but `Scored` are flat dataclasses whose `to_dict()` goes straight into JSONL or
`datasets.Dataset.from_list`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Problem:
    """One benchmark item. `gold` is None when the source had no usable answer; `gold_error` says why."""

    id: str  # stable across runs: the benchmark's own id, or a hash of the question text
    question: str
    gold: str | list[str] | None  # several parts: graded as a set
    benchmark: str
    gold_error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. MATH level/subject, source line

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Grade:
    """The verdict on one prediction."""

    correct: bool
    answer: str | None  # the extracted answer (None when nothing was extracted)
    # which rule found it: boxed | final_answer | hashes | answer_is | answer_label | last_math | last_line |
    # last_number | none, with "+parts" when several answers were compared as a set
    extractor: str
    reason: str = ""  # why it was judged so: exact | numeric | math_verify | no_answer | timeout | ...

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Sample:
    """One generated, graded sample of one problem under one strategy and budget."""

    problem_id: str
    sample_index: int
    strategy: str
    budget: int  # N for parallel strategies, the thinking-token cap for budget forcing, 1 for plain
    text: str
    answer: str | None
    extractor: str
    correct: bool
    grade_reason: str
    tokens: int  # tokens that produced this sample (incl. aggregator calls; a decode: its response, inserted tags too)
    critical_path_tokens: int  # tokens on the longest dependent chain (the latency proxy)
    latency_s: float
    seed: int | None
    # The audit trail: with these, any verdict can be checked from the run folder alone.
    gold_given: Any = None  # the gold as the source gave it (field value, or the reference's last \boxed{})
    gold: str | list[str] | None = None  # the gold as parsed and graded against
    finish_reason: str | None = None  # stop | length (cut by the token cap) | failed (the decode failed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Point:
    """One (strategy, budget) configuration placed on the accuracy-vs-compute axes."""

    strategy: str
    budget: int
    accuracy: float  # mean over graded problems
    accuracy_se: float  # standard error over problems
    tokens: float  # mean tokens per problem at this budget (as `Sample.tokens` counts them)
    critical_path_tokens: float  # mean critical-path tokens per problem
    wall_s: float  # mean wall time per problem
    n_problems: int
    run: str = ""  # run label (model or run dir name) when several runs are compared
    # What `budget` counts: samples (N of a pool) | token_cap (budget forcing) | decodes (one decode of a
    # parallel-thinking decoder per sample) | rounds (sequential rethinking). Points of different axes never
    # share a budget axis in a plot.
    axis: str = "samples"
    estimator: str = ""  # how the accuracy was estimated (e.g. exact over all size-N subsets of the pool)
    resampling_se: float = 0.0  # standard error the subset resampling adds (0 when every subset was scored)
    no_answer_rate: float = 0.0  # share of scored answers with nothing extracted
    truncation_rate: float = 0.0  # share of samples cut by the token cap (finish_reason length)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Scored:
    """Per-problem outcome of one (strategy, budget): what a Point averages and a fit resamples."""

    correct: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    critical: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    no_answer: list[float] = field(default_factory=list)
    truncated: list[float] = field(default_factory=list)
    # subset estimates (eval.subsets): per problem, one subset's score variance, subsets drawn, all enumerated?
    variance: list[float] = field(default_factory=list)
    draws: list[int] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)
    axis: str = "samples"
    estimator: str = ""

    def add(self, correct: float, tokens: float, critical: float, wall: float, no_answer: float = 0.0,
            truncated: float = 0.0) -> None:
        self.correct.append(float(correct))
        self.tokens.append(tokens)
        self.critical.append(critical)
        self.wall.append(wall)
        self.no_answer.append(float(no_answer))
        self.truncated.append(float(truncated))

    def point(self, strategy: str, budget: int, run: str) -> Point:
        from eval.subsets import resampling_se

        c = np.asarray(self.correct)
        se = float(c.std(ddof=1) / np.sqrt(len(c))) if len(c) > 1 else 0.0
        return Point(strategy, budget, float(c.mean()), se, float(np.mean(self.tokens)),
                     float(np.mean(self.critical)), float(np.mean(self.wall)), len(c), run, axis=self.axis,
                     estimator=self.estimator,
                     resampling_se=resampling_se(self.variance, self.draws, self.exact) if self.variance else 0.0,
                     no_answer_rate=float(np.mean(self.no_answer)), truncation_rate=float(np.mean(self.truncated)))


def outcome_rates(samples) -> tuple[float, float]:
    """(share with no extracted answer, share cut by the token cap) of some PoolSamples."""
    count = len(samples) or 1
    return (sum(s.answer is None for s in samples) / count,
            sum(s.finish_reason == "length" for s in samples) / count)

