"""Sample-pool metrics: pass@k, maj@k, avg@k and token costs, computed from n graded samples.

Everything here works on samples that already exist (answers, verdicts, token counts); nothing
is regenerated, so one pool of n samples per problem gives the whole curve k = 1..n.

Conventions (the unbiased pass@k estimator of Chen et al., "Evaluating Large Language Models Trained
on Code", arXiv 2107.03374, and the avg@n / maj@k usage of math harnesses such as lighteval):
- pass@k: the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), computed as
  the stable product 1 - prod_{i=n-c+1}^{n} (1 - k/i). It averages over every k-subset of the n
  samples, so pass@1 = c/n.
- maj@k: self-consistency over k samples, averaged over the size-k subsets of the n (all of them,
  or a seeded sample when there are too many: `eval.subsets`), so maj@1 = avg@1 = pass@1 and the
  curve is not tied to which samples came first. Votes are plain string voting after the light
  normalization in `normalize_for_vote` (as lighteval's MajAtN does: no symbolic grouping), so
  "0.50" and "0.5" are one vote but "1/2" and "\\frac{1}{2}" are two. A None (or empty) answer
  never wins; if all k are None the score is 0. When several answers tie for the most votes the
  score is the fraction of the tied answers that are correct: the expected score of a uniformly
  random tie-break (not first-seen, which favours whatever was sampled first).
- avg@k: the mean accuracy of k samples of each problem, averaged over problems, with its standard
  error over problems (sample std, ddof=1, / sqrt(problems)). Averaged over every size-k subset it
  is the problem's mean over all n samples for every k: avg@n is "pass@1 estimated from n samples"
  in the DeepSeek-R1 sense. (`avg_at_k` keeps the first-k reading for callers that want it.)
- tokens at k: k x the problem's mean tokens per sample (the expected cost of k samples), and the
  critical path at k: the expected longest critical path among k samples drawn without replacement
  from the n (k samples run in parallel, so the slowest one sets the latency).
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["pass_at_k", "maj_at_k", "normalize_for_vote", "avg_at_k", "expected_max_of_k", "mean_se",
           "pool_metrics", "PoolMetrics", "COLUMNS", "per_problem_speedup"]


def _check_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {v!r}")
    return int(v)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021)."""
    n, c, k = _check_int("n", n), _check_int("c", c), _check_int("k", k)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be in [0, n={n}], got {c}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k={k} > n={n}: pass@k needs at least k samples")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


# --------------------------------------------------------------------------- voting

_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")
_SPACES = re.compile(r"\s+|\\[ ,;:!]")
_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+")
_INTEGER = re.compile(r"([+-]?)0*(\d+)")


def _trim_decimal(m: re.Match) -> str:
    frac = m.group(2).rstrip("0")
    return f"{m.group(1)}.{frac}" if frac else m.group(1)


def normalize_for_vote(ans: str | None) -> str | None:
    """The key an answer votes under: a light, purely textual normalization.

    Removes whitespace (and LaTeX spacing `\\,` `\\;` `\\!` `\\ `), `$`, `\\left`/`\\right`;
    `\\dfrac`/`\\tfrac` -> `\\frac`; trims decimal zeros ("2.50" -> "2.5", "27.0" -> "27"); for an
    answer that is a bare integer also drops thousands commas and zero padding ("1,000" -> "1000",
    "007" -> "7"). None, or an answer that normalizes to "", gives None (no vote).
    """
    if ans is None:
        return None
    s = str(ans)
    s = _LEFT_RIGHT.sub("", s)
    s = _FRAC.sub(r"\\frac", s)
    s = _SPACES.sub("", s.replace("$", ""))
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    s = _DECIMAL.sub(_trim_decimal, s)
    m = _INTEGER.fullmatch(s)
    if m:
        s = "0" if m.group(2) == "0" else (m.group(1).lstrip("+") + m.group(2))
    return s or None


def _check_k(k: Any, n: int, what: str) -> int:
    k = _check_int("k", k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k={k} > {n} {what}")
    return k


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """Expected maj@k over the first k samples, ties split fairly (see the module docstring).

    A vote group's correctness is the mean of its members' verdicts (normally all equal; if the
    grader split a group, that is the expected score of a random representative).
    """
    if len(answers) != len(correct):
        raise ValueError(f"answers ({len(answers)}) and correct ({len(correct)}) differ in length")
    k = _check_k(k, len(answers), "samples")
    return _vote([normalize_for_vote(a) for a in answers[:k]], correct[:k])


def _vote(keys: Sequence[str | None], correct: Sequence[bool]) -> float:
    """maj score of already-normalized vote keys (None = no vote), ties split fairly."""
    votes: dict[str, list[bool]] = {}
    for key, ok in zip(keys, correct):
        if key is not None:
            votes.setdefault(key, []).append(bool(ok))
    if not votes:
        return 0.0
    top = max(len(v) for v in votes.values())
    tied = [v for v in votes.values() if len(v) == top]
    return float(sum(sum(v) / len(v) for v in tied) / len(tied))


# --------------------------------------------------------------------------- averages

def mean_se(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(mean, standard error of the mean) with ddof=1; the SE is 0.0 when there is one value."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_se of no values")
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return float(x.mean()), se


def _rows(matrix: Sequence[Sequence[Any]] | np.ndarray, what: str) -> list[np.ndarray]:
    rows = [np.asarray(r, dtype=np.float64).ravel() for r in matrix]
    if not rows:
        raise ValueError(f"{what}: no problems")
    return rows


def avg_at_k(correct_matrix: Sequence[Sequence[bool]] | np.ndarray, k: int) -> tuple[float, float]:
    """(mean accuracy of the first k samples per problem, averaged over problems; SE over problems).

    Rows may differ in length (ragged lists) as long as each has at least k samples.
    """
    rows = _rows(correct_matrix, "avg_at_k")
    k = _check_k(k, min(len(r) for r in rows), "samples in the shortest row")
    return mean_se([r[:k].mean() for r in rows])


def expected_max_of_k(values: Sequence[float] | np.ndarray, k: int) -> float:
    """E[max of k values drawn without replacement from `values`] (exact, via order statistics).

    With the values sorted ascending, the i-th smallest (1-based) is the max of a random k-subset
    with probability C(i-1, k-1) / C(n, k).
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    k = _check_k(k, v.size, "values")
    return float(np.dot(_max_weights(v.size, k), v[k - 1:]))


@functools.lru_cache(maxsize=4096)
def _max_weights(n: int, k: int) -> np.ndarray:
    """P(the i-th smallest of n is the max of a random k-subset), for i = k..n."""
    total = math.comb(n, k)  # exact integers; int / int rounds once, so no overflow for large n
    w = np.array([math.comb(i - 1, k - 1) / total for i in range(k, n + 1)], dtype=np.float64)
    w.flags.writeable = False
    return w


# --------------------------------------------------------------------------- pools

_KEYS = ("answers", "correct", "tokens", "critical_path_tokens")
COLUMNS = ("k", "pass@k", "pass@k_se", "maj@k", "maj@k_se", "avg@k", "avg@k_se", "tokens",
           "critical_path_tokens", "critical_path_tokens_per_sample")


class PoolMetrics(dict):
    """pool_metrics' result: a JSON-ready dict of columns, one value per k, plus per-problem vectors.

    Columns (lists aligned with "k"): pass@k, maj@k, avg@k and their standard errors over problems
    (`*_se`), tokens, critical_path_tokens, critical_path_tokens_per_sample (the three token columns
    are left out when the pool has no token counts); scalars: n_problems, n_samples (smallest n).
    `rows()` gives the same numbers as one dict per k; `per_problem_*(k)` give the per-problem
    values behind each mean, for bootstraps over problems.
    """

    def __init__(self, answers: list[list[str | None]], correct: list[np.ndarray],
                 tokens: list[np.ndarray] | None, critical: list[np.ndarray] | None, ks: list[int]):
        super().__init__()
        self._answers = answers
        self._keys = [[normalize_for_vote(a) for a in ans] for ans in answers]
        self._correct = correct
        self._tokens = tokens
        self._critical = critical
        self.n_samples = [len(c) for c in correct]
        columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        for k in ks:
            columns["k"].append(k)
            for name, vec in (("pass@k", self.per_problem_pass(k)), ("maj@k", self.per_problem_maj(k)),
                              ("avg@k", self.per_problem_avg(k))):
                mean, se = mean_se(vec)
                columns[name].append(mean)
                columns[f"{name}_se"].append(se)
            if tokens is not None:
                columns["tokens"].append(float(self.per_problem_tokens(k).mean()))
            if critical is not None:
                columns["critical_path_tokens"].append(float(self.per_problem_critical_path(k).mean()))
                columns["critical_path_tokens_per_sample"].append(float(np.mean([c.mean() for c in critical])))
        self.update({name: col for name, col in columns.items() if name == "k" or len(col) == len(ks)})
        self["n_problems"] = len(correct)
        self["n_samples"] = min(self.n_samples)

    @property
    def ks(self) -> list[int]:
        return list(self["k"])

    @property
    def n_problems(self) -> int:
        return self["n_problems"]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per k: {"k": k, "pass@k": ..., ...}."""
        cols = [name for name in COLUMNS if name in self]
        return [{name: self[name][i] for name in cols} for i in range(len(self["k"]))]

    def at(self, k: int) -> dict[str, Any]:
        """The row for k (KeyError when k was not computed)."""
        for row in self.rows():
            if row["k"] == k:
                return row
        raise KeyError(f"k={k} not computed; computed: {self['k']}")

    def _k(self, k: int) -> int:
        return _check_k(k, min(self.n_samples), "samples for some problem")

    def per_problem_pass(self, k: int) -> np.ndarray:
        """pass@k of each problem (shape: problems)."""
        k = self._k(k)
        return np.array([pass_at_k(len(c), int(c.sum()), k) for c in self._correct])

    def per_problem_maj(self, k: int) -> np.ndarray:
        """maj@k of each problem: the mean vote over its size-k subsets (fair ties)."""
        from eval.subsets import plan

        k = self._k(k)
        out = []
        for i, (keys, c) in enumerate(zip(self._keys, self._correct)):
            subsets = plan(len(c), k, seed=0, key=f"maj@{k}/{i}").subsets
            out.append(np.mean([_vote([keys[j] for j in s], [bool(c[j]) for j in s]) for s in subsets]))
        return np.array(out)

    def per_problem_avg(self, k: int) -> np.ndarray:
        """Mean accuracy of k of each problem's samples, over all size-k subsets: the mean of all n."""
        self._k(k)
        return np.array([c.mean() for c in self._correct])

    def per_problem_tokens(self, k: int) -> np.ndarray | None:
        """k x each problem's mean tokens per sample; None when the pool has no token counts."""
        k = self._k(k)
        return None if self._tokens is None else np.array([k * t.mean() for t in self._tokens])

    def per_problem_critical_path(self, k: int) -> np.ndarray | None:
        """Each problem's expected longest critical path among k of its samples (None: no counts)."""
        k = self._k(k)
        return None if self._critical is None else np.array([expected_max_of_k(t, k) for t in self._critical])


def pool_metrics(per_problem: Sequence[dict[str, Any]], ks: Sequence[int] | None = None) -> PoolMetrics:
    """pass@k, maj@k, avg@k (+ SEs over problems) and token costs for each k, from existing samples.

    Each item holds one problem's n samples: `answers` (extracted answers, None when nothing was
    extracted), `correct` (bools) and, optionally, `tokens` and `critical_path_tokens` (ints; when
    any problem lacks them the token columns are left out). Problems may have different n; ks
    default to 1..(smallest n) and may not exceed it.

    tokens at k = mean over problems of k x the problem's mean tokens per sample;
    critical_path_tokens at k = mean over problems of the expected longest critical path among k
    samples run in parallel; critical_path_tokens_per_sample = the plain mean (the same for every k).
    """
    if not per_problem:
        raise ValueError("pool_metrics: no problems")
    answers: list[list[str | None]] = []
    correct: list[np.ndarray] = []
    for i, p in enumerate(per_problem):
        for key in ("answers", "correct"):
            if key not in p:
                raise ValueError(f"pool_metrics: problem {i} has no {key!r} (needs {', '.join(_KEYS)})")
        n = len(p["correct"])
        if n == 0:
            raise ValueError(f"pool_metrics: problem {i} has no samples")
        for key in _KEYS:
            if p.get(key) is not None and len(p[key]) != n:
                raise ValueError(f"pool_metrics: problem {i}: {key!r} has {len(p[key])} items, "
                                 f"'correct' has {n}")
        answers.append(list(p["answers"]))
        correct.append(np.asarray(p["correct"], dtype=bool))

    def column(key: str) -> list[np.ndarray] | None:
        if any(p.get(key) is None for p in per_problem):
            return None
        return [np.asarray(p[key], dtype=np.float64) for p in per_problem]

    n_min = min(len(c) for c in correct)
    ks = list(range(1, n_min + 1)) if ks is None else [_check_k(k, n_min, "samples for some problem") for k in ks]
    return PoolMetrics(answers, correct, column("tokens"), column("critical_path_tokens"), ks)


def per_problem_speedup(problems: Sequence[Sequence[tuple[float, float]]]) -> float:
    """ThreadWeaver's average speedup (its README tables): a ratio per problem, averaged over problems.

    `problems` holds, per problem, a (sequential tokens, critical-path tokens) pair per response. A
    problem's speedup is the mean of its responses' ratios, and the result the mean over problems
    (not the ratio of mean lengths, which the paper's numbers show it is not). Responses with no
    critical path and problems with no responses are skipped; with none left the speedup is 1.0.
    """
    per = []
    for responses in problems:
        ratios = [total / critical for total, critical in responses if critical > 0]
        if ratios:
            per.append(sum(ratios) / len(ratios))
    return float(sum(per) / len(per)) if per else 1.0
