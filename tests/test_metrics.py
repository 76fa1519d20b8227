"""eval.metrics: pass@k against brute force, maj@k ties and voting keys, avg@k SE, pool shapes."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.metrics import (
    COLUMNS,
    avg_at_k,
    expected_max_of_k,
    maj_at_k,
    mean_se,
    normalize_for_vote,
    pass_at_k,
    pool_metrics,
)


# --------------------------------------------------------------------------- pass@k

def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of the k-subsets of n samples (c correct) that contain a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_edges_and_errors():
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 6, 5) == 1.0  # n - c < k: every 5-subset holds a correct sample
    assert pass_at_k(200, 1, 1) == pytest.approx(1 / 200)
    # large n stays finite and accurate (the binomial form would overflow floats)
    assert pass_at_k(2000, 3, 1000) == pytest.approx(1 - math.comb(1997, 1000) / math.comb(2000, 1000), rel=1e-9)
    with pytest.raises(ValueError, match="k=6 > n=5"):
        pass_at_k(5, 2, 6)
    for bad in [(5, 6, 1), (5, -1, 1), (5, 2, 0), (0, 0, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_at_k_properties(nc):
    n, c = nc
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))  # monotone in k
    assert values[0] == pytest.approx(c / n, abs=1e-12)
    assert values[-1] == (1.0 if c > 0 else 0.0)


# --------------------------------------------------------------------------- voting

def test_normalize_for_vote():
    assert normalize_for_vote("0.50") == normalize_for_vote("0.5") == "0.5"
    assert normalize_for_vote("27.0") == normalize_for_vote("27") == "27"
    assert normalize_for_vote("2.50") == "2.5"
    assert normalize_for_vote(" $\\dfrac{1}{2}$ ") == normalize_for_vote("\\frac{1}{2}") == normalize_for_vote(
        "\\tfrac {1}{2}")
    assert normalize_for_vote("\\left( 1, 2 \\right)") == "(1,2)"
    assert normalize_for_vote("(0.50, 1.0)") == "(0.5,1)"
    assert normalize_for_vote("x \\rightarrow 3") == "x\\rightarrow3"  # \right only as a whole command
    assert normalize_for_vote("1,000") == "1000"
    assert normalize_for_vote("007") == "7"
    assert normalize_for_vote("-0") == "0"
    assert normalize_for_vote("10") == "10"
    assert normalize_for_vote("100.00") == "100"
    assert normalize_for_vote("1.05") == "1.05"
    assert normalize_for_vote(None) is None
    assert normalize_for_vote("  $ $ ") is None
    # string voting, not symbolic: these stay apart
    assert normalize_for_vote("1/2") != normalize_for_vote("\\frac{1}{2}")


def test_maj_at_k_ties_are_split():
    assert maj_at_k(["a", "b"], [True, False], 2) == 0.5
    assert maj_at_k(["a", "b", "c"], [False, True, False], 3) == pytest.approx(1 / 3)
    assert maj_at_k(["a", "b", "a", "b"], [True, False, True, False], 4) == 0.5
    assert maj_at_k(["a", "b", "b"], [True, False, False], 3) == 0.0
    assert maj_at_k(["a", "b", "a"], [True, False, True], 3) == 1.0


def test_maj_at_k_uses_the_first_k():
    answers, correct = ["x", "y", "y", "y"], [True, False, False, False]
    assert maj_at_k(answers, correct, 1) == 1.0
    assert maj_at_k(answers, correct, 2) == 0.5
    assert maj_at_k(answers, correct, 3) == 0.0
    with pytest.raises(ValueError):
        maj_at_k(answers, correct, 5)
    with pytest.raises(ValueError):
        maj_at_k(answers, correct, 0)
    with pytest.raises(ValueError):
        maj_at_k(answers, correct[:3], 2)


def test_maj_at_k_none_never_wins():
    assert maj_at_k([None, None, None], [False, False, False], 3) == 0.0
    assert maj_at_k([None, None, "7"], [False, False, True], 3) == 1.0
    assert maj_at_k([None, "", "$ $"], [False, False, False], 3) == 0.0
    assert maj_at_k([None, None, "7", "8"], [False, False, True, False], 4) == 0.5


def test_maj_at_k_normalization_merges_votes():
    # "0.50" and "0.5" are one answer with 2 votes; it beats "1"
    assert maj_at_k(["0.50", "1", "0.5"], [True, False, True], 3) == 1.0
    assert maj_at_k(["\\dfrac{1}{2}", "3", "\\frac{1}{2}"], [True, False, True], 3) == 1.0
    # a group the grader split scores the mean of its members
    assert maj_at_k(["27", "27.0", "5"], [True, False, False], 3) == 0.5


# --------------------------------------------------------------------------- avg@k

def test_avg_at_k_mean_and_se():
    m = np.array([[1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    for k in range(1, 5):
        per = m[:, :k].mean(axis=1)
        mean, se = avg_at_k(m, k)
        assert mean == pytest.approx(per.mean())
        assert se == pytest.approx(np.std(per, ddof=1) / np.sqrt(len(per)))
    assert avg_at_k([[True, False, True]], 3) == (pytest.approx(2 / 3), 0.0)  # one problem: SE 0
    assert avg_at_k([[True, False], [True, True, False]], 2)[0] == pytest.approx(0.75)  # ragged
    with pytest.raises(ValueError):
        avg_at_k([[True, False], [True]], 2)
    with pytest.raises(ValueError):
        avg_at_k([], 1)


def test_mean_se():
    assert mean_se([1.0, 2.0, 3.0]) == (pytest.approx(2.0), pytest.approx(1 / math.sqrt(3)))
    with pytest.raises(ValueError):
        mean_se([])


def brute_expected_max(values, k):
    subsets = list(itertools.combinations(values, k))
    return sum(max(s) for s in subsets) / len(subsets)


def test_expected_max_of_k_matches_enumeration():
    rng = np.random.default_rng(1)
    for n in range(1, 8):
        vals = rng.integers(0, 50, n).tolist()  # ties included
        for k in range(1, n + 1):
            assert expected_max_of_k(vals, k) == pytest.approx(brute_expected_max(vals, k))


# --------------------------------------------------------------------------- pools

def make_pool(rng, problems=7, n=6):
    pool = []
    for _ in range(problems):
        correct = (rng.random(n) < rng.random()).tolist()
        answers = ["42" if ok else rng.choice(["1", "2", None]) for ok in correct]
        pool.append({"answers": answers, "correct": correct, "tokens": rng.integers(10, 100, n).tolist(),
                     "critical_path_tokens": rng.integers(5, 50, n).tolist()})
    return pool


def test_pool_metrics_shapes_and_values():
    rng = np.random.default_rng(0)
    pool = make_pool(rng)
    pm = pool_metrics(pool)
    assert pm.ks == pm["k"] == list(range(1, 7)) and pm.n_problems == pm["n_problems"] == 7
    assert set(pm) == set(COLUMNS) | {"n_problems", "n_samples"}
    for name in COLUMNS:
        assert len(pm[name]) == 6, name
    assert json.loads(json.dumps(pm)) == dict(pm)  # a plain JSON-ready dict of columns
    rows = pm.rows()
    assert len(rows) == 6 and all(set(r) == set(COLUMNS) for r in rows)
    for row in rows:
        k = row["k"]
        assert pm.per_problem_maj(k).shape == (7,)
        assert row["pass@k"] == pytest.approx(np.mean([pass_at_k(6, sum(p["correct"]), k) for p in pool]))
        # maj@k and avg@k average over every size-k subset of the 6 samples (C(6,k) <= 20: all enumerated)
        def over_subsets(p, score, k=k):
            return np.mean([score([p["answers"][i] for i in sub], [p["correct"][i] for i in sub])
                            for sub in itertools.combinations(range(6), k)])

        assert row["maj@k"] == pytest.approx(np.mean([over_subsets(p, lambda a, c: maj_at_k(a, c, len(a)))
                                                      for p in pool]))
        assert (row["avg@k"], row["avg@k_se"]) == pytest.approx(
            mean_se([over_subsets(p, lambda a, c: np.mean(c)) for p in pool]))
        assert row["tokens"] == pytest.approx(np.mean([k * np.mean(p["tokens"]) for p in pool]))
        assert row["critical_path_tokens"] == pytest.approx(
            np.mean([brute_expected_max(p["critical_path_tokens"], k) for p in pool]))
        assert row["critical_path_tokens_per_sample"] == pytest.approx(
            np.mean([np.mean(p["critical_path_tokens"]) for p in pool]))
        assert row["maj@k_se"] == pytest.approx(mean_se(pm.per_problem_maj(k))[1])
        assert row["pass@k_se"] == pytest.approx(mean_se(pm.per_problem_pass(k))[1])
    # pass@1 (estimated from all n samples) is avg@n, the mean over all n samples
    assert pm["pass@k"][0] == pytest.approx(pm["avg@k"][-1])
    assert pm.at(3) == rows[2]
    with pytest.raises(KeyError):
        pm.at(9)
    assert pm.per_problem_pass(2).shape == pm.per_problem_avg(2).shape == pm.per_problem_tokens(2).shape == (7,)


def test_pool_metrics_given_ks_ragged_and_no_tokens():
    pool = [{"answers": ["1", "2", "1"], "correct": [True, False, True]},
            {"answers": ["5", "5"], "correct": [False, False]}]
    pm = pool_metrics(pool, ks=[2, 1])
    assert pm["k"] == [2, 1] and [r["k"] for r in pm.rows()] == [2, 1]
    assert "tokens" not in pm and "critical_path_tokens" not in pm  # no counts: columns left out
    assert pm.per_problem_tokens(1) is None and pm.per_problem_critical_path(1) is None
    assert pm["n_samples"] == 2
    # problem 1's pairs: {1,2} and {2,1} tie (1/2 each), {1,1} wins; problem 2: 0
    assert pm["maj@k"][0] == pytest.approx((0.5 + 1 + 0.5) / 3 / 2)
    with pytest.raises(ValueError):
        pool_metrics(pool, ks=[3])  # problem 2 has only 2 samples
    with pytest.raises(ValueError, match="problem 0"):
        pool_metrics([{"answers": ["1"], "correct": [True, False]}])
    with pytest.raises(ValueError, match="no 'correct'"):
        pool_metrics([{"answers": ["1"]}])
    with pytest.raises(ValueError):
        pool_metrics([])


def test_pool_metrics_bootstrap_over_problems():
    rng = np.random.default_rng(3)
    pm = pool_metrics(make_pool(rng, problems=20, n=8))
    vec = pm.per_problem_maj(4)
    boots = [vec[rng.integers(0, len(vec), len(vec))].mean() for _ in range(200)]
    assert 0.0 <= min(boots) <= pm.at(4)["maj@k"] <= max(boots) <= 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(["1", "2", "3", None]), st.booleans()), min_size=4, max_size=4),
                min_size=1, max_size=6))
def test_pool_metrics_bounds(problems):
    pool = [{"answers": [a for a, _ in p], "correct": [c for _, c in p]} for p in problems]
    pm = pool_metrics(pool)
    for row in pm.rows():
        for key in ("pass@k", "maj@k", "avg@k"):
            assert 0.0 <= row[key] <= 1.0
        # the vote winner is one of the k samples, so in every subset maj@k <= pass@k (its any-correct share)
        assert row["maj@k"] <= row["pass@k"] + 1e-12


# --------------------------------------------------------------------------- parallelism metrics, critical path

def test_a_decoders_critical_path_is_trace_metrics_of_its_text_with_inserted_headers_counted():
    """One definition: a ThreadWeaver decode's critical path equals `trace_metrics` of the same text, and it
    counts the thread headers and closes the decoder wrote (as ThreadWeaver's reward counts every token)."""
    from decoder_double import Script, decode, tw_policy
    from reasoning.decoders.threadweaver import ThreadWeaverConfig
    from reasoning.formats.convert import parse_any
    from reasoning.formats.metrics import trace_metrics

    eng = Script(tw_policy())
    res = decode("threadweaver", eng, ThreadWeaverConfig())
    assert res.text == ("Plan.\n<Parallel>\n<Outlines>\n<Outline>1: add</Outline>\n<Outline>2.1: check</Outline>\n"
                        "</Outlines>\n<Thread>\n1: 3 + 4 = 7\n</Thread><Thread>\n2.1:\nseven holds\n</Thread>\n"
                        "</Parallel>\nSo the answer is \\boxed{7}.")
    m = trace_metrics(parse_any(res.text, "threadweaver"), eng.count_tokens)
    # by hand, in the engine's words: outside "Plan." and "So the answer is \boxed{7}." = 6; the block's 12 tags
    # and its outlines' 4 words = 16; threads "1: 3 + 4 = 7" = 6 and "2.1: seven holds" = 3
    assert (m.sequential_tokens, m.block_tokens, m.branch_tokens) == (6, [16], [[6, 3]])
    assert res.critical_path_tokens == m.critical_path_tokens == 6 + 16 + 6
    assert res.response_tokens == m.total_tokens == 6 + 16 + 6 + 3 and res.parallel_tokens == 16 + 9
    assert res.token_counter == "engine"
    # the requests' generated tokens alone (main 8, longer thread 6, join 7) miss the inserted headers
    assert res.generated_critical_path_tokens == 8 + 6 + 7 < res.critical_path_tokens
    assert res.speedup == pytest.approx(31 / 28) == m.speedup


def test_trace_parallelism_names_each_mean_one_thing():
    from reasoning.formats.metrics import text_metrics

    text = "ab cd<Parallel><Path>x y z</Path><Path>w</Path></Parallel>\n<Summary>s t</Summary>so it is"
    m = text_metrics(text, "parallel_r1")
    # total 19 = outside 5 + block 10 + paths 3 and 1; critical 18
    assert m.speedup == pytest.approx(19 / 18)  # total / critical
    assert m.parallel_token_share == pytest.approx((10 + 4) / 19)  # ThreadWeaver's parallel_ratio
    assert m.has_parallel and not text_metrics("just text", "parallel_r1").has_parallel
    assert not hasattr(m, "parallel_ratio"), "the ambiguous name is gone"


def test_speedup_is_a_per_problem_ratio_averaged_over_problems():
    from eval.metrics import per_problem_speedup

    # problem 1: one response 200/100 = 2.0; problem 2: responses 30/30 = 1.0 and 60/20 = 3.0 -> 2.0
    assert per_problem_speedup([[(200, 100)], [(30, 30), (60, 20)]]) == pytest.approx(2.0)
    # not the ratio of mean lengths ((200 + 45) / (100 + 25) = 1.96)
    assert per_problem_speedup([[(200, 100)], [(30, 30), (60, 20)]]) != pytest.approx(245 / 125)
    assert per_problem_speedup([[], [(10, 0)]]) == 1.0  # nothing to divide by


def test_format_statistics_report_the_papers_parallelism_metrics():
    from eval.decoded import format_statistics
    from reasoning.decoders.base import DecodeResult

    def out(blocks, response, critical, parallel):
        return DecodeResult(text="", format="parallel_r1", blocks=blocks, response_tokens=response,
                            critical_path_tokens=critical, parallel_tokens=parallel)

    a, b, c = out(1, 100, 50, 80), out(0, 40, 40, 0), out(2, 90, 30, 60)
    stats = format_statistics([a, b, c], groups=[[a, b], [c]])
    assert stats["parallel_response_rate"] == pytest.approx(2 / 3)  # Parallel-R1's parallel ratio
    assert stats["parallel_token_share"] == pytest.approx((0.8 + 0.0 + 60 / 90) / 3)  # ThreadWeaver's
    assert stats["speedup"] == pytest.approx(((2.0 + 1.0) / 2 + 3.0) / 2)  # per problem, then averaged
