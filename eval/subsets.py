"""Which size-N subsets of an n-sample pool a strategy at budget N is scored on.

Majority, best-of-N and Fusion-of-N at budget N are functions of N samples. Scoring them on the
first N samples of the pool gives an unbiased but needlessly noisy estimate: the curves over N
are nested and jagged, and majority@1 is one sample's verdict, not avg@1. The estimate here is
the mean over *all* C(n, N) subsets when there are few enough to enumerate, and otherwise a
seeded resampling estimate (subsets drawn uniformly, without replacement within a subset) with
its standard error. At N = 1 the exact mean is avg@1, and at N = n it is the single full pool.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reasoning.inputs import derive_seed

MAX_EXACT = 1000  # enumerate every subset up to this many; beyond, resample
RESAMPLES = 300  # subsets drawn when there are more than MAX_EXACT


@dataclass(frozen=True)
class SubsetPlan:
    """The subsets one (problem, N) is scored on."""

    subsets: tuple[tuple[int, ...], ...]
    exact: bool  # every C(n, N) subset, each once

    def describe(self, n: int, k: int) -> str:
        return (f"exact: all C({n},{k}) = {len(self.subsets)} subsets" if self.exact
                else f"resampled: {len(self.subsets)} seeded random subsets of C({n},{k}) = {math.comb(n, k)}")


def plan(n: int, k: int, seed: int, key: str, max_exact: int = MAX_EXACT, resamples: int = RESAMPLES) -> SubsetPlan:
    """All size-k subsets of range(n) when C(n, k) <= max_exact (the first one is range(k)), else
    range(k) and `resamples - 1` more drawn with a seed derived from (seed, key), so a rerun scores
    the same subsets."""
    if not 1 <= k <= n:
        raise ValueError(f"subset size {k} must lie between 1 and the pool size {n}")
    if math.comb(n, k) <= max_exact:
        return SubsetPlan(tuple(itertools.combinations(range(n), k)), True)
    # The first draw is the pool's first k samples: like any fixed subset of exchangeable samples it is a
    # uniform draw, and a run folder written when strategies read the first k keeps its fusor calls.
    rng = np.random.default_rng(derive_seed(seed, key))
    draws = (tuple(range(k)),) + tuple(tuple(sorted(int(i) for i in rng.choice(n, size=k, replace=False)))
                                       for _ in range(resamples - 1))
    return SubsetPlan(draws, False)


def mean_over(subsets: Sequence[tuple[int, ...]], score: Callable[[tuple[int, ...]], float]) -> tuple[float, float]:
    """(mean score over the subsets, the variance of one subset's score): the variance gives a
    resampling estimate its standard error."""
    values = np.array([score(s) for s in subsets], dtype=float)
    return float(values.mean()), float(values.var(ddof=1)) if len(values) > 1 else 0.0


def resampling_se(variances: Sequence[float], draws: Sequence[int], exact: Sequence[bool]) -> float:
    """Standard error that resampling adds to a mean over problems (0 where every subset was scored)."""
    terms = [v / d for v, d, e in zip(variances, draws, exact) if not e and d > 0]
    return math.sqrt(sum(terms)) / len(variances) if terms else 0.0
