"""`parafuse eval run` end to end: the pool, the strategies' arithmetic, resume, refusals.

A scripted engine decides which samples are right (samples 0 and 2 of 4 are), so every
number below follows from the definitions; one test runs the real tiny model instead.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eval.config import EvalConfig
from eval.run import EvalRun
from reasoning.types import InputError
from reasoning.engines.scripted import ScriptedEngine, question_of
from reasoning.settings import from_dict

PROBLEMS = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in [(3, 4), (10, 5), (7, 8)]]


def gold_of(question: str) -> int:
    a, b = map(int, re.findall(r"-?\d+", question)[:2])
    return a + b


def policy(req, j):
    if req.prompt is not None and req.prompt.endswith("\\boxed{"):  # the forced final answer
        return f"{gold_of(question_of(req))}}}", "stop"
    if req.id and "/budget@" in req.id:  # thinking that runs out of budget
        return "thinking " * (req.params.max_tokens - 1) + f"step{j}", "length"
    q = question_of(req)
    g = gold_of(q)
    if "candidate solutions" in req.messages[-1]["content"]:  # the fusor
        return f"Combining them, the answer is \\boxed{{{g}}}.", "stop"
    return (f"So the total is \\boxed{{{g}}}." if j % 2 == 0 else f"I get \\boxed{{{g + 100 + j}}}."), "stop"


def write_data(tmp_path: Path, rows=PROBLEMS) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tmp_path, **kw) -> EvalConfig:
    if "data" not in kw:
        kw["data"] = str(write_data(tmp_path))
    base = dict(benchmark="toy", model="scripted", engine="scripted", n=4,
                strategies=("plain", "majority", "best_of_n", "fusion", "budget"), token_budgets=(8, 16),
                budget_samples=2, max_tokens=64, grader_timeout=10)
    base.update(kw)
    return from_dict(EvalConfig, dict(**base))


def points(results, strategy):
    return {p["budget"]: p for p in results["points"] if p["strategy"] == strategy}


def test_strategies_score_the_pool_as_defined(tmp_path):
    engine = ScriptedEngine(policy)
    res = EvalRun(config(tmp_path), engine, tmp_path / "run", progress=False).run()
    m = res["metrics"]
    assert m["k"] == [1, 2, 3, 4]
    assert m["pass@k"][0] == pytest.approx(0.5) and m["pass@k"][1] == pytest.approx(1 - 1 / 6)
    assert m["pass@k"][3] == pytest.approx(1.0)
    assert points(res, "plain")[1]["accuracy"] == pytest.approx(0.5)
    maj = points(res, "majority")
    assert sorted(maj) == [1, 2, 4]
    # Scored over every size-N subset of the pool (samples 0 and 2 right, 1 and 3 wrong with different answers):
    # maj@1 is avg@1; of the six pairs, {0,2} wins, {1,3} loses, the four mixed pairs tie at 1/2.
    assert maj[1]["accuracy"] == pytest.approx(0.5) and maj[2]["accuracy"] == pytest.approx(0.5)
    assert maj[4]["accuracy"] == 1.0
    assert all(p["estimator"].startswith("mean over all size-") and p["resampling_se"] == 0 for p in maj.values())
    # best-of-N by agreement: in a tied pair the lower index wins, so {0,1}, {0,3}, {0,2}, {2,3} are right
    bon = points(res, "best_of_n")
    assert [bon[n]["accuracy"] for n in (1, 2, 4)] == pytest.approx([0.5, 4 / 6, 1.0])
    fusion = points(res, "fusion")
    assert all(p["accuracy"] == 1.0 for p in fusion.values())
    assert fusion[4]["tokens"] > points(res, "majority")[4]["tokens"], "fusor tokens count as compute"
    budget = points(res, "budget")
    assert sorted(budget) == [8, 16] and all(p["accuracy"] == 1.0 for p in budget.values())
    forced = [c for c in engine.calls if c.prompt is not None]
    assert len(forced) == len(PROBLEMS) * 2 * 2  # problems x budget samples x caps
    assert res["problems"] == {"total": 3, "graded": 3, "excluded": 0, "excluded_ids": []}
    assert "majority" in res["fits"]
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    plain = [s for s in samples if s["strategy"] == "plain"]
    assert len(plain) == 12 and sum(s["correct"] for s in plain) == 6
    assert {"text", "answer", "correct", "tokens", "critical_path_tokens", "latency_s", "seed"} <= set(plain[0])
    assert all(s["extractor"] == "boxed" for s in plain)
    # the audit trail: the gold as given and as parsed, and how each sample ended
    assert {(s["gold_given"], s["gold"]) for s in plain if s["problem_id"] == plain[0]["problem_id"]} == {("7", "7")}
    assert {s["finish_reason"] for s in plain} == {"stop"}
    assert {s["finish_reason"] for s in samples if s["strategy"] == "budget"} == {"length"}
    assert {p["axis"] for p in res["points"] if p["strategy"] == "budget"} == {"token_cap"}
    assert {p["truncation_rate"] for p in res["points"] if p["strategy"] == "budget"} == {1.0}
    assert all(p["axis"] == "samples" for p in res["points"] if p["strategy"] != "budget")


def test_rerun_resumes_without_generating_and_new_strategies_reuse_the_pool(tmp_path):
    run(tmp_path, strategies=("plain", "majority"))
    engine = ScriptedEngine(policy)
    res = EvalRun(config(tmp_path, strategies=("plain", "majority", "best_of_n")), engine, tmp_path / "run",
                  progress=False).run()
    assert engine.calls == [], "the pool came from the store"
    assert points(res, "best_of_n")


def run(tmp_path, **kw):
    return EvalRun(config(tmp_path, **kw), ScriptedEngine(policy), tmp_path / "run", progress=False).run()


def test_a_run_dir_made_with_other_settings_is_refused(tmp_path):
    run(tmp_path, strategies=("plain",))
    with pytest.raises(InputError, match=r"other settings \(n: 4 there, 8 now\)"):
        run(tmp_path, strategies=("plain",), n=8)


def test_problems_without_gold_are_reported_excluded_and_counted(tmp_path):
    rows = PROBLEMS + [{"question": "What is 1 + 1?", "answer": ""}]
    cfg = config(tmp_path, data=str(write_data(tmp_path, rows)), strategies=("plain",))
    res = EvalRun(cfg, ScriptedEngine(policy), tmp_path / "run", progress=False).run()
    assert res["problems"]["excluded"] == 1 and res["problems"]["graded"] == 3
    assert res["problems"]["excluded_ids"][0]["reason"]


def test_unknown_strategy_and_benchmark_are_named(tmp_path):
    with pytest.raises(InputError, match="unknown strategy"):
        EvalRun(config(tmp_path, strategies=("beam",)), ScriptedEngine(policy), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="gsm8k"):
        EvalRun(config(tmp_path, data=None, benchmark="nope"), ScriptedEngine(policy), tmp_path / "r",
                progress=False).run()


def test_cli_runs_the_tiny_model_and_writes_a_report(tmp_path, tiny_model, capsys, monkeypatch):
    from parafuse.cli import main

    data = write_data(tmp_path)
    out = tmp_path / "run"
    args = ["eval", "run", "--data", str(data), "--benchmark", "toy", "--model", str(tiny_model), "-n", "4",
            "--strategy", "plain,majority,best_of_n,budget", "--token-budgets", "4,8", "--budget-samples", "1",
            "--max-tokens", "16", "--out", str(out), "--no-progress"]
    code = main(args)
    cap = capsys.readouterr()
    assert code == 0, cap.err
    res = json.loads((out / "results.json").read_text())
    assert res["problems"]["graded"] == 3 and res["config"]["model"] == str(tiny_model)
    assert {p["strategy"] for p in res["points"]} == {"plain", "majority", "best_of_n", "budget"}
    assert res["versions"]["torch"] and res["grader"]
    assert "majority" in cap.out
    assert "starting the hf engine" in cap.err
    assert main(["eval", "report", str(out)]) == 0
    assert (out / "report.html").exists() and (out / "report.md").exists()
    # the same command again: every request is in the store, so no model is loaded
    from reasoning.engines import hf

    monkeypatch.setattr(hf.HFEngine, "__init__", lambda *a, **k: pytest.fail("a cached rerun loaded the model"))
    assert main(args) == 0
    cap = capsys.readouterr()
    assert "starting the hf engine" not in cap.err
    again = json.loads((out / "results.json").read_text())
    def steady(points):  # wall times come back from the store rounded to the microsecond
        return [{k: v for k, v in p.items() if k != "wall_s"} for p in points]

    assert steady(again["points"]) == steady(res["points"]) and again["engine"]["started"] is False


def test_a_data_run_is_named_after_its_file(tmp_path):
    named, default = from_dict(EvalConfig, {"data": str(write_data(tmp_path))}), from_dict(EvalConfig, {})
    named.resolve(), default.resolve()
    assert named.benchmark == "problems" and default.benchmark == "gsm8k"
    res = EvalRun(config(tmp_path, benchmark="", label="my run", strategies=("plain",)), ScriptedEngine(policy),
                  tmp_path / "run", progress=False).run()
    assert res["label"] == "my run" and res["config"]["benchmark"] == "problems"


def test_a_run_that_failed_before_generating_does_not_lock_its_folder(tmp_path):
    no_gold = [{"question": "What is 1 + 1?", "answer": ""}]
    bad = config(tmp_path, data=str(write_data(tmp_path, no_gold)), strategies=("plain",))
    with pytest.raises(InputError, match="usable gold"):
        EvalRun(bad, ScriptedEngine(policy), tmp_path / "run", progress=False).run()
    # the corrected rerun (other data, other n) takes the folder over: nothing was generated there
    fixed = config(tmp_path, strategies=("plain",), n=8)
    res = EvalRun(fixed, ScriptedEngine(policy), tmp_path / "run", progress=False).run()
    assert points(res, "plain")


def test_a_typo_is_reported_before_any_engine_starts(tmp_path, monkeypatch, capsys):
    import eval.cli
    from parafuse.cli import main

    def no_engine(*args, **kwargs):
        raise AssertionError("an engine was started before the settings were checked")

    monkeypatch.setattr(eval.cli, "engine_from_args", no_engine)
    data = write_data(tmp_path)
    base = ["eval", "run", "--data", str(data), "--engine", "vllm", "--model", "org/model",
            "--out", str(tmp_path / "o")]
    assert main(base + ["--strategy", "plain,majorty"]) == 2
    assert "unknown strategy ['majorty']" in capsys.readouterr().err
    assert main(base + ["--template", "math/no-such-template"]) == 2
    assert "no-such-template" in capsys.readouterr().err


def test_a_decode_that_fails_is_recorded_and_the_other_strategies_still_write_results(tmp_path):
    # Problem "10 + 5" overflows the context on its second ThreadWeaver request; the fusor is unreachable.
    def flaky(req, j):
        if req.prompt is not None and "<Outlines>" in req.prompt and "10 + 5" in req.prompt:
            raise RuntimeError("prompt is longer than the maximum model length")
        if req.prompt is not None:  # ThreadWeaver: an outline list it cannot fork, then the answer
            return ("\n<Parallel>\n<Outlines>\n</Outlines>" if "<Outlines>" not in req.prompt
                    else f" so \\boxed{{{gold_of(question_of(req))}}}"), "stop"
        if "candidate solutions" in req.messages[-1]["content"]:
            raise ConnectionError("fusor unreachable")
        return policy(req, j)

    cfg = config(tmp_path, strategies=("plain", "majority", "fusion", "threadweaver"), n=2)
    with pytest.raises(RuntimeError, match=r"1 strategies failed \(fusion\)"):
        EvalRun(cfg, ScriptedEngine(flaky), tmp_path / "run", progress=False).run()
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(res["failed_strategies"]) == {"fusion"} and "fusor unreachable" in res["failed_strategies"]["fusion"]
    assert {p["strategy"] for p in res["points"]} == {"plain", "majority", "threadweaver"}
    assert res["format"]["threadweaver"]["failed_decodes"] == 2  # both decodes of the one problem
    tw = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    tw = [s for s in tw if s["strategy"] == "threadweaver"]
    failed = [s for s in tw if s["finish_reason"] == "failed"]
    assert len(failed) == 2 and all("maximum model length" in s["grade_reason"] and not s["correct"] for s in failed)
    assert sum(s["correct"] for s in tw) == 4, "the other problems' decodes are graded as usual"


def test_what_the_strategies_need_is_checked_before_the_pool(tmp_path):
    from reasoning.engines import make_engine

    # budget forcing continues raw text: a server engine without a local tokenizer is refused up front
    server = make_engine("openai", "m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(InputError, match="--tokenizer"):
        EvalRun(config(tmp_path, strategies=("plain", "budget")), server, tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="between 1 and n=4"):
        EvalRun(config(tmp_path, budgets=(2, 9)), ScriptedEngine(policy), tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="fusion_subsets"):
        EvalRun(config(tmp_path, fusion_subsets=0), ScriptedEngine(policy), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_without_a_gpu_an_in_process_engine_gets_cpu_sized_defaults(monkeypatch, capsys, tiny_model):
    import torch

    from eval.cli import eval_config
    from parafuse.cli import build_parser

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def cfg(*flags):
        return eval_config(build_parser().parse_args(["eval", "run", "--model", str(tiny_model), "--out", "x",
                                                      *flags]))

    small = cfg()
    assert (small.n, small.pool.max_tokens) == (4, 512)
    assert "no GPU: using CPU-sized defaults n=4, pool.max_tokens=512" in capsys.readouterr().err
    mine = cfg("-n", "8")
    assert (mine.n, mine.pool.max_tokens) == (8, 512)
    capsys.readouterr()
    assert cfg("-n", "8", "--max-tokens", "64").pool.max_tokens == 64 and "CPU-sized" not in capsys.readouterr().err
    server = cfg("--engine", "openai", "--base-url", "http://127.0.0.1:9/v1")
    assert (server.n, server.pool.max_tokens) == (16, 2048), "a server's GPUs are elsewhere"


# ---- the decoded strategies' own prompt, response cap and grader --------------------------------------------

def r1_policy(req, j):
    """Parallel-R1 on the scripted engine: think, fork two paths, summarize, answer. Problem 3 + 4 writes the
    reference's `Final Answer:` line; the others only a \\boxed{} answer (right for parafuse, wrong for the
    reference verifier)."""
    if req.prompt is None:
        return policy(req, j)
    g = gold_of(question_of(req))
    if req.prompt.endswith("<Path>"):
        return "p q </Path>", "stop"
    if req.prompt.endswith("<Summary>"):
        return "s </Summary>", "stop"
    if "</Summary>" in req.prompt.split("<assistant>", 1)[1]:  # the prompt itself names the tags
        return (f"So Final Answer: {g}" if g == 7 else f"So \\boxed{{{g}}}"), "stop"
    return "a b c d e <Parallel>", "stop"


def rows_of(tmp_path):
    return [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]


def test_a_decoded_strategy_uses_its_method_prompt_and_a_response_cap(tmp_path):
    engine = ScriptedEngine(r1_policy)
    cfg = config(tmp_path, strategies=("plain", "parallel_r1"), n=2, max_total_tokens=("parallel_r1=20",))
    res = EvalRun(cfg, engine, tmp_path / "run", progress=False).run()
    decoder = [c for c in engine.calls if c.prompt is not None]
    # the method's own prompt, not the pool's math/boxed
    assert decoder and all("Final Answer:" in c.prompt and "<Parallel>" in c.prompt and "\\boxed" not in
                           c.prompt.split("<assistant>")[0] for c in decoder)
    assert all("\\boxed{}" in c.messages[-1]["content"] for c in engine.calls if c.prompt is None), "pool unchanged"
    # main 6 tokens, paths 3 + 3, summary 2 = 14; the next main request gets what is left of the 20
    mains = [c for c in decoder if c.id.endswith("/main/0/0") or c.id.endswith("/main/1/0")]
    assert {c.params.max_tokens for c in mains if c.id.endswith("/main/0/0")} == {20}
    assert {c.params.max_tokens for c in mains if c.id.endswith("/main/1/0")} == {6}
    [pt] = [p for p in res["points"] if p["strategy"] == "parallel_r1"]
    # the axis counts the response (the cap's 20 generated tokens plus the inserted tags), as its critical path does
    assert pt["accuracy"] == 1.0 and pt["critical_path_tokens"] <= pt["tokens"] < 20 + 20
    assert "verdicts" not in res, "one grader: no comparison"


def test_default_response_cap_is_the_pool_max_tokens_and_a_template_can_be_set(tmp_path):
    from eval.config import decoder_settings

    cfg = config(tmp_path, strategies=("plain", "parallel_r1", "threadweaver", "parathinker"))
    assert {s: decoder_settings(cfg, s).max_total_tokens for s in ("parallel_r1", "threadweaver", "parathinker")} \
        == dict.fromkeys(("parallel_r1", "threadweaver", "parathinker"), 64)
    assert decoder_settings(cfg, "parathinker").template == "methods/parathinker"
    mine = config(tmp_path, strategies=("plain", "parallel_r1", "threadweaver"),
                  decoder_template=("run", "threadweaver=math/question"), max_total_tokens=("none",))
    assert decoder_settings(mine, "parallel_r1").template == "math/boxed"
    assert decoder_settings(mine, "threadweaver").template == "math/question"
    assert decoder_settings(mine, "parallel_r1").max_total_tokens is None
    with pytest.raises(InputError, match="'beam' in 'beam=3' is not a decoded strategy"):
        EvalRun(config(tmp_path, strategies=("plain", "parallel_r1"), max_total_tokens=("beam=3",)),
                ScriptedEngine(r1_policy), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="must be a positive number of tokens"):
        EvalRun(config(tmp_path, strategies=("plain", "parallel_r1"), max_total_tokens=("0",)),
                ScriptedEngine(r1_policy), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="add parallel_r1 to --strategy"):
        EvalRun(config(tmp_path, strategies=("plain",), reference=("parallel_r1",)), ScriptedEngine(r1_policy),
                tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="beam is not a decoded strategy"):
        EvalRun(config(tmp_path, strategies=("plain", "threadweaver"), reference=("beam",)),
                ScriptedEngine(r1_policy), tmp_path / "r", progress=False)


def test_the_threadweaver_and_parathinker_reference_presets(tmp_path):
    from eval.config import decoder_settings

    cfg = config(tmp_path, strategies=("plain", "threadweaver", "parathinker"), reference=("all",))
    weaver, thinker = decoder_settings(cfg, "threadweaver"), decoder_settings(cfg, "parathinker")
    assert weaver.reference and thinker.reference
    assert (weaver.template, weaver.sampling.temperature, weaver.sampling.top_p) == ("methods/threadweaver", 0.6, 0.95)
    assert (thinker.template, thinker.sampling.temperature, thinker.sampling.top_p) == ("methods/parathinker", 0.5,
                                                                                         1.0)
    assert weaver.max_total_tokens is None and thinker.max_total_tokens is None
    assert thinker.overrides == {"num_paths": 4, "max_path_tokens": 16384, "first_finish": True}
    # `all` means the run's own decoded strategies: a run without ParaThinker is not refused for it
    only_r1 = config(tmp_path, strategies=("plain", "parallel_r1"), reference=("all",))
    EvalRun(only_r1, ScriptedEngine(r1_policy), tmp_path / "all", progress=False)
    assert decoder_settings(only_r1, "parallel_r1").reference


def test_reference_grading_writes_both_verdicts(tmp_path):
    res = EvalRun(config(tmp_path, strategies=("plain", "parallel_r1"), n=2, reference_grading=True),
                  ScriptedEngine(r1_policy), tmp_path / "run", progress=False).run()
    rows = rows_of(tmp_path)
    r1 = [r for r in rows if r["strategy"] == "parallel_r1"]
    assert all(r["parafuse_correct"] and r["correct"] for r in r1), "parafuse scores, and takes a lone box"
    assert {r["reference_correct"] for r in r1 if r["gold"] == "7"} == {True}
    assert {r["reference_correct"] for r in r1 if r["gold"] != "7"} == {False}
    assert all(r["reference_answer"] is None for r in r1 if r["gold"] != "7")
    # the pool answers in \boxed{}: the reference verifier finds no Final Answer there
    assert not any(r["reference_correct"] for r in rows if r["strategy"] == "plain")
    compared = res["verdicts"]["by_strategy"]["parallel_r1@1"]
    assert compared["scored_by"] == "parafuse" and compared["rows"] == 6
    assert compared["parafuse"] == 1.0 and compared["parallel_r1_reference"] == pytest.approx(1 / 3)
    assert compared["agreement"] == pytest.approx(1 / 3)


def test_the_parallel_r1_reference_preset(tmp_path):
    engine = ScriptedEngine(r1_policy)
    res = EvalRun(config(tmp_path, strategies=("plain", "parallel_r1"), n=2, reference=("parallel_r1",)),
                  engine, tmp_path / "run", progress=False).run()
    decoder = [c for c in engine.calls if c.prompt is not None]
    assert {(c.params.temperature, c.params.top_p) for c in decoder} == {(1.0, 1.0)}
    assert {c.params.max_tokens for c in decoder if c.prompt.endswith("<Path>")} == {4096}
    assert {c.params.max_tokens for c in decoder if c.id.endswith("/main/0/0")} == {3000}
    assert all("Final Answer:" in c.prompt for c in decoder)
    [pt] = [p for p in res["points"] if p["strategy"] == "parallel_r1"]
    assert pt["accuracy"] == pytest.approx(1 / 3), "scored by the reference verifier: a lone box is wrong"
    assert points(res, "plain")[1]["accuracy"] == 0.5, "the pool is still graded by parafuse"
    r1 = [r for r in rows_of(tmp_path) if r["strategy"] == "parallel_r1"]
    assert all(r["correct"] == r["reference_correct"] and r["parafuse_correct"] for r in r1)
    assert res["verdicts"]["by_strategy"]["parallel_r1@1"]["scored_by"] == "parallel_r1_reference"
    assert res["verdicts"]["by_strategy"]["plain@1"]["scored_by"] == "parafuse"


def test_the_whole_run_can_be_scored_by_the_reference_verifier(tmp_path):
    def final_answer(req, j):
        g = gold_of(question_of(req))
        return (f"Final Answer: {g}" if j % 2 == 0 else f"\\boxed{{{g}}}"), "stop"

    res = EvalRun(config(tmp_path, strategies=("plain", "majority"), grader="parallel_r1_reference"),
                  ScriptedEngine(final_answer), tmp_path / "run", progress=False).run()
    assert points(res, "plain")[1]["accuracy"] == 0.5 and res["grader"]["grader"].startswith("parallel_r1_reference")
    plain = [r for r in rows_of(tmp_path) if r["strategy"] == "plain"]
    assert all(r["parafuse_correct"] for r in plain) and sum(r["reference_correct"] for r in plain) == 6


def test_fusor_prompt_and_completion_tokens_are_on_the_token_axis(tmp_path):
    from reasoning.engines.scripted import ScriptedEngine as Replay

    engine = ScriptedEngine(policy)
    res = EvalRun(config(tmp_path, strategies=("plain", "fusion"), n=2, budgets=(2,), fusion_subsets=1), engine,
                  tmp_path / "run", progress=False).run()
    fusor = [c for c in engine.calls if c.messages is not None and "candidate solutions" in c.messages[-1]["content"]]
    assert len(fusor) == len(PROBLEMS)
    replay = Replay(policy)
    spent = [(r.prompt_tokens, r.completions[0].tokens) for r in map(replay.answer, fusor)]
    assert all(p > 0 and c > 0 for p, c in spent)
    pool = {}
    for r in rows_of(tmp_path):
        if r["strategy"] == "plain":
            pool[r["problem_id"]] = pool.get(r["problem_id"], 0) + r["tokens"]
    expected = sum(pool.values()) / len(pool) + sum(p + c for p, c in spent) / len(spent)
    assert points(res, "fusion")[2]["tokens"] == pytest.approx(expected)
    # the critical path adds only the fusor's completion to the longest sample
    assert points(res, "fusion")[2]["critical_path_tokens"] < expected


def test_parallel_r1_on_the_tiny_model_with_its_prompt_cap_and_reference_grading(tmp_path, tiny_model, capsys):
    from parafuse.cli import main

    out = tmp_path / "run"
    code = main(["eval", "run", "--data", str(write_data(tmp_path)), "--benchmark", "toy", "--model", str(tiny_model),
                 "-n", "2", "--strategy", "plain,parallel_r1", "--max-tokens", "8", "--max-total-tokens", "12",
                 "--reference-grading", "--out", str(out), "--no-progress"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "parallel_r1: prompt methods/parallel_r1" in cap.err and "at most 12 tokens per decode" in cap.err
    res = json.loads((out / "results.json").read_text())
    [pt] = [p for p in res["points"] if p["strategy"] == "parallel_r1"]
    assert pt["n_problems"] == 3 and 0 < pt["tokens"] <= 12
    rows = [r for r in rows_of(tmp_path) if r["strategy"] == "parallel_r1"]
    assert len(rows) == 6 and all({"reference_correct", "parafuse_correct"} <= set(r) for r in rows)
    assert "parallel_r1@1" in res["verdicts"]["by_strategy"]


def test_decoder_samples_sets_the_decodes_per_problem_apart_from_the_pool(tmp_path):
    engine = ScriptedEngine(r1_policy)
    cfg = config(tmp_path, strategies=("plain", "parallel_r1"), n=4, decoder_samples=2)
    res = EvalRun(cfg, engine, tmp_path / "run", progress=False).run()
    rows = rows_of(tmp_path)
    decoded = [r for r in rows if r["strategy"] == "parallel_r1"]
    assert len([r for r in rows if r["strategy"] == "plain"]) == len(PROBLEMS) * 4  # the pool keeps its n
    assert len(decoded) == len(PROBLEMS) * 2
    per_problem = {}
    for r in decoded:
        per_problem.setdefault(r["problem_id"], set()).add(r["seed"])
    assert all(len(seeds) == 2 for seeds in per_problem.values())  # two decodes, each its own seed
    [pt] = [p for p in res["points"] if p["strategy"] == "parallel_r1"]
    assert pt["estimator"] == "mean of 2 decodes per problem"
    assert {c.id.split("/")[0] for c in engine.calls if c.prompt is not None} == {r["problem_id"] for r in decoded}
    with pytest.raises(InputError, match="--decoder-samples must be at least 1"):
        EvalRun(config(tmp_path, strategies=("plain", "parallel_r1"), decoder_samples=0), ScriptedEngine(r1_policy),
                tmp_path / "r", progress=False)
