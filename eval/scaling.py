"""Test-time-scaling analysis: Pareto frontiers and TTSPM-style saturation fits.

The saturation model
--------------------
TTSPM (Wang et al., arXiv 2505.20522) models both parallel sampling (N i.i.d. candidates, Hit@N)
and sequential rethinking (N revision rounds, first success ~ Geometric) with one saturating form.
This module uses

    F(N) = F_max * (1 - (1 - p)^N),      0 <= F_max <= 1,  0 < p <= 1,

where ``p`` is the per-sample (or per-round) success probability and ``F_max`` the attainable
ceiling.

What we derived rather than read (from the model of "Scaling over Scaling: Exploring Test-Time Scaling
Pareto in Large Reasoning Models", arXiv 2505.20522):

* **The F_max factor is ours.** The summaries of the paper we could check give the bare
  ``1 - (1 - p)^N``. That form forces every curve towards 100 %, which no real benchmark curve
  does: some problems are never solved, and majority vote or a fusor can settle on a wrong
  answer. ``F_max`` absorbs that. With ``F_max = 1`` the form reduces to the paper's bare one.
* **The discrete saturation budget N* is ours.** We difference the model instead of
  differentiating it. The marginal gain of one more sample is

      dF(N) = F(N+1) - F(N) = F_max * p * (1 - p)^N,

  and N* is the smallest integer N >= 0 with ``dF(N) < epsilon``: after N* samples the next one
  is worth less than epsilon. Solving gives ``N > x`` with ``x = ln(eps / (F_max p)) / ln(1 - p)``,
  so ``N* = max(0, floor(x) + 1)``. The digest writes ``ceil(x)``. The two agree except when x is
  an exact integer: there ``ceil(x)`` is the N whose gain *equals* epsilon. We use the strict
  "<" so that the closed form and a brute-force search over N always agree.

Why the discrete difference rather than the derivative: budgets are integers (there is no 2.5th
sample), and the operational question, "is the next sample worth its cost?", is exactly
F(N+1) - F(N). The derivative ``-F_max ln(1-p) (1-p)^N`` overstates that gain because
``-ln(1-p) >= p``, so it saturates later, and badly so for large p. At p = 1 it is not even
defined, while the difference gives the obvious answer: one sample reaches the ceiling.

Edge cases of ``saturation_budget`` (documented and tested):

* ``F_max * p < epsilon``: even the first sample gains less than epsilon, so N* = 0. This
  includes ``F_max = 0`` (flat zero curve) and ``p = 0`` (never solved).
* ``p = 1``: dF(0) = F_max and dF(N >= 1) = 0, so N* = 1 when F_max >= epsilon, otherwise 0.
  The digest's "p >= 1 -> 0" would say that not even one sample is worth drawing, which is wrong
  when F(1) = F_max > 0.
* ``F_max * p == epsilon`` exactly (with p < 1): dF(0) = epsilon is not < epsilon, so N* = 1.
* ``epsilon <= 0``: no budget has a gain below it (the gains are >= 0), so ValueError.

Which curves are fitted
-----------------------
TTSPM's derivation is about Hit@N, the chance that at least one of N candidates is right; its
unbiased estimate is pass@N (coverage), so ``eval run`` fits pass@N twice: with ``F_max = 1`` (the
paper's bare form, ``fit_saturation(..., f_max=1.0)``) and with ``F_max`` free (ours). It fits the
same form to the selection curves (majority, best-of-N, fusion at N) as an empirical saturating
summary: per problem, majority accuracy is not of this form (it falls with N when a problem's p < 1/2),
so those p are summaries, not per-sample success rates. The sequential paradigm's curve (rethink
accuracy after r rounds, ``1 - (1 - p_rethink)^r`` in TTSPM) is fitted on its own rounds axis.
Every fit in results.json says which curve it was fitted to.

Fitting
-------
``fit_saturation`` fits (F_max, p) by bounded least squares on the mean accuracy curve over
problems. A grid over p is profiled first, with F_max solved in closed form, which avoids the
local minima and the flat directions of the two-parameter problem. ``scipy.optimize.least_squares``
then polishes the best grid point. It reports 95 % percentile-bootstrap intervals from
resampling problems (rows). Two caveats:

* The mean of heterogeneous per-problem curves is *not* exactly of this form (section 3.2 of the
  digest). The fit is a two-parameter summary of the dataset curve, not a per-problem model.
* The bootstrap covers problem-sampling noise only: not model misspecification, and not
  correlation between samples (low temperature). When the curve is already flat at the smallest
  budget, p is only bounded from below, and its interval says so by reaching 1.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

__all__ = [
    "COSTS",
    "SaturationFit",
    "fit_saturation",
    "pareto_frontier",
    "saturation_budget",
    "saturation_curve",
]

COSTS = ("tokens", "critical_path_tokens", "wall_s")

P_MIN = 1e-6  # lower bound on p in the fit; below it F_max and p trade off along a straight line
_P_GRID = np.concatenate([[1.0], np.geomspace(1.0, P_MIN, 400)[1:]])  # descending: ties go to larger p


# ----------------------------------------------------------------------------------------------
# Pareto frontier


def _value(point: Any, name: str) -> float:
    if isinstance(point, Mapping):
        v = point[name]
    else:
        v = getattr(point, name)
    return float("nan") if v is None else float(v)


def pareto_frontier(points: Sequence[Any], cost: str = "tokens") -> list[bool]:
    """Flag the points on the (cost down, accuracy up) Pareto frontier.

    ``points`` are ``Point`` records, or mappings with the same keys, from any mix of strategies
    and runs. ``cost`` names the cost attribute: ``tokens``, ``critical_path_tokens`` or
    ``wall_s``. A point is on the frontier (True) unless another point has cost <= and accuracy
    >= with at least one of the two strict. Exact duplicates do not dominate each other, so both
    stay on the frontier. A point with a NaN or missing cost or accuracy is never on the frontier
    and dominates nothing.

    O(n log n): sort by cost, then sweep groups of equal cost while tracking the best accuracy at
    strictly lower cost.
    """
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    n = len(points)
    c = np.array([_value(p, cost) for p in points], dtype=float)
    a = np.array([_value(p, "accuracy") for p in points], dtype=float)
    on = [False] * n
    valid = [i for i in range(n) if np.isfinite(c[i]) and np.isfinite(a[i])]
    valid.sort(key=lambda i: c[i])
    best_lower = -math.inf  # best accuracy among points with strictly lower cost
    g = 0
    while g < len(valid):
        h = g
        while h < len(valid) and c[valid[h]] == c[valid[g]]:
            h += 1
        group = valid[g:h]
        group_max = max(a[i] for i in group)
        for i in group:
            on[i] = a[i] == group_max and a[i] > best_lower
        best_lower = max(best_lower, group_max)
        g = h
    return on


# ----------------------------------------------------------------------------------------------
# The saturation model


def saturation_curve(n: Any, f_max: float, p: float) -> Any:
    """F(N) = f_max * (1 - (1 - p)^N), elementwise over ``n``; a float for a scalar ``n``."""
    arr = np.asarray(n, dtype=float)
    out = f_max * (1.0 - np.power(1.0 - p, arr))  # numpy: 0.0 ** 0 == 1, so F(0) == 0 at p == 1
    return float(out) if out.ndim == 0 else out


def saturation_budget(f_max: float, p: float, epsilon: float) -> int:
    """Smallest integer N >= 0 whose next-sample gain F(N+1) - F(N) = f_max p (1-p)^N is < epsilon.

    Closed form ``max(0, floor(ln(eps/(f_max p)) / ln(1-p)) + 1)``, then checked against the gains
    themselves (``f_max * p * (1-p)**N < epsilon``), so float rounding in the logarithms cannot
    move it by one. Edge cases (see the module
    docstring): ``f_max * p < epsilon`` gives 0; ``p == 1`` gives 1 (or 0 if ``f_max < epsilon``);
    ``epsilon <= 0`` raises ValueError.
    """
    f_max, p, epsilon = float(f_max), float(p), float(epsilon)
    if not (np.isfinite(f_max) and np.isfinite(p) and np.isfinite(epsilon)):
        raise ValueError(f"non-finite argument: f_max={f_max}, p={p}, epsilon={epsilon}")
    if epsilon <= 0:
        raise ValueError("epsilon must be > 0: every gain is >= 0, so none is below epsilon <= 0")
    if f_max < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"need f_max >= 0 and 0 <= p <= 1, got f_max={f_max}, p={p}")
    if f_max * p < epsilon:  # includes f_max == 0 and p == 0
        return 0
    if p == 1.0:
        return 1  # dF(0) = f_max >= epsilon, dF(N >= 1) = 0

    q = 1.0 - p

    def below(k: int) -> bool:  # dF(k) < epsilon; an underflow to 0 is still correctly "below"
        return f_max * p * q**k < epsilon

    x = math.log(epsilon / (f_max * p)) / math.log1p(-p)  # >= 0 here
    k = max(0, math.floor(x) + 1)
    while k > 0 and below(k - 1):
        k -= 1
    while not below(k):
        k += 1
    return k


# ----------------------------------------------------------------------------------------------
# Fitting


@dataclass
class SaturationFit:
    """A fit of F(N) = f_max (1 - (1-p)^N) to a mean accuracy curve, with bootstrap intervals.

    ``*_ci`` are 95 % percentile-bootstrap intervals over problems, or None when n_boot == 0.
    ``n_star`` is ``saturation_budget(f_max, p, epsilon)``. ``rmse`` is the root mean squared
    residual of the fitted curve on ``observed``, the mean accuracy at each of ``budgets``.
    """

    f_max: float
    p: float
    f_max_ci: tuple[float, float] | None
    p_ci: tuple[float, float] | None
    n_star: int
    n_star_ci: tuple[int, int] | None
    epsilon: float
    rmse: float
    budgets: list[int]
    observed: list[float]
    n_boot: int
    f_max_fixed: bool = False  # F_max was held at its given value (the bare form at 1.0), not fitted

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("f_max_ci", "p_ci", "n_star_ci"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SaturationFit:
        kw = {f.name: d.get(f.name) for f in dataclasses.fields(cls)}
        kw["f_max_fixed"] = bool(kw["f_max_fixed"])  # absent in fits written before F_max could be fixed
        for k in ("f_max_ci", "p_ci", "n_star_ci"):
            if kw[k] is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def curve(self, n: Any) -> Any:
        return saturation_curve(n, self.f_max, self.p)


def _profile_grid(y: np.ndarray, budgets: np.ndarray, f_fixed: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row of y (curves) and each grid p: the best F_max in [0, 1] (or `f_fixed`) and its SSE.

    For fixed p the model is linear in F_max, F = F_max g with g = 1 - (1-p)^N, so the optimum is
    clip(g.y / g.g, 0, 1) (the SSE is a parabola in F_max, so clipping is exact).
    Returns (p_best, f_best, sse_best), one per row.
    """
    g = 1.0 - np.power(1.0 - _P_GRID[:, None], budgets[None, :])  # (grid, B)
    gg = np.einsum("kb,kb->k", g, g)  # > 0: every budget >= 1
    gy = y @ g.T  # (rows, grid)
    f = np.clip(gy / gg, 0.0, 1.0) if f_fixed is None else np.full_like(gy, f_fixed)
    sse = np.einsum("rb,rb->r", y, y)[:, None] - 2.0 * f * gy + f * f * gg
    j = np.argmin(sse, axis=1)  # the first minimum, i.e. the largest p among ties
    r = np.arange(y.shape[0])
    return _P_GRID[j], f[r, j], sse[r, j]


def _polish(y: np.ndarray, budgets: np.ndarray, f0: float, p0: float, sse0: float,
            fixed: bool = False) -> tuple[float, float, float]:
    """Refine a grid optimum with bounded least squares; keep the grid point unless strictly better.

    `fixed`: F_max stays at f0 and only p moves."""

    def model(f: float, p: float) -> np.ndarray:
        return f * (1.0 - np.power(1.0 - p, budgets)) - y

    def dp(f: float, p: float) -> np.ndarray:
        return f * budgets * np.power(1.0 - p, budgets - 1.0)

    p_start = min(max(p0, P_MIN * 1.001), 1.0 - 1e-9)
    try:
        if fixed:
            res = least_squares(lambda x: model(f0, x[0]), [p_start], jac=lambda x: dp(f0, x[0])[:, None],
                                bounds=([P_MIN], [1.0]), method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12,
                                max_nfev=200)
            x = np.array([f0, res.x[0]])
        else:
            res = least_squares(lambda x: model(x[0], x[1]), [min(max(f0, 1e-9), 1.0 - 1e-9), p_start],
                                jac=lambda x: np.column_stack([1.0 - np.power(1.0 - x[1], budgets), dp(x[0], x[1])]),
                                bounds=([0.0, P_MIN], [1.0, 1.0]), method="trf", xtol=1e-12, ftol=1e-12,
                                gtol=1e-12, max_nfev=200)
            x = res.x
    except (ValueError, FloatingPointError):
        return f0, p0, sse0
    sse = float(np.sum(res.fun**2))
    if np.all(np.isfinite(x)) and sse < sse0 - 1e-12 * (1.0 + sse0):
        return float(x[0]), float(x[1]), sse
    return f0, p0, sse0


def _fit_rows(y: np.ndarray, budgets: np.ndarray, f_fixed: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    p, f, sse = _profile_grid(y, budgets, f_fixed)
    out_f, out_p = np.empty(len(y)), np.empty(len(y))
    for i in range(len(y)):
        out_f[i], out_p[i], _ = _polish(y[i], budgets, f[i], p[i], sse[i], fixed=f_fixed is not None)
    return out_f, out_p


def fit_saturation(budgets: Sequence[int], per_problem: np.ndarray, epsilon: float = 0.01, n_boot: int = 200,
                   seed: int = 0, f_max: float | None = None) -> SaturationFit:
    """Fit F(N) = F_max (1 - (1-p)^N) to the mean over problems of ``per_problem``.

    ``per_problem`` has shape (problems, len(budgets)). Each entry is one problem's accuracy
    (0/1, or an expected value in [0, 1]) at that budget. Budgets must be distinct integers >= 1,
    at least two of them; they are sorted. F_max is fitted in [0, 1] and p in [1e-6, 1] by
    bounded least squares. Bootstrap: ``n_boot`` resamples of the problems (rows, with
    replacement), refitted each time, give 95 % percentile intervals for F_max, p and N*.
    Seeded by ``seed``, so the result is deterministic. ``f_max``: hold F_max at this value in
    (0, 1] and fit p alone (1.0 is TTSPM's bare Hit@N form); its interval is then None.
    """
    b = np.asarray(budgets)
    if b.ndim != 1 or len(b) < 2:
        raise ValueError(f"need at least 2 budgets to fit two parameters, got {list(np.atleast_1d(b))}")
    if not np.all(np.equal(np.mod(b, 1), 0)) or np.any(b < 1):
        raise ValueError(f"budgets must be integers >= 1, got {b.tolist()}")
    if len(np.unique(b)) != len(b):
        raise ValueError(f"budgets must be distinct, got {b.tolist()}")
    x = np.asarray(per_problem, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(b) or x.shape[0] < 1:
        raise ValueError(f"per_problem must have shape (problems >= 1, {len(b)}), got {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0) or np.any(x > 1):
        raise ValueError("per_problem values must be finite and in [0, 1]")
    if not epsilon > 0:
        raise ValueError("epsilon must be > 0")
    if n_boot < 0:
        raise ValueError("n_boot must be >= 0")
    if f_max is not None and not 0.0 < f_max <= 1.0:
        raise ValueError(f"f_max must be in (0, 1] when fixed, got {f_max}")

    order = np.argsort(b)
    bf = b[order].astype(float)
    x = x[:, order]
    y = x.mean(axis=0)

    f_hat, p_hat = (float(v[0]) for v in _fit_rows(y[None, :], bf, f_max))
    rmse = float(np.sqrt(np.mean((saturation_curve(bf, f_hat, p_hat) - y) ** 2)))
    n_star = saturation_budget(f_hat, p_hat, epsilon)

    f_ci = p_ci = n_ci = None
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        n_prob = x.shape[0]
        weights = rng.multinomial(n_prob, np.full(n_prob, 1.0 / n_prob), size=n_boot)  # (n_boot, P)
        yb = (weights @ x) / n_prob
        fb, pb = _fit_rows(yb, bf, f_max)
        nb = np.array([saturation_budget(f, p, epsilon) for f, p in zip(fb, pb)])
        lo, hi = 2.5, 97.5
        f_ci = None if f_max is not None else (float(np.percentile(fb, lo)), float(np.percentile(fb, hi)))
        p_ci = (float(np.percentile(pb, lo)), float(np.percentile(pb, hi)))
        n_ci = (int(np.floor(np.percentile(nb, lo))), int(np.ceil(np.percentile(nb, hi))))

    return SaturationFit(f_max=f_hat, p=p_hat, f_max_ci=f_ci, p_ci=p_ci, n_star=n_star, n_star_ci=n_ci,
                         epsilon=float(epsilon), rmse=rmse, budgets=[int(v) for v in b[order]],
                         observed=[float(v) for v in y], n_boot=int(n_boot), f_max_fixed=f_max is not None)
