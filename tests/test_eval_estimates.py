"""A simulated model whose accuracy is known: the eval's curves must match the theory within their error bars.

Each sample is right with probability Q; a wrong sample picks one of WRONG distinct wrong answers uniformly.
Majority at N then has a closed form (a multinomial sum), and best-of-N by agreement is the same vote.
"""
from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from eval.config import EvalConfig
from eval.report import write_report
from eval.run import EvalRun
from reasoning.engines.scripted import ScriptedEngine
from reasoning.settings import from_dict

Q, WRONG, PROBLEMS, N = 0.45, 3, 120, 8


def simulated(req, j):
    # a fixed draw per (problem, sample): the run's seeds decide nothing, the simulation does
    rng = random.Random(f"{req.id}/{j}")
    if rng.random() < Q:
        return "so \\boxed{1}", "stop"
    return f"so \\boxed{{{2 + rng.randrange(WRONG)}}}", ("length" if rng.random() < 0.25 else "stop")


def majority_theory(n: int) -> float:
    """P(majority of n samples is right), ties split evenly, from the multinomial law."""
    total = 0.0
    for counts in itertools.product(range(n + 1), repeat=WRONG + 1):
        if sum(counts) != n:
            continue
        right = counts[0]
        p = math.factorial(n) / math.prod(math.factorial(c) for c in counts)
        p *= Q ** right * ((1 - Q) / WRONG) ** (n - right)
        top = max(counts)
        if right == top:
            total += p / sum(c == top for c in counts)
    return total


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim")
    data = tmp / "sim.jsonl"
    data.write_text("".join(json.dumps({"question": f"Problem {i}", "answer": "1", "id": str(i)}) + "\n"
                            for i in range(PROBLEMS)))
    cfg = from_dict(EvalConfig, dict(data=str(data), id_field="id", model="simulated", engine="scripted", n=N,
                                     strategies=("plain", "majority", "best_of_n"), grader_timeout=10))
    res = EvalRun(cfg, ScriptedEngine(simulated), tmp / "run", progress=False).run()
    return tmp, res


def test_curves_match_the_known_accuracy_within_their_error_bars(results):
    _, res = results
    points = {(p["strategy"], p["budget"]): p for p in res["points"]}
    plain = points[("plain", 1)]
    assert abs(plain["accuracy"] - Q) < 3 * plain["accuracy_se"]
    for n in (1, 2, 4, 8):
        maj = points[("majority", n)]
        assert abs(maj["accuracy"] - majority_theory(n)) < 3 * maj["accuracy_se"] + 1e-9, n
    # the same pool: majority@1 is avg@1 exactly, and majority rises with N as the theory does
    assert points[("majority", 1)]["accuracy"] == pytest.approx(plain["accuracy"])
    assert res["metrics"]["avg@k"][0] == pytest.approx(plain["accuracy"])
    maj = [points[("majority", n)]["accuracy"] for n in (1, 2, 4, 8)]
    assert maj == sorted(maj) and majority_theory(8) > majority_theory(1)
    # C(8,4) = 70 subsets per problem: every one is scored, so resampling adds no error
    assert points[("majority", 4)]["resampling_se"] == 0.0
    assert points[("majority", 4)]["estimator"] == "mean over all size-4 subsets of the 8-sample pool"
    # the simulated truncations and answers are counted
    assert 0.05 < plain["truncation_rate"] < 0.25 and plain["no_answer_rate"] == 0.0


def test_many_subsets_are_resampled_with_a_standard_error():
    from eval.subsets import mean_over, plan

    big = plan(24, 12, seed=0, key="p")
    assert not big.exact and len(big.subsets) == 300 and all(len(set(s)) == 12 for s in big.subsets)
    assert plan(24, 12, seed=0, key="p") == big, "seeded: a rerun scores the same subsets"
    assert plan(5, 2, seed=0, key="p").exact and len(plan(5, 2, seed=0, key="p").subsets) == 10
    mean, var = mean_over(big.subsets, lambda s: float(0 in s))
    assert abs(mean - 0.5) < 3 * math.sqrt(var / 300)


def test_report_labels_budgets_and_keeps_axes_apart(results):
    tmp, _ = results
    md, _ = write_report([tmp / "run"], tmp / "report")
    text = md.read_text()
    assert "## Accuracy per strategy and budget" in text
    grid = text.split("## Accuracy per strategy and budget", 1)[1]
    assert "| run | strategy | N=1 | N=2 | N=4 | N=8 | estimator |" in grid
    assert "no answer %" in grid and "truncated by the token cap %" in grid
