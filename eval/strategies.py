"""Test-time strategies that turn a pool of n graded samples into one answer per problem.

    plain       each sample on its own (accuracy = avg@n, the pass@1 estimate)
    majority    plurality vote over N samples' answers (ties split fairly)
    best_of_n   the best of N samples by a pluggable scorer
    fusion      a fusor model writes one answer from N samples (Fusion-of-N)

Majority and best-of-N at budget N are averaged over every size-N subset of the pool, or a seeded
sample of them when there are too many (`eval.subsets`); Fusion-of-N over a few seeded subsets,
one fusor call each (`fusion_subsets`).
    budget      sequential: a cap on thinking tokens, then the final answer is forced
    rethink     sequential: TTSPM's rethinking rounds; round 1 is a pool sample, round r+1 continues the
                text so far after a cue ("wait, let me check this again"); scored at r = 1, 2, 4, ... rounds
    parallel_r1, threadweaver, parathinker
                a parallel-thinking decoder (reasoning.decoders) writes each sample: n decodes
                per problem, graded like the pool, scored as one point (budget 1) whose tokens
                and critical-path tokens are the decoder's

The parallel ones read the same pool at every N, so a sweep over N costs one generation.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from eval.metrics import maj_at_k, normalize_for_vote
from reasoning.methods import METHODS
from reasoning.types import InputError

DECODED = METHODS  # every registered parallel-thinking method is a decoder strategy
STRATEGIES = ("plain", "majority", "best_of_n", "fusion", "budget", "rethink") + DECODED
PARALLEL = ("majority", "best_of_n", "fusion")


@dataclass
class PoolSample:
    """One graded sample of the pool."""

    text: str
    answer: str | None
    extractor: str
    correct: bool
    grade_reason: str
    tokens: int
    latency_s: float
    seed: int | None
    finish_reason: str | None = None  # stop | length | failed


# A scorer sees the question and the candidates and returns one score per candidate; higher wins.
Scorer = Callable[[str, Sequence[PoolSample]], Sequence[float]]
# Anything with an `answer` (None when its grader found none): a PoolSample, or a grader's Grade.
Verdict = TypeVar("Verdict")


def _shortest(question: str, samples: Sequence[PoolSample]) -> list[float]:
    """Prefer answered, short samples (short correct chains are a known signal for reasoning models)."""
    return [(s.answer is not None) * 1e9 - s.tokens for s in samples]


def _longest(question: str, samples: Sequence[PoolSample]) -> list[float]:
    return [(s.answer is not None) * 1e9 + s.tokens for s in samples]


def _agreement(question: str, samples: Sequence[PoolSample]) -> list[float]:
    """How many other samples give the same answer: best-of-N's self-consistency scorer."""
    keys = [normalize_for_vote(s.answer) if s.answer is not None else None for s in samples]
    return [0.0 if k is None else float(sum(k == o for o in keys)) for k in keys]


SCORERS: dict[str, Scorer] = {"shortest": _shortest, "longest": _longest, "agreement": _agreement}


def get_scorer(name: str) -> Scorer:
    """A built-in scorer by name, a reward model (`reward:PATH_OR_ID`, `reward-endpoint:URL`: see
    eval.reward_scorers), or your own as `package.module:function`."""
    if name in SCORERS:
        return SCORERS[name]
    from eval.reward_scorers import reward_scorer

    reward = reward_scorer(name)
    if reward is not None:
        return reward
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load scorer {name!r}: {e}") from None
    raise ValueError(f"unknown scorer {name!r}; built-in: {', '.join(SCORERS)}, reward:PATH_OR_ID, "
                     f"reward-endpoint:URL, or give module:function")


def check_scorer(name: str) -> None:
    """Refuse a malformed --scorer before any generation (a reward model is loaded later, when used)."""
    from eval.reward_scorers import parse_reward_spec

    if name in SCORERS or parse_reward_spec(name) is not None:
        return
    if ":" not in name:
        raise InputError(f"unknown scorer {name!r}; built-in: {', '.join(SCORERS)}, reward:PATH_OR_ID, "
                         f"reward-endpoint:URL, or module:function")


def majority(samples: Sequence[PoolSample]) -> float:
    """Expected correctness of the plurality answer (a tie is split over the tied answers)."""
    return maj_at_k([s.answer for s in samples], [s.correct for s in samples], len(samples))


def best_of_n(question: str, samples: Sequence[PoolSample], scorer: Scorer) -> int:
    """Index of the chosen sample; the first of equal scores wins, so the choice is reproducible."""
    scores = list(scorer(question, samples))
    if len(scores) != len(samples):
        raise ValueError(f"scorer returned {len(scores)} scores for {len(samples)} samples")
    return max(range(len(samples)), key=lambda i: (scores[i], -i))


def answer_at_rounds(rounds: Sequence[Verdict]) -> list[Verdict]:
    """The graded answer a rethinking chain stands on after each round: the last round that gave one.

    TTSPM's sequential paradigm (Wang et al., arXiv 2505.20522, "Scaling over Scaling") revises an
    answer round by round; a round that ends without an answer (cut by the token cap, or talking
    itself out of one) leaves the previous answer standing, so the chain's answer at round r is the
    latest one found in rounds 1..r (round 1's verdict when none has one yet). Rounds are pool
    samples, or any grader's verdicts on them (a second grader's, with --reference-grading).
    """
    out: list[Verdict] = []
    for r, sample in enumerate(rounds):
        out.append(sample if sample.answer is not None or r == 0 else out[-1])
    return out
