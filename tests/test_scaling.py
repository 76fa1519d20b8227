"""eval.scaling: Pareto frontier, the saturation budget N*, and the saturation fit with bootstrap intervals."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.records import Point
from eval.scaling import (
    SaturationFit,
    fit_saturation,
    pareto_frontier,
    saturation_budget,
    saturation_curve,
)

BUDGETS = [1, 2, 4, 8, 16, 32, 64]
F_MAXES = (0.6, 0.85, 1.0)
PS = (0.05, 0.2, 0.5)
N_PROBLEMS = 3000


def simulate_hit_at_n(f_max: float, p: float, n_problems: int, budgets: list[int], rng: np.random.Generator):
    """Per-problem Hit@N (0/1) from a population whose mean curve is exactly f_max (1 - (1-p)^N).

    A fraction f_max of the problems is solvable with per-sample success probability p; the rest
    are never solved. Each problem draws max(budgets) samples, and Hit@N looks at the first N, so a
    problem's row is nested and monotone, as in a real sweep.
    """
    solvable = rng.random(n_problems) < f_max
    hits = (rng.random((n_problems, max(budgets))) < p) & solvable[:, None]
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.iinfo(np.int64).max)
    return (first[:, None] <= np.asarray(budgets)[None, :]).astype(float)


# ----------------------------------------------------------------------------------------------
# Fit recovery


@pytest.fixture(scope="module")
def synthetic_fits() -> dict[tuple[float, float], SaturationFit]:
    fits = {}
    for i, f_max in enumerate(F_MAXES):
        for j, p in enumerate(PS):
            rng = np.random.default_rng(100 + 10 * i + j)
            x = simulate_hit_at_n(f_max, p, N_PROBLEMS, BUDGETS, rng)
            fits[(f_max, p)] = fit_saturation(BUDGETS, x, epsilon=0.01, n_boot=200, seed=i * 3 + j)
    return fits


@pytest.mark.parametrize("f_max", F_MAXES)
@pytest.mark.parametrize("p", PS)
def test_fit_recovers_parameters(synthetic_fits, f_max: float, p: float):
    fit = synthetic_fits[(f_max, p)]
    # about 4 standard errors at 3000 problems
    assert abs(fit.f_max - f_max) < 0.04, fit
    assert abs(fit.p - p) < 0.2 * p, fit
    assert fit.rmse < 0.02
    # the bootstrap intervals are intervals around the estimate, inside the parameter bounds
    assert 0.0 <= fit.f_max_ci[0] <= fit.f_max <= fit.f_max_ci[1] + 1e-12 <= 1.0 + 1e-12
    assert 0.0 < fit.p_ci[0] <= fit.p_ci[1] <= 1.0
    true_n = saturation_budget(f_max, p, 0.01)
    assert fit.n_star == saturation_budget(fit.f_max, fit.p, 0.01)
    assert fit.n_star_ci[0] - 1 <= true_n <= fit.n_star_ci[1] + 1, (true_n, fit.n_star_ci)
    assert fit.budgets == BUDGETS and len(fit.observed) == len(BUDGETS) and fit.n_boot == 200


def test_bootstrap_intervals_contain_truth(synthetic_fits):
    """Each 95 % interval should contain the truth. Nominal coverage is 95 %, so over 18 intervals
    we allow at most two near misses (truth within one interval width). The fixed seeds make this
    deterministic. A 150-replicate check of F_max=0.6, p=0.2 gave 92 % coverage.

    F_max = 1 sits on the bound of the parameter space. There every bootstrap estimate is <= 1,
    so a percentile interval can only touch 1, not straddle it: we ask that its upper end comes
    within 0.01 of 1.
    """
    misses = []
    for (f_max, p), fit in synthetic_fits.items():
        for name, truth, (lo, hi) in (("f_max", f_max, fit.f_max_ci), ("p", p, fit.p_ci)):
            if name == "f_max" and truth == 1.0:
                assert hi >= 0.99, fit
                continue
            if not lo <= truth <= hi:
                width = hi - lo
                assert lo - width <= truth <= hi + width, (name, truth, lo, hi)
                misses.append((f_max, p, name, truth, lo, hi))
    assert len(misses) <= 2, misses


@pytest.mark.parametrize("f_max,p", [(0.3, 0.01), (0.6, 0.05), (0.85, 0.2), (1.0, 0.5), (0.7, 0.9), (0.5, 1.0)])
def test_exact_mean_curve_is_recovered_exactly(f_max: float, p: float):
    """No sampling noise: a population of exactly 1000 problems, round(1000 f_max) solvable, each
    row holding its expected Hit@N. The mean curve is then exactly the model, so the fit is exact."""
    budgets = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    n_solvable = round(1000 * f_max)
    row = saturation_curve(np.array(budgets), 1.0, p)
    x = np.vstack([np.tile(row, (n_solvable, 1)), np.zeros((1000 - n_solvable, len(budgets)))])
    fit = fit_saturation(budgets, x, n_boot=20)
    assert fit.f_max == pytest.approx(n_solvable / 1000, abs=1e-6)
    assert fit.p == pytest.approx(p, rel=1e-5)
    assert fit.rmse < 1e-7
    assert fit.n_star == saturation_budget(n_solvable / 1000, p, 0.01)


# ----------------------------------------------------------------------------------------------
# Fit edge cases


def test_flat_curve_gives_p_one_and_n_star_one():
    """Every problem is either always right or always wrong: the curve is flat at 40 %, so one
    sample already reaches the ceiling."""
    x = np.zeros((50, 5))
    x[:20] = 1.0
    fit = fit_saturation([1, 2, 4, 8, 16], x, n_boot=50)
    assert fit.p == 1.0 and fit.f_max == pytest.approx(0.4)
    assert fit.n_star == 1 and fit.rmse == pytest.approx(0.0, abs=1e-12)
    assert fit.p_ci == (1.0, 1.0)
    assert fit.f_max_ci[0] < 0.4 < fit.f_max_ci[1]


def test_p_equal_one_population():
    rng = np.random.default_rng(7)
    x = simulate_hit_at_n(0.7, 1.0, 2000, BUDGETS, rng)
    fit = fit_saturation(BUDGETS, x, n_boot=50)
    assert fit.p == 1.0 and fit.f_max == pytest.approx(x[:, 0].mean())
    assert fit.n_star == 1


def test_all_zero_and_all_one():
    zero = fit_saturation([1, 4], np.zeros((10, 2)), n_boot=10)
    # F_max = 0 leaves p unidentified; ties resolve to the largest p, and N* = 0 either way
    assert (zero.f_max, zero.p, zero.n_star) == (0.0, 1.0, 0)
    one = fit_saturation([1, 4], np.ones((10, 2)), n_boot=10)
    assert (one.f_max, one.p, one.n_star) == (1.0, 1.0, 1)


def test_fit_sorts_budgets_and_is_deterministic():
    rng = np.random.default_rng(3)
    x = simulate_hit_at_n(0.8, 0.3, 400, BUDGETS, rng)
    perm = [3, 0, 6, 1, 5, 2, 4]
    a = fit_saturation(BUDGETS, x, n_boot=40, seed=5)
    b = fit_saturation([BUDGETS[i] for i in perm], x[:, perm], n_boot=40, seed=5)
    assert a == b
    assert fit_saturation(BUDGETS, x, n_boot=40, seed=6) != a  # another seed, other resamples


def test_fit_dict_round_trip_and_no_bootstrap():
    rng = np.random.default_rng(4)
    x = simulate_hit_at_n(0.8, 0.3, 300, BUDGETS, rng)
    fit = fit_saturation(BUDGETS, x, n_boot=30)
    d = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert set(d) == {"f_max", "p", "f_max_ci", "p_ci", "n_star", "n_star_ci", "epsilon", "rmse", "budgets",
                      "observed", "n_boot", "f_max_fixed"}
    assert isinstance(d["f_max_ci"], list) and isinstance(d["n_star"], int)
    assert SaturationFit.from_dict(d) == fit
    bare = fit_saturation(BUDGETS, x, n_boot=0)
    assert bare.f_max_ci is None and bare.p_ci is None and bare.n_star_ci is None
    assert (bare.f_max, bare.p) == (fit.f_max, fit.p)
    json.dumps(bare.to_dict(), allow_nan=False)


@pytest.mark.parametrize("budgets,x", [
    ([4], np.ones((3, 1))),  # one budget cannot fit two parameters
    ([1, 1], np.ones((3, 2))),  # duplicates
    ([0, 2], np.ones((3, 2))),  # budget 0
    ([1.5, 2], np.ones((3, 2))),  # non-integer
    ([1, 2], np.ones((3, 3))),  # shape mismatch
    ([1, 2], np.full((3, 2), 1.5)),  # outside [0, 1]
    ([1, 2], np.full((3, 2), np.nan)),
    ([1, 2], np.ones((0, 2))),  # no problems
])
def test_fit_rejects_bad_input(budgets, x):
    with pytest.raises(ValueError):
        fit_saturation(budgets, x)


# ----------------------------------------------------------------------------------------------
# saturation_curve and saturation_budget


def test_saturation_curve():
    assert saturation_curve(0, 0.8, 0.3) == 0.0
    assert saturation_curve(1, 0.8, 0.3) == pytest.approx(0.24)
    assert saturation_curve(0, 0.8, 1.0) == 0.0 and saturation_curve(3, 0.8, 1.0) == 0.8
    np.testing.assert_allclose(saturation_curve(np.array([1, 2]), 1.0, 0.5), [0.5, 0.75])
    assert isinstance(saturation_curve(2, 1.0, 0.5), float)


def _gain(f_max: float, p: float, n: int) -> float:
    """F(N+1) - F(N) as the model defines it (same float expression as saturation_budget's check)."""
    return f_max * p * (1.0 - p) ** n


def _brute_force_budget(f_max: float, p: float, eps: float) -> int:
    n = 0
    while not _gain(f_max, p, n) < eps:
        n += 1
    return n


@settings(max_examples=400, deadline=None)
@given(f_max=st.floats(0.0, 1.0), p=st.floats(0.0, 1.0), eps=st.floats(1e-3, 1.0))
def test_saturation_budget_matches_brute_force(f_max: float, p: float, eps: float):
    assert saturation_budget(f_max, p, eps) == _brute_force_budget(f_max, p, eps)


@settings(max_examples=300, deadline=None)
@given(f_max=st.floats(1e-6, 1.0), p=st.floats(1e-9, 1.0), eps=st.floats(1e-12, 1.0))
def test_saturation_budget_is_the_first_small_gain(f_max: float, p: float, eps: float):
    """Over a range too wide for brute force: N* has gain < eps and N* - 1 (if any) has not."""
    n = saturation_budget(f_max, p, eps)
    assert _gain(f_max, p, n) < eps
    assert n == 0 or not _gain(f_max, p, n - 1) < eps


@settings(max_examples=300, deadline=None)
@given(f_max=st.floats(0.05, 1.0), p=st.floats(1e-4, 0.999), eps=st.floats(1e-6, 0.05))
def test_saturation_budget_agrees_with_ceil_form_off_integers(f_max: float, p: float, eps: float):
    """The digest's ceil(ln(eps/(F_max p))/ln(1-p)) differs from ours only when that ratio is an
    integer (where the gain equals eps exactly)."""
    x = math.log(eps / (f_max * p)) / math.log1p(-p)
    if abs(x - round(x)) > 1e-6:
        assert saturation_budget(f_max, p, eps) == max(0, math.ceil(x))


def test_saturation_budget_edge_cases():
    assert saturation_budget(0.0, 0.5, 0.01) == 0  # flat zero curve
    assert saturation_budget(0.9, 0.0, 0.01) == 0  # never solved
    assert saturation_budget(0.9, 1.0, 0.01) == 1  # one sample reaches the ceiling
    assert saturation_budget(0.005, 1.0, 0.01) == 0  # ... unless the ceiling itself is below eps
    assert saturation_budget(0.5, 0.01, 0.01) == 0  # F_max p < eps: not even the first sample pays
    assert saturation_budget(0.5, 0.5, 0.25) == 1  # gain(0) == eps exactly is not below it
    assert saturation_budget(1.0, 0.5, 0.125) == 3  # gain(2) == eps exactly; ceil form would say 2
    assert saturation_budget(1.0, 0.5, 0.2) == 2
    for bad in [(0.5, 0.5, 0.0), (0.5, 0.5, -1.0), (0.5, 1.5, 0.01), (-0.1, 0.5, 0.01), (0.5, math.nan, 0.01)]:
        with pytest.raises(ValueError):
            saturation_budget(*bad)


# ----------------------------------------------------------------------------------------------
# Pareto frontier


def _brute_force_frontier(costs: list[float], accs: list[float]) -> list[bool]:
    out = []
    for i in range(len(costs)):
        if math.isnan(costs[i]) or math.isnan(accs[i]):
            out.append(False)
            continue
        dominated = any(
            costs[j] <= costs[i] and accs[j] >= accs[i] and (costs[j] < costs[i] or accs[j] > accs[i])
            for j in range(len(costs)) if j != i and not (math.isnan(costs[j]) or math.isnan(accs[j])))
        out.append(not dominated)
    return out


# small value sets so that ties in cost, in accuracy and exact duplicates are common
_cost = st.one_of(st.sampled_from([1.0, 2.0, 3.0, 5.0, 8.0]), st.floats(0.0, 1e4), st.just(math.nan))
_acc = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.floats(0.0, 1.0), st.just(math.nan))


@settings(max_examples=400, deadline=None)
@given(pts=st.lists(st.tuples(_cost, _acc, st.sampled_from(["plain", "majority", "fusion"]),
                              st.sampled_from(["run-a", "run-b"])), max_size=30),
       cost=st.sampled_from(["tokens", "critical_path_tokens", "wall_s"]))
def test_pareto_matches_brute_force(pts, cost):
    points = []
    for c, a, strategy, run in pts:
        kw = {"tokens": 7.0, "critical_path_tokens": 7.0, "wall_s": 7.0, cost: c}
        points.append(Point(strategy=strategy, budget=1, accuracy=a, accuracy_se=0.0, n_problems=10, run=run, **kw))
    expected = _brute_force_frontier([p[0] for p in pts], [p[1] for p in pts])
    assert pareto_frontier(points, cost=cost) == expected
    assert pareto_frontier([p.to_dict() for p in points], cost=cost) == expected  # mappings work too


def test_pareto_examples():
    pts = [Point("plain", 1, 0.5, 0.0, 100.0, 100.0, 1.0, 10), Point("majority", 4, 0.7, 0.0, 400.0, 100.0, 3.0, 10),
           Point("majority", 8, 0.65, 0.0, 800.0, 100.0, 5.0, 10), Point("fusion", 2, 0.7, 0.0, 300.0, 200.0, 2.0, 10)]
    assert pareto_frontier(pts) == [True, False, False, True]
    # on critical path the majority@4 point costs the same as plain and scores higher
    assert pareto_frontier(pts, cost="critical_path_tokens") == [False, True, False, False]
    assert pareto_frontier(pts, cost="wall_s") == [True, False, False, True]
    assert pareto_frontier([]) == []
    dup = [Point("a", 1, 0.5, 0.0, 1.0, 1.0, 1.0, 1), Point("b", 1, 0.5, 0.0, 1.0, 1.0, 1.0, 1)]
    assert pareto_frontier(dup) == [True, True]  # exact duplicates do not dominate each other
    with pytest.raises(ValueError):
        pareto_frontier(pts, cost="accuracy")


# ----------------------------------------------------------------------------------------------
# Both fitted curves: coverage (pass@N of a pool) and selection (a strategy's accuracy at N), as eval fits them


def simulate_pool(f_max: float, p: float, n_problems: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """0/1 verdicts of n samples per problem: a share f_max of the problems is solved with probability p."""
    solvable = rng.random(n_problems) < f_max
    return (rng.random((n_problems, n)) < p) & solvable[:, None]


@pytest.mark.parametrize("f_max,p", [(0.7, 0.15), (1.0, 0.3)])
def test_fits_to_pass_at_n_and_to_a_selection_curve_recover_their_parameters(f_max: float, p: float):
    from eval.config import EvalConfig
    from eval.metrics import pass_at_k
    from eval.run import Scored, saturation_fits

    rng = np.random.default_rng(7)
    n, problems = 32, 2000
    verdicts = simulate_pool(f_max, p, problems, n, rng)

    class Pool:  # what saturation_fits reads of PoolMetrics (whose maj@k over 2000 problems is slow to build)
        ks = [1, 2, 4, 8, 16, 32]

        @staticmethod
        def per_problem_pass(k):
            return np.array([pass_at_k(n, int(row.sum()), k) for row in verdicts])

    metrics = Pool()
    # a selection strategy whose accuracy at N is F(N) with other parameters: each problem right with that chance
    sel_f, sel_p = 0.55, 0.4
    curve = {}
    for budget in (1, 2, 4, 8, 16, 32):
        s = curve[budget] = Scored()
        for hit in rng.random(problems) < saturation_curve(budget, sel_f, sel_p):
            s.add(float(hit), 1.0, 1.0, 0.0)
    cfg = EvalConfig(n=n)
    fits = saturation_fits({"majority": curve}, metrics, cfg)
    assert set(fits) == {"pass@k", "pass@k F_max=1", "majority"}
    cover, bare, select = fits["pass@k"], fits["pass@k F_max=1"], fits["majority"]
    assert cover["kind"] == bare["kind"] == "coverage" and cover["strategy"] is None and "pass@N" in cover["label"]
    assert select["kind"] == "selection" and select["strategy"] == "majority" and "majority@N" in select["label"]
    assert cover["budgets"] == [1, 2, 4, 8, 16, 32] and cover["axis"] == select["axis"] == "samples"
    # recovery: pass@N of the pool is the Hit@N curve of its generating parameters
    assert abs(cover["f_max"] - f_max) < 0.04 and abs(cover["p"] - p) < 0.15 * p, cover
    assert abs(select["f_max"] - sel_f) < 0.04 and abs(select["p"] - sel_p) < 0.15 * sel_p, select
    # the bare form holds F_max at 1: right when the ceiling is 1, and then it finds p as well
    assert bare["f_max"] == 1.0 and bare["f_max_fixed"] and bare["f_max_ci"] is None
    if f_max == 1.0:
        assert abs(bare["p"] - p) < 0.15 * p and abs(bare["rmse"] - cover["rmse"]) < 0.005
    else:  # a ceiling below 1 is what the bare form cannot fit
        assert bare["rmse"] > 5 * cover["rmse"]


def test_a_fixed_ceiling_fits_p_alone_exactly():
    budgets = [1, 2, 4, 8, 16]
    x = np.tile(saturation_curve(np.array(budgets), 1.0, 0.23), (50, 1))
    fit = fit_saturation(budgets, x, n_boot=20, f_max=1.0)
    assert fit.f_max == 1.0 and fit.p == pytest.approx(0.23, rel=1e-6) and fit.f_max_ci is None
    assert fit.p_ci[0] == pytest.approx(0.23, rel=1e-6) and SaturationFit.from_dict(fit.to_dict()) == fit
    with pytest.raises(ValueError, match="f_max"):
        fit_saturation(budgets, x, f_max=0.0)
