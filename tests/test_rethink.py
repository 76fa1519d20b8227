"""The rethink strategy (TTSPM's sequential paradigm): the exact requests of each round, the answer that
stands after r rounds, the tokens counted, the rounds axis, resume, and the settings' checks.

A scripted engine writes a wrong answer in round 1 for odd pool samples, corrects it in round 2, says
nothing checkable in round 3 and confirms in round 4, so every number below follows from the definitions.
"""
from __future__ import annotations

import json
import re

import pytest

from eval.config import EvalConfig
from eval.run import EvalRun
from eval.strategies import PoolSample, answer_at_rounds
from prompts import PromptLibrary
from reasoning.engines.scripted import ScriptedEngine, question_of
from reasoning.settings import from_dict
from reasoning.types import InputError

PROBLEMS = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in [(3, 4), (10, 5)]]
CUE = "\n\n" + PromptLibrary().render("eval/rethink") + "\n\n"


def gold_of(question: str) -> int:
    a, b = map(int, re.findall(r"-?\d+", question)[:2])
    return a + b


def rounds_so_far(req) -> int:
    """Which round a request is: 1 for the pool (a chat request), else 1 + the cues in its prompt."""
    return 1 if req.prompt is None else 1 + req.prompt.count(CUE)


def policy(req, j):
    g = gold_of(question_of(req))
    r = rounds_so_far(req)
    if r == 1:  # the pool: even samples right, odd samples wrong
        return (f"It is \\boxed{{{g}}}." if j % 2 == 0 else f"It is \\boxed{{{g + 1}}}."), "stop"
    if r == 2:
        return f"I added wrongly before: it is \\boxed{{{g}}}.", "stop"
    if r == 3:
        return "Still thinking about it", "stop"  # no answer: the last one found stands
    return f"Confirmed, \\boxed{{{g}}}.", "stop"


def write_data(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PROBLEMS))
    return path


def config(tmp_path, **kw) -> EvalConfig:
    base = dict(benchmark="toy", data=str(write_data(tmp_path)), model="scripted", engine="scripted", n=4,
                strategies=("plain", "rethink"), rethink_rounds=4, rethink_samples=2, max_tokens=64,
                grader_timeout=10)
    return from_dict(EvalConfig, base | kw)


def test_each_round_continues_the_text_so_far_after_the_cue(tmp_path):
    engine = ScriptedEngine(policy)
    EvalRun(config(tmp_path), engine, tmp_path / "run", progress=False).run()
    pool, later = engine.calls[:2], engine.calls[2:]
    # one pool request per problem: round 1 of every chain is a pool sample, not a request of its own
    assert all(q.prompt is None and q.params.n == 4 for q in pool)
    # rounds 2..4 of 2 chains x 2 problems, sent a round at a time
    assert [rounds_so_far(q) for q in later] == [2] * 4 + [3] * 4 + [4] * 4
    first = next(q for q in later if q.id.endswith("/rethink/1/r4"))
    p = re.search(r"Problem: (.*?)</user>", first.prompt).group(1)
    g = gold_of(p)
    base = engine.render_chat([{"role": "user", "content": PromptLibrary().render("math/boxed", question=p)}])
    # chain 1 started from pool sample 1 (wrong), then rounds 2 and 3, each followed by the cue
    assert first.prompt == (base + f"It is \\boxed{{{g + 1}}}." + CUE + f"I added wrongly before: it is "
                            f"\\boxed{{{g}}}." + CUE + "Still thinking about it" + CUE)
    assert first.params.n == 1 and first.params.max_tokens == 64 and first.params.temperature == 0.6
    assert len({q.params.seed for q in later}) == len(later), "every round of every chain has its own seed"


def test_accuracy_tokens_and_the_rounds_axis(tmp_path):
    engine = ScriptedEngine(policy)
    res = EvalRun(config(tmp_path), engine, tmp_path / "run", progress=False).run()
    pts = {p["budget"]: p for p in res["points"] if p["strategy"] == "rethink"}
    assert sorted(pts) == [1, 2, 4] and {p["axis"] for p in pts.values()} == {"rounds"}
    # round 1: chain 0 right, chain 1 wrong; round 2 corrects chain 1; round 3 has no answer (round 2's stands)
    assert pts[1]["accuracy"] == 0.5 and pts[2]["accuracy"] == 1.0 and pts[4]["accuracy"] == 1.0
    # tokens: the scripted engine counts words + 1 for EOS; r rounds spend the sum of rounds 1..r
    pool_tokens = len("It is \\boxed{7}.".split()) + 1
    r2 = len("I added wrongly before: it is \\boxed{7}.".split()) + 1
    r3 = len("Still thinking about it".split()) + 1
    r4 = len("Confirmed, \\boxed{7}.".split()) + 1
    assert pts[1]["tokens"] == pool_tokens and pts[2]["tokens"] == pool_tokens + r2
    assert pts[4]["tokens"] == pool_tokens + r2 + r3 + r4 == pts[4]["critical_path_tokens"]
    assert pts[4]["no_answer_rate"] == 0.0
    # the records: one per (problem, chain, reported round), holding the whole chain and the standing answer
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["strategy"] == "rethink"]
    assert len(mine) == 2 * 2 * 3
    r3_chain = next(r for r in mine if r["budget"] == 4 and r["sample_index"] == 1)
    assert r3_chain["text"].count(CUE) == 3 and r3_chain["correct"] and r3_chain["answer"] == r3_chain["gold"]
    # the sequential curve gets its own fit, on rounds
    assert res["fits"]["rethink"]["axis"] == "rounds" and "sequential" in res["fits"]["rethink"]["label"]
    # a rerun sends nothing: every round is in the store
    again = ScriptedEngine(policy)
    res2 = EvalRun(config(tmp_path), again, tmp_path / "run", progress=False).run()
    assert again.calls == [] and [p["accuracy"] for p in res2["points"]] == [p["accuracy"] for p in res["points"]]


def test_the_answer_at_a_round_is_the_last_one_found():
    def s(answer, correct):
        return PoolSample("t", answer, "boxed" if answer else "none", correct, "", 1, 0.0, None)

    chain = [s(None, False), s("5", False), s(None, False), s("7", True), s(None, False)]
    assert [x.answer for x in answer_at_rounds(chain)] == [None, "5", "5", "7", "7"]
    assert [x.correct for x in answer_at_rounds(chain)] == [False, False, False, True, True]


def test_rounds_reported_and_settings_checked(tmp_path):
    assert config(tmp_path, rethink_rounds=1).rethink_budgets() == [1]
    assert config(tmp_path, rethink_rounds=6).rethink_budgets() == [1, 2, 4, 6]
    assert config(tmp_path, rethink_rounds=8).rethink_budgets() == [1, 2, 4, 8]
    with pytest.raises(InputError, match="rethink_rounds"):
        EvalRun(config(tmp_path, rethink_rounds=0), ScriptedEngine(policy), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="--rethink-rounds 1 does no rethinking"):
        EvalRun(config(tmp_path, rethink_rounds=1), ScriptedEngine(policy), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="--rethink-samples"):
        EvalRun(config(tmp_path, rethink_samples=5), ScriptedEngine(policy), tmp_path / "r", progress=False)
    with pytest.raises(Exception, match="nope"):
        EvalRun(config(tmp_path, rethink_template="eval/nope"), ScriptedEngine(policy), tmp_path / "r",
                progress=False)


def test_the_tiny_model_runs_every_kind_of_budget_and_the_report_keeps_them_apart(tmp_path, tiny_model):
    from parafuse.cli import main

    out = tmp_path / "run"
    args = ["eval", "run", "--data", str(write_data(tmp_path)), "--benchmark", "toy", "--model", str(tiny_model),
            "-n", "4", "--strategy", "plain,majority,rethink,budget,parallel_r1", "--token-budgets", "4,8",
            "--budget-samples", "1", "--rethink-rounds", "4", "--rethink-samples", "2", "--max-tokens", "12",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    axes = {(p["strategy"], p["axis"]) for p in res["points"]}
    assert axes == {("plain", "samples"), ("majority", "samples"), ("rethink", "rounds"), ("budget", "token_cap"),
                    ("parallel_r1", "decodes")}
    rethink = sorted((p["budget"], p["tokens"]) for p in res["points"] if p["strategy"] == "rethink")
    assert [r for r, _ in rethink] == [1, 2, 4] and rethink[0][1] < rethink[1][1] < rethink[2][1]
    assert {"pass@k", "pass@k F_max=1", "majority", "rethink"} <= set(res["fits"])
    assert {"parallel_response_rate", "speedup", "parallel_token_share"} <= set(res["format"]["parallel_r1"])
    assert main(["eval", "report", str(out)]) == 0
    for name in ("saturation_fits.png", "rethink_rounds.png", "token_caps.png"):
        assert (out / name).stat().st_size > 1000
    assert (out / "report.html").read_text().count("data:image/png") >= 7


LONG_PAUSE = "Let me look at it once more. " * 12  # > 300 characters: the reference verifier's window


def policy_for_two_graders(req, j):
    """Rounds each verdict of both graders can read: a box and a `Final Answer:` line; round 3 has neither and
    is long, so in the joined text of 3 rounds the reference's 300-character window holds no answer at all."""
    g = gold_of(question_of(req))
    r = rounds_so_far(req)
    if r == 1:
        v = g if j % 2 == 0 else g + 1
        return f"It is \\boxed{{{v}}}.\nFinal Answer: {v}", "stop"
    if r == 2:
        return f"I added wrongly before: \\boxed{{{g}}}.\nFinal Answer: {g}", "stop"
    return LONG_PAUSE, "stop"


def test_the_second_grader_grades_a_chain_round_by_round_as_the_first(tmp_path):
    assert len(LONG_PAUSE) > 300 and len(LONG_PAUSE.split()) < 200  # and within the token cap below
    cfg = config(tmp_path, rethink_rounds=3, reference_grading=True, max_tokens=200)
    res = EvalRun(cfg, ScriptedEngine(policy_for_two_graders), tmp_path / "run", progress=False).run()
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["strategy"] == "rethink"]
    assert sorted({r["budget"] for r in mine}) == [1, 2, 3]
    for r in mine:
        # from the policy: chain 0 right from round 1, chain 1 from round 2; round 3's silence keeps round 2's answer
        right = r["sample_index"] % 2 == 0 or r["budget"] >= 2
        assert r["parafuse_correct"] is right and r["reference_correct"] is right, r
        assert r["reference_answer"] == str(int(r["gold"]) + (0 if right else 1))
    chain = next(r for r in mine if r["budget"] == 3)
    assert LONG_PAUSE in chain["text"]  # the row still shows the whole chain
    by = res["verdicts"]["by_strategy"]
    assert by["rethink@3"]["agreement"] == 1.0 and by["rethink@3"]["parallel_r1_reference"] == 1.0
