"""`synth traces`: each method's acceptance rules (each with a case it rejects), end to end on the
symbolic teacher and on the tiny model, bad input, and a SIGKILL mid-run."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoning.engines import make_engine
from reasoning.engines.scripted import ScriptedEngine
from reasoning.formats import get_format
from reasoning.settings import from_dict
from reasoning.tasks.arith import generate, solve
from reasoning.types import InputError
from synthesis.traces import TracesConfig, synthesize_traces
from synthesis.traces import checks

ROOT = Path(__file__).resolve().parent.parent


def pool(path: Path, level: int = 3, count: int = 30) -> Path:
    path.write_text("".join(json.dumps(p.to_record()) + "\n" for p in generate(level, count, "train")))
    return path


def run(tmp_path: Path, engine, method: str, name: str = "out", level: int = 3,
        **settings) -> tuple[dict, list[dict], list[dict]]:
    cfg = from_dict(TracesConfig, dict(input=str(pool(tmp_path / f"{name}.jsonl", level)), method=method, **settings))
    out = tmp_path / name
    stats = synthesize_traces(cfg, engine, out, progress=False, log=lambda _: None)
    rows = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    return stats, rows, rejected


# ---- end to end on the symbolic teacher ----------------------------------------------------------

@pytest.mark.parametrize("method", ["parallel_r1", "threadweaver", "parathinker"])
def test_every_kept_trace_is_valid_and_right_on_the_symbolic_teacher(tmp_path, method):
    stats, rows, rejected = run(tmp_path, make_engine("symbolic", "arith-teacher"), method)
    assert rows and stats["kept"] == len(rows) and stats["generated"] == 30
    assert stats["kept"] + sum(stats["rejected_by"].values()) == stats["generated"]
    module = get_format(method)
    for row in rows:
        assert module.validate(row["trace"], **module.STRUCTURE_ONLY) == []
        assert row["answer"] == str(solve(row["problem"]))
        assert "".join(p["text"] for p in row["pieces"]) == row["trace"], "the pieces rebuild the trace"
        assert row["messages"][-1]["content"] == row["trace"] and row["critical_path_tokens"] <= row["total_tokens"]
    if method == "threadweaver":
        assert all(r["speedup"] > 1 for r in rows) and set(stats["rejected_by"]) <= {"no_parallel_block", "no_speedup"}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Acceptance rate" in card and str(stats["kept"]) in card


def test_traces_are_written_in_another_format_through_the_trace_tree(tmp_path):
    _, rows, _ = run(tmp_path, make_engine("symbolic", "arith-teacher"), "threadweaver", output_format="parallel_r1")
    assert rows and all(r["format"] == "parallel_r1" and "<Path>" in r["trace"] for r in rows)


def test_threadweaver_rewrites_the_datasets_own_solution_when_asked(tmp_path):
    from reasoning.engines.symbolic import sequential_solution

    problems = [p for p in generate(3, 40, "train") if p.independent][:10]
    data = tmp_path / "own.jsonl"
    data.write_text("".join(json.dumps({**p.to_record(), "worked": sequential_solution(p, p.answer, "boxed")}) + "\n"
                            for p in problems))
    cfg = from_dict(TracesConfig, dict(input=str(data), method="threadweaver", solution_field="worked"))
    stats = synthesize_traces(cfg, make_engine("symbolic", "arith-teacher"), tmp_path / "out", progress=False,
                              log=lambda _: None)
    rows = [json.loads(line) for line in (tmp_path / "out" / "data" / "train.jsonl").read_text().splitlines()]
    assert stats["requests_sent"] == 10, "stage 1 came from the dataset: one rewrite request per problem"
    assert rows and all(r["sequential_from"] == "dataset" for r in rows)


def test_a_rerun_sends_nothing_and_a_filter_change_regenerates_nothing(tmp_path):
    engine = make_engine("symbolic", "arith-teacher")
    first, _, _ = run(tmp_path, engine, "parallel_r1")
    again, _, _ = run(tmp_path, engine, "parallel_r1", max_response_tokens=30)
    assert first["requests_sent"] == 30 and again["requests_sent"] == 0 and again["requests_from_store"] == 30
    assert again["rejected_by"].get("too_long", 0) > 0


# ---- each rule rejects what it should -------------------------------------------------------------

def teacher(reply_for):
    """A scripted teacher: `reply_for(question, request)` decides the reply."""
    from reasoning.engines.symbolic import ArithTeacher

    def policy(request, index):
        user, _ = ArithTeacher.split(request)
        return reply_for(ArithTeacher.question(user), user, request), "stop"
    return ScriptedEngine("rules", policy=policy)


def test_parallel_r1_rules(tmp_path):
    def reply(question, user, request):
        answer = solve(question)
        n = len(question) % 5
        if n == 0:
            return f"<Parallel><Path>a</Path></Parallel>\n<Summary>s</Summary>\nFinal Answer: {answer}"  # 1 path
        if n == 1:
            return f"No block here.\nFinal Answer: {answer}"
        if n == 2:
            block = "<Parallel><Path>a</Path><Path>b</Path></Parallel>\n<Summary>s</Summary>"
            return f"{block}\nFinal Answer: {answer + 1}"
        if n == 3:
            return "<Parallel><Path>" + "word " * 80 + f"</Path><Path>b</Path></Parallel>\n<Summary>s</Summary>\n" \
                   f"Final Answer: {answer}"
        return ("Two ways.<Parallel><Path>a</Path> x <Path>b</Path></Parallel> y <Summary>s</Summary>\n"
                f"Final Answer: {answer}")

    stats, rows, rejected = run(tmp_path, teacher(reply), "parallel_r1", max_response_tokens=60)
    assert set(stats["rejected_by"]) == {"format", "no_parallel_block", "wrong_answer", "too_long"}
    assert rows and all(" x " in r["trace"] for r in rows), "the reference check accepts text between tags"
    strict, _, _ = run(tmp_path, teacher(reply), "parallel_r1", name="strict", max_response_tokens=60,
                       format_mode="strict")
    assert strict["kept"] == 0, "the strict grammar refuses text between tags"


def test_threadweaver_rules(tmp_path):
    from reasoning.engines.symbolic import ArithTeacher, sequential_solution
    from reasoning.tasks.arith import parse

    good = ArithTeacher()

    def reply(question, user, request):
        problem = parse(question)
        if "Sequential solution:" not in user:
            return sequential_solution(problem, problem.answer + (1 if len(question) % 7 == 0 else 0), "boxed")
        trace = good.full(problem, problem.answer, "boxed", "threadweaver", False)
        kind = len(question) % 6
        if kind == 1:
            return trace.replace("<Outline>2:", "<Outline>3:").replace("<Thread>\n2:", "<Thread>\n3:")
        if kind == 2 and problem.independent:  # thread 2 starts from thread 1's result
            first = problem.finals()[problem.people[0].name]
            return trace.replace("<Thread>\n2: ", f"<Thread>\n2: {first} + 0 = {first}\n", 1)
        if kind == 3:
            return trace.replace(f"\\boxed{{{problem.answer}}}", f"\\boxed{{{problem.answer + 5}}}")
        if kind == 4:
            return trace.replace("</Outlines>", "")
        return trace

    stats, rows, _ = run(tmp_path, teacher(reply), "threadweaver", level=4)  # level 4: every problem forks
    rules = {"thread_numbers", "dependent_threads", "answer_changed", "format", "stage1_wrong"}
    assert rules <= set(stats["rejected_by"])
    assert all(r["speedup"] > 1 for r in rows)


def test_threadweaver_checks_on_their_own():
    block = get_format("threadweaver").parse(
        "<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>2: b</Outline>\n</Outlines>\n"
        "<Thread>\n1: 3 + 4 = 7\n</Thread><Thread>\n2: 7 * 2 = 14\n</Thread>\n</Parallel>\n").blocks[0]
    assert checks.threads_depend_on_each_other(block, "Start with 3 and 4.")
    assert not checks.threads_depend_on_each_other(block, "Start with 3, 4 and 7.")
    assert checks.thread_numbers_are_1_to_k(block)


def test_parathinker_rules_and_fixed_majorities(tmp_path):
    def reply(question, user, request):
        answer = solve(question)
        if "--- Path 1 ---" in user:  # the summary: right unless the question says otherwise
            return f"The paths agree on \\boxed{{{answer + (1 if len(question) % 3 == 0 else 0)}}}."
        wrong_path = request.id.endswith(("path1", "path2", "path3")) and len(question) % 2 == 0
        return f"So \\boxed{{{answer + (7 if wrong_path else 0)}}}."

    stats, rows, _ = run(tmp_path, teacher(reply), "parathinker", num_paths=4)
    assert stats["rejected_by"] == {"wrong_summary": stats["generated"] - stats["kept"]} and stats["kept"] > 0
    assert stats["summary_fixed_majority"] == sum(bool(r["summary_fixed_majority"]) for r in rows) > 0
    # the kept trace is assembled from the 4 whole path replies and the summary, in ParaThinker's strict layout
    for r in rows:
        assert len(r["paths"]) == 4 and all(p.startswith("So \\boxed{") for p in r["paths"])
        at = [r["trace"].index(p) for p in r["paths"]]  # each whole path, in order, then the summary
        assert at == sorted(at) and r["trace"].index("The paths agree on") > at[-1]
        assert get_format("parathinker").validate(r["trace"]) == []


def test_bad_settings_and_input_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="--num-paths"):
        from_dict(TracesConfig, dict(input="x", num_paths=9)).check()
    with pytest.raises(InputError, match="method must be one of"):
        from_dict(TracesConfig, dict(input="x", method="beam"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "answer": "1"}\nnot json\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2"):
        synthesize_traces(from_dict(TracesConfig, dict(input=str(bad))), make_engine("symbolic", "arith-teacher"),
                          tmp_path / "o", progress=False, log=lambda _: None)


# ---- a real engine, and a kill ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hf", "vllm"])
def test_the_tiny_model_keeps_the_accounting(tmp_path, kind):
    from conftest import get_engine

    stats, rows, rejected = run(tmp_path, get_engine(kind), "parallel_r1", teacher={"max_tokens": 16})
    assert stats["generated"] == 30 and stats["kept"] + len(rejected) == 30
    assert sum(stats["rejected_by"].values()) == len(rejected) and stats["requests_sent"] == 30


def cli(pool_path: Path, out: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "parafuse.cli", "synth", "traces", "--method", "threadweaver", "--input",
            str(pool_path), "--engine", "openai", "--base-url", url, "--model", "teacher", "--concurrency", "4",
            "--out", str(out), "--no-progress"]


def test_sigkill_mid_run_then_rerun_gives_the_same_files(tmp_path):
    from reasoning.testing.fault_server import FaultServer
    from reasoning.testing.teacher import arith_teacher

    data = pool(tmp_path / "pool.jsonl", count=24)
    with FaultServer(responder=arith_teacher, delay_s=0.05) as server:
        ref = subprocess.run(cli(data, tmp_path / "ref", server.url), capture_output=True, text=True,
                             timeout=300, cwd=ROOT)
        assert ref.returncode == 0, ref.stderr
        out = tmp_path / "out"
        proc = subprocess.Popen(cli(data, out, server.url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)
        deadline = time.monotonic() + 120
        store = out / "store.jsonl"
        while not store.exists() or len(store.read_text().splitlines()) < 12:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        rerun = subprocess.run(cli(data, out, server.url), capture_output=True, text=True, timeout=300,
                               cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL and rerun.returncode == 0, rerun.stderr
    for name in ("data/train.jsonl", "rejected.jsonl", "failures.jsonl", "stats.json"):
        ref_text, out_text = (tmp_path / "ref" / name).read_text(), (out / name).read_text()
        if name == "stats.json":  # timings and request counts differ by design
            drop = ("generation_s", "requests_sent", "requests_from_store")
            ref_text = json.dumps({k: v for k, v in json.loads(ref_text).items() if k not in drop})
            out_text = json.dumps({k: v for k, v in json.loads(out_text).items() if k not in drop})
        assert out_text == ref_text, name
