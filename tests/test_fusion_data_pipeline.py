"""Fusion-of-N data (`synthesis.fusion_data`, `parafuse synth fusion`): the pipeline.

Scripted engines decide every candidate and every fused answer, so the rows, the grading and
the statistics below follow from the test's own script; one CLI test runs the real tiny model.
Teacher specs and engines are in tests/test_fusion_data_teachers.py, best-of-N and the fusion
templates in tests/test_fusion_data_bon_templates.py.
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
from fusion_pool import (
    Pool, cli_base, is_fusor_request, majority_score, read_jsonl, rows_by_prompt, run_cli, run_pool, sum_rows,
    words, write_jsonl,
)

from eval.config import EvalConfig
from prompts import default_library
from reasoning.engines.scripted import question_of
from reasoning.fusion import fusion_request
from reasoning.inputs import derive_seed
from reasoning.types import SamplingParams
from synthesis.config import FusionDataConfig


# ---------------------------------------------------------------------------- the scripted pool



def test_each_row_holds_the_pool_in_teacher_order_and_the_fusor_reply(tmp_path):
    rows = sum_rows()
    script = {r["question"]: ([r["answer"], str(int(r["answer"]) + 1), r["answer"]], r["answer"]) for r in rows}
    q_truncated = rows[2]["question"]
    script[q_truncated] = script[q_truncated] + ("length",)
    pool = Pool(script)
    st = run_pool(pool, write_jsonl(tmp_path / "sums.jsonl", rows), tmp_path / "out")
    got = rows_by_prompt(tmp_path / "out")
    assert set(got) == set(script)

    # teacher A was asked once per prompt for 2 samples, teacher B once for 1
    assert sorted(r.params.n for r in pool.a.calls) == [2, 2, 2]
    assert sorted(r.params.n for r in pool.b.calls) == [1, 1, 1]
    assert len(pool.fusor.calls) == 3 and all(is_fusor_request(r) for r in pool.fusor.calls)

    cfg = FusionDataConfig()
    eval_template = {f.name: f.default for f in dataclasses.fields(EvalConfig)}["fusion_template"]
    assert cfg.fusion_template == eval_template, "data and test-time fusion use one template"
    fusor_reqs = {question_of(r): r for r in pool.fusor.calls}
    for q, row in got.items():
        cands = pool.expected_candidates(q)
        assert row["candidates"] == cands
        assert row["candidate_models"] == ["teacher-a", "teacher-a", "teacher-b"]
        assert row["fused"] == pool.fused_text(q, script[q][1])
        assert row["messages"] == [{"role": "user", "content": q}, {"role": "assistant", "content": row["fused"]}]

        req = fusor_reqs[q]
        text = req.messages[-1]["content"]
        assert q in text and all(c in text for c in cands)
        from reasoning.fusion import resolve_fusion_template

        # both resolve `auto` the same way: the math fusor prompt for a math/* teacher template
        assert resolve_fusion_template(eval_template, cfg.template) == "fusion/fuse"
        expected = fusion_request(q, cands, SamplingParams(), "fusion/fuse", default_library(),
                                  max_candidate_chars=cfg.max_candidate_chars)
        assert req.messages == expected.messages
        assert req.key_extra == expected.key_extra
        assert req.params.temperature == cfg.fusor.temperature and req.params.max_tokens == cfg.fusor.max_tokens

        teacher_reqs = [r for r in pool.a.calls + pool.b.calls if question_of(r) == q]
        assert len(teacher_reqs) == 2
        assert row["teacher_prompt_tokens"] == sum(words(pool.a.prompt_text(r), "length") for r in teacher_reqs)
        assert row["teacher_completion_tokens"] == sum(words(c) for c in cands)
        assert row["fusor_prompt_tokens"] == words(pool.fusor.prompt_text(req), "length")
        assert row["fusor_completion_tokens"] == words(row["fused"], row["fused_finish_reason"])
        assert row["fused_finish_reason"] == ("length" if q == q_truncated else "stop")

    assert st["rows"] == 3 and st["failed"] == 0 and st["candidates_per_prompt"] == 3
    assert st["truncated_fusions"] == 1
    for kind in ("teacher_prompt", "teacher_completion", "fusor_prompt", "fusor_completion"):
        assert st["tokens"][kind] == sum(r[f"{kind}_tokens"] for r in got.values())
    assert st["requests_sent"] == pool.calls() == 9 and st["requests_from_store"] == 0


def test_teacher_requests_use_the_template_and_distinct_seeds(tmp_path):
    rows = sum_rows()[:1]
    q = rows[0]["question"]
    pool = Pool({q: (["12", "12", "12"], "12")})
    run_pool(pool, write_jsonl(tmp_path / "one.jsonl", rows), tmp_path / "out", seed=7, temperature=0.5,
             max_tokens=99)
    (ra,), (rb,), (rf,) = pool.a.calls, pool.b.calls, pool.fusor.calls
    for r in (ra, rb):
        assert r.key_extra.startswith("math/boxed@")
        assert q in r.messages[-1]["content"] and "\\boxed{}" in r.messages[-1]["content"]
        assert r.params.temperature == 0.5 and r.params.max_tokens == 99
    assert len({ra.params.seed, rb.params.seed, rf.params.seed}) == 3
    assert rf.params.seed == derive_seed(7, rf.id)


def test_long_candidates_reach_the_fusor_cut_to_their_end(tmp_path):
    rows = sum_rows()[:1]
    q = rows[0]["question"]
    pool = Pool({q: (["12", "12", "12"], "12")})
    pool.candidate_text = lambda model, j, question, answer: (  # type: ignore[method-assign]
        f"HEAD-{model}-{j} " + "filler " * 30 + f"TAIL \\boxed{{{answer}}}")
    run_pool(pool, write_jsonl(tmp_path / "one.jsonl", rows), tmp_path / "out", max_candidate_chars=40)
    row = rows_by_prompt(tmp_path / "out")[q]
    text = pool.fusor.calls[0].messages[-1]["content"]
    assert all(c.startswith("HEAD-") for c in row["candidates"]), "the row keeps the full candidates"
    assert "HEAD-" not in text and text.count("[...]") == 3
    assert all(c[-40:] in text for c in row["candidates"])


# ---------------------------------------------------------------------------- grading

# (gold, [candidate answers in pool order], fused answer): each line is one kind of outcome
GRADING_CASES = {
    "What is 1 + 11?": ("12", ["11", "13", "14"], "12"),  # no candidate right, fusion right: beats the oracle
    "What is 2 + 11?": ("13", ["13", "7", "7"], "13"),  # right minority, wrong majority, fusion right: fixes it
    "What is 3 + 11?": ("14", ["14", "14", "9"], "9"),  # right majority, fusion wrong: breaks it
    "What is 4 + 11?": ("15", ["15", "15", "15"], "15"),  # everyone right
    "What is 5 + 11?": ("16", ["16", "2", "3"], "4"),  # three-way tie, fusion wrong: counted nowhere
    "What is 6 + 11?": ("17", ["17", "8", "8"], "8"),  # wrong majority, fusion follows it
    "What is 7 + 11?": ("18", ["18", "5", None], "18"),  # one-one tie (majority 0.5), fusion right: neither
    "What is 8 + 11?": ("19", ["19", None, "6"], "6"),  # one-one tie (majority 0.5), fusion wrong: neither
}


def test_grading_scores_candidates_fusion_oracle_and_majority(tmp_path):
    no_gold = "Describe the number 12."
    data = [{"question": q, "answer": g} for q, (g, _, _) in GRADING_CASES.items()] + [
        {"question": no_gold, "answer": None}]
    script = {q: (cands, fused) for q, (_, cands, fused) in GRADING_CASES.items()}
    script[no_gold] = (["12", "12", "13"], "12")
    pool = Pool(script)
    out = tmp_path / "out"
    st = run_pool(pool, write_jsonl(tmp_path / "mixed.jsonl", data), out)
    got = rows_by_prompt(out)

    expect = {}
    for q, (gold, cands, fused) in GRADING_CASES.items():
        row = got[q]
        correct = [a == gold for a in cands]
        e = {"candidate_correct": correct, "oracle": any(correct), "majority": majority_score(cands, gold),
             "fused": fused == gold}
        expect[q] = e
        assert row["answer"] == gold
        assert row["candidate_answers"] == cands
        assert row["candidate_correct"] == correct
        assert row["fused_answer"] == fused and row["fused_correct"] is e["fused"]
        assert row["oracle_correct"] is e["oracle"]
        assert row["majority_correct"] == pytest.approx(e["majority"])

    # the designed cases are what their comments say
    assert expect["What is 2 + 11?"]["oracle"] and expect["What is 2 + 11?"]["majority"] < 0.5
    assert expect["What is 5 + 11?"]["majority"] == pytest.approx(1 / 3)
    assert expect["What is 7 + 11?"]["majority"] == expect["What is 8 + 11?"]["majority"] == 0.5

    ungraded = got[no_gold]
    assert ungraded["answer"] is None and ungraded["fused"] == pool.fused_text(no_gold, "12")
    for col in ("candidate_answers", "candidate_correct", "fused_answer", "fused_correct", "oracle_correct",
                "majority_correct"):
        assert ungraded[col] is None, col

    e = list(expect.values())
    n = len(e)
    assert st["rows"] == n + 1 and st["graded"] == n
    acc = st["accuracy"]
    assert acc["candidate_mean"] == pytest.approx(sum(sum(x["candidate_correct"]) / 3 for x in e) / n)
    assert acc["majority"] == pytest.approx(sum(x["majority"] for x in e) / n)
    assert acc["fusion"] == pytest.approx(sum(x["fused"] for x in e) / n)
    assert acc["oracle"] == pytest.approx(sum(x["oracle"] for x in e) / n)
    assert st["fusion_beats_oracle"] == 1  # only "1 + 11"
    assert st["fusion_fixes_majority"] == 2  # "1 + 11" (all wrong) and "2 + 11"
    assert st["fusion_breaks_majority"] == 1  # only "3 + 11"
    assert st["fusion_beats_oracle"] == sum(x["fused"] and not x["oracle"] for x in e)
    assert st["fusion_fixes_majority"] == sum(x["fused"] and x["majority"] < 0.5 for x in e)
    assert st["fusion_breaks_majority"] == sum(not x["fused"] and x["majority"] > 0.5 for x in e)

    # the dataset loads with `datasets` through the card's header, and the card reports the numbers
    import datasets

    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert len(ds) == n + 1
    assert sorted(ds["prompt"]) == sorted(got)
    loaded = {r["prompt"]: r for r in ds}
    assert loaded["What is 3 + 11?"]["candidates"] == got["What is 3 + 11?"]["candidates"]
    assert loaded[no_gold]["fused_correct"] is None and loaded["What is 1 + 11?"]["fused_correct"] is True
    card = (out / "README.md").read_text()
    header = card.split("---")[1]
    assert "data/train.parquet" in header
    assert (out / "data" / "train.parquet").is_file()
    assert re.search(rf"\b{n + 1} prompts\b", card) and re.search(rf"\b{n + 1} rows\b", card)
    assert re.search(r"\b0 failed\b", card)
    assert re.search(rf"graded rows: {n}\b", card)
    for name, value in acc.items():
        assert re.search(rf"\|\s*{name}\s*\|\s*{value:.3f}\s*\|", card), name


def test_rows_without_gold_are_written_ungraded(tmp_path):
    data = [{"question": "Write a haiku about 7.", "answer": None}, {"question": "Name a prime."}]
    pool = Pool({"Write a haiku about 7.": (["7", "7", "8"], "7"), "Name a prime.": (["2", "3", "5"], "2")})
    st = run_pool(pool, write_jsonl(tmp_path / "open.jsonl", data), tmp_path / "out")
    got = rows_by_prompt(tmp_path / "out")
    assert len(got) == 2 and st["rows"] == 2
    assert all(r["fused_correct"] is None and r["candidate_correct"] is None for r in got.values())
    assert "accuracy" not in st and "graded" not in st
    assert "## Accuracy" not in (tmp_path / "out" / "README.md").read_text()


def test_grade_no_skips_grading_even_with_gold(tmp_path):
    rows = sum_rows()
    pool = Pool({r["question"]: ([r["answer"]] * 3, r["answer"]) for r in rows})
    st = run_pool(pool, write_jsonl(tmp_path / "sums.jsonl", rows), tmp_path / "out", grade="no")
    got = rows_by_prompt(tmp_path / "out")
    assert len(got) == 3 and "accuracy" not in st
    assert all(r["answer"] is not None and r["fused_correct"] is None and r["oracle_correct"] is None
               for r in got.values())


# ---------------------------------------------------------------------------- resume and failures


def test_rerun_sends_nothing_and_writes_the_same_dataset(tmp_path):
    rows = sum_rows()
    pool = Pool({r["question"]: ([r["answer"], "0", r["answer"]], r["answer"]) for r in rows})
    data, out = write_jsonl(tmp_path / "sums.jsonl", rows), tmp_path / "out"
    first = run_pool(pool, data, out)
    before = (out / "data" / "train.jsonl").read_text()
    sent = pool.calls()
    assert first["requests_sent"] == sent == 9

    second = run_pool(pool, data, out)
    assert pool.calls() == sent, "every request came from the store"
    assert json.loads((out / "stats.json").read_text())["requests_sent"] == 0
    assert second["requests_from_store"] == 9
    assert (out / "data" / "train.jsonl").read_text() == before
    assert second["accuracy"] == first["accuracy"]


def test_engine_failure_is_recorded_and_a_rerun_fills_it_in(tmp_path):
    rows = sum_rows()
    pool = Pool({r["question"]: ([r["answer"]] * 3, r["answer"]) for r in rows})
    bad = rows[1]["question"]
    pool.broken.add(bad)
    data, out = write_jsonl(tmp_path / "sums.jsonl", rows), tmp_path / "out"
    st = run_pool(pool, data, out, grade="no")
    got = rows_by_prompt(out)
    assert set(got) == {rows[0]["question"], rows[2]["question"]}
    assert st["rows"] == 2 and st["failed"] == 1 and st["prompts"] == 3
    (fail,) = read_jsonl(out / "failures.jsonl")
    assert fail["prompt"] == bad
    assert "RuntimeError" in fail["error"] and f"teacher-b crashed on {bad}" in fail["error"]
    assert not any(is_fusor_request(r) and question_of(r) == bad for r in pool.fusor.calls)

    pool.broken.clear()
    seen = {e.model: len(e.calls) for e in pool.engines}
    st2 = run_pool(pool, data, out, grade="no")
    new = [r for e in pool.engines for r in e.calls[seen[e.model]:]]
    assert new and all(question_of(r) == bad for r in new), "only the failed prompt is asked again"
    assert [question_of(r) for r in pool.b.calls[seen["teacher-b"]:]] == [bad]
    assert [question_of(r) for r in pool.fusor.calls[seen["fusor-model"]:]] == [bad]
    assert st2["requests_sent"] == len(new)
    assert st2["rows"] == 3 and st2["failed"] == 0
    assert read_jsonl(out / "failures.jsonl") == []
    got2 = rows_by_prompt(out)
    assert got2[bad]["id"] == fail["id"]
    assert got2[bad]["candidates"] == pool.expected_candidates(bad)
    for q in got:  # the rows that were fine stay as they were
        assert got2[q] == got[q]


def test_a_teacher_failure_keeps_the_other_teachers_finished_answers(tmp_path):
    """Teacher B fails at once while teacher A is still generating: A's answer, once finished, is
    stored, so the rerun asks only B and the fusor again."""
    rows = sum_rows()[:1]
    q = rows[0]["question"]
    pool = Pool({q: (["12", "12", "12"], "12")})
    scripted_a = pool.a.policy

    def slow_a(req, j):
        time.sleep(0.3)
        return scripted_a(req, j)

    pool.a.policy = slow_a
    pool.broken.add(q)
    data, out = write_jsonl(tmp_path / "one.jsonl", rows), tmp_path / "out"
    st = run_pool(pool, data, out, grade="no")
    assert st["failed"] == 1 and len(pool.a.calls) == 1, "teacher A did answer the prompt"

    pool.broken.clear()
    seen_a = len(pool.a.calls)
    st2 = run_pool(pool, data, out, grade="no")
    assert st2["rows"] == 1
    assert len(pool.a.calls) == seen_a, "teacher A's finished answer should come from the store"
    assert st2["requests_sent"] == 2  # teacher B and the fusor


# ---------------------------------------------------------------------------- the CLI


def test_cli_runs_a_real_pool_end_to_end(tmp_path, tiny_model, capsys):
    data = write_jsonl(tmp_path / "sums.jsonl", sum_rows())
    out = tmp_path / "out"
    code, err = run_cli(capsys, "synth", "fusion", "--input", data, "--teacher", f"hf:{tiny_model}*2",
                        "--teacher", f"hf:{tiny_model}", "--engine", "hf", "--model", tiny_model,
                        "--max-tokens", 16, "--fusor-max-tokens", 16, "--out", out, "--no-progress")
    assert code == 0, err
    rows = read_jsonl(out / "data" / "train.jsonl")
    assert len(rows) == 3
    assert {r["prompt"] for r in rows} == {r["question"] for r in sum_rows()}
    for r in rows:
        assert len(r["candidates"]) == 3
        assert [Path(m).name for m in r["candidate_models"]] == [Path(tiny_model).name] * 3
        assert isinstance(r["fused"], str)
        assert r["teacher_completion_tokens"] <= 3 * 16 and r["fusor_completion_tokens"] <= 16
    assert (out / "README.md").is_file() and (out / "data" / "train.parquet").is_file()
    st = json.loads((out / "stats.json").read_text())
    assert st["rows"] == 3 and st["requests_sent"] == 9
    assert all(v > 0 for v in st["tokens"].values()), st["tokens"]
    assert "3 prompts: 3 rows" in err


def test_cli_names_file_and_line_of_a_malformed_record(tmp_path, tiny_model, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", [{"question": "What is 1 + 1?", "answer": "2"}, "{not json"])
    code, err = run_cli(capsys, *cli_base(tmp_path, tiny_model, data), "--teacher", f"hf:{tiny_model}")
    assert code == 2
    assert re.search(r"in\.jsonl:2\b", err), err


def test_cli_config_with_an_unknown_key_names_it(tmp_path, tiny_model, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", sum_rows())
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(f"teachers: [hf:{tiny_model}]\nfusor_temprature: 0.5\n")
    code, err = run_cli(capsys, *cli_base(tmp_path, tiny_model, data), "--config", cfg)
    assert code == 2 and "fusor_temprature" in err and "recipe.yaml" in err


def test_cli_runs_from_a_yaml_recipe(tmp_path, tiny_model, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", sum_rows())
    out = tmp_path / "from-yaml"
    teachers = [f"hf:{tiny_model}", f"hf:{tiny_model}*2"]
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(f"input: {data}\nteachers:\n" + "".join(f"  - {t}\n" for t in teachers)
                   + f"model: {tiny_model}\nout: {out}\nlimit: 1\nmax_tokens: 8\nfusor_max_tokens: 8\n"
                   "grade: 'no'\n")
    code, err = run_cli(capsys, "synth", "fusion", "--config", cfg, "--no-progress")
    assert code == 0, err
    rows = read_jsonl(out / "data" / "train.jsonl")
    assert len(rows) == 1 and len(rows[0]["candidates"]) == 3
    assert json.loads((out / "config.json").read_text())["teachers"] == teachers
    assert rows[0]["fused_correct"] is None
