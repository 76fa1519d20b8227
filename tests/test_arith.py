"""The embedded arith task, its symbolic teacher in every role, and the arith model preset."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prompts import default_library
from reasoning.decoders import get_decoder, run_decodes
from reasoning.engines import make_engine
from reasoning.engines.symbolic import ArithTeacher, fuse, parse_teacher
from reasoning.formats import convert, get_format
from reasoning.tasks.arith import LEVELS, generate, parse, solve
from reasoning.types import InputError, Request, SamplingParams

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = default_library()


def chat(problem, template="math/boxed"):
    return ({"role": "user", "content": LIBRARY.render(template, question=problem.question)},)


# ---- the task -------------------------------------------------------------------------------------

@pytest.mark.parametrize("level", sorted(LEVELS))
def test_every_question_reads_back_to_its_problem_and_splits_never_share_one(level):
    test, train = generate(level, 500, "test"), generate(level, 500, "train")
    assert all(parse(p.question).answer == p.answer for p in test + train)
    assert not {p.question for p in test} & {p.question for p in train}
    assert len({p.question for p in test}) == 500 and all(p.answer >= 0 for p in test)
    assert generate(level, 20, "test") == test[:20], "the same seed gives the same problems"
    spec = LEVELS[level]
    assert all(len(p.people) in spec.people for p in test)
    assert all(spec.steps[0] <= len(person.ops) <= spec.steps[1] for p in test for person in p.people)


def test_levels_mix_chains_and_problems_with_independent_parts():
    assert not any(p.independent for p in generate(1, 200))
    share = sum(p.independent for p in generate(2, 400)) / 400
    assert 0.3 < share < 0.7
    assert all(p.independent for p in generate(4, 100))
    assert solve("What is the capital of France?") is None
    with pytest.raises(InputError, match="level 9"):
        generate(9, 1)


# ---- the teacher: plain solutions ------------------------------------------------------------------

@pytest.mark.parametrize("level", sorted(LEVELS))
def test_teacher_answers_grade_all_correct(level):
    from eval.grading import Grader

    engine = make_engine("symbolic", "arith-teacher")
    problems = generate(level, 500)
    endings = ("math/boxed", "generic/user")
    results = engine.generate([Request(messages=chat(p, endings[i % 2]) if i % 2 == 0 else
                                       ({"role": "user", "content": p.question + " End with #### N."},),
                                       params=SamplingParams(max_tokens=400)) for i, p in enumerate(problems)])
    with Grader(workers=1) as grader:
        grades = grader.grade_many([(str(p.answer), r.texts[0]) for p, r in zip(problems, results)])
    assert all(g.correct for g in grades)
    assert {g.extractor for g in grades} == {"boxed", "hashes"}


def test_the_error_switch_makes_the_set_share_wrong():
    engine = make_engine("symbolic", "arith-teacher:plain:0.2")
    problems = generate(2, 1000)
    results = engine.generate([Request(messages=chat(p), params=SamplingParams(max_tokens=400, seed=i))
                               for i, p in enumerate(problems)])
    from eval.grading.extract import extract_answer

    wrong = sum(extract_answer(r.texts[0])[0] != str(p.answer) for p, r in zip(problems, results)) / len(problems)
    assert abs(wrong - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(problems)), wrong
    with pytest.raises(InputError, match="arith-teacher"):
        parse_teacher("gpt-4")
    with pytest.raises(InputError, match="between 0 and 1"):
        parse_teacher("arith-teacher:plain:2")


# ---- the teacher: parallel-thinking traces ----------------------------------------------------------

FORMATS = ("threadweaver", "parallel_r1", "parathinker")


@pytest.mark.parametrize("style", FORMATS)
def test_teacher_traces_validate_carry_the_answer_and_convert(style):
    from eval.grading.extract import extract_answer

    engine = make_engine("symbolic", f"arith-teacher:{style}")
    problems = [p for p in generate(3, 200) if p.independent][:60]
    texts = [r.texts[0] for r in engine.generate([Request(messages=chat(p), params=SamplingParams(max_tokens=500))
                                                  for p in problems])]
    module = get_format(style)
    # ParaThinker holds one block at the very start: traces with text before their block do not fit it.
    targets = [f for f in FORMATS if f != style and (f != "parathinker" or style == "parathinker")]
    for p, text in zip(problems, texts):
        assert module.validate(text) == [], (style, text)
        if style == "parallel_r1":  # the authors' own checker accepts them too
            assert module.validate(text, mode="reference") == [], text
        assert extract_answer(text)[0] == str(p.answer)
        for other in targets:
            converted = convert(text, style, other)
            assert get_format(other).validate(converted, **get_format(other).STRUCTURE_ONLY) == [], (other, converted)
            assert extract_answer(converted)[0] == str(p.answer)


@pytest.mark.parametrize("method", FORMATS)
def test_every_decoder_runs_end_to_end_on_the_teacher(method):
    """The teacher answers each decoder call (raw continuations), and the decoded traces are right."""
    from eval.grading import Grader

    engine = make_engine("symbolic", "arith-teacher")
    problems = generate(2, 40)
    _, Config = get_decoder(method)
    cfg = Config.from_dict({"max_tokens": 400, **({"num_paths": 2} if method == "parathinker" else {})})
    results = run_decodes(engine, method, [(p.id, list(chat(p)), cfg) for p in problems])
    with Grader(workers=1) as grader:
        grades = grader.grade_many([(str(p.answer), r.text) for p, r in zip(problems, results)])
    assert all(g.correct for g in grades)
    assert all(r.validation_errors == [] for r in results)
    for p, r in zip(problems, results):
        if method == "threadweaver":
            # Threads shorten the critical path exactly when the problem has independent parts.
            assert (r.critical_path_tokens < r.response_tokens) == p.independent
            assert (r.blocks == 1) == p.independent
        else:
            assert r.blocks == 1 and r.critical_path_tokens < r.response_tokens


# ---- the teacher: synthesis roles --------------------------------------------------------------------

def test_fusions_solve_to_their_strategy_and_pass_the_filters(tmp_path):
    from synthesis.config import MathFusionConfig
    from synthesis.mathfusion.pipeline import synthesize_mathfusion

    problems = generate(1, 30, "train")
    a, b = problems[0], problems[1]
    fa, fb = a.answer, b.answer
    assert fuse(a, b, "parallel").answer == fa + fb
    assert fuse(a, b, "conditional").answer == max(fa, fb)
    sequential = fuse(a, b, "sequential")
    assert parse(sequential.question).answer == sequential.answer and sequential.combine == "feeds"
    pool = tmp_path / "arith.jsonl"
    pool.write_text("".join(json.dumps(p.to_record()) + "\n" for p in problems))
    cfg = MathFusionConfig(input=str(pool), embedder="tfidf", decontaminate=False)
    stats = synthesize_mathfusion(cfg, make_engine("symbolic", "arith-teacher"), tmp_path / "out", progress=False,
                                  log=lambda _: None)
    rows = [json.loads(line) for line in (tmp_path / "out" / "data" / "train.jsonl").read_text().splitlines()]
    assert stats["jobs"] == stats["fused"] == stats["kept"] == len(rows) == 90
    assert all(str(solve(r["problem"])) == r["answer"] for r in rows), "every row's answer is right"
    conditional = [r for r in rows if r["strategy"] == "conditional"]
    assert all(r["answer"] in (r["answer_a"], r["answer_b"]) for r in conditional)


def test_fusion_of_n_data_with_symbolic_teachers_is_all_correct(tmp_path):
    pool = tmp_path / "arith.jsonl"
    pool.write_text("".join(json.dumps(p.to_record()) + "\n" for p in generate(2, 30, "train")))
    done = subprocess.run([sys.executable, "-m", "parafuse.cli", "synth", "fusion", "--input", str(pool),
                           "--teacher", "symbolic:arith-teacher*2", "--teacher", "symbolic:arith-teacher:plain:0.5",
                           "--engine", "symbolic", "--model", "arith-teacher", "--out", str(tmp_path / "fusion"),
                           "--no-progress"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "fusion" / "stats.json").read_text())
    assert stats["accuracy"]["fusion"] == 1.0 and stats["accuracy"]["candidate_mean"] < 1.0


def test_eval_run_on_arith_with_the_teacher_scores_one_everywhere(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "parafuse.cli", "eval", "run", "--benchmark", "arith", "--level", "2",
                           "--limit", "24", "--engine", "symbolic", "--model", "arith-teacher", "-n", "2",
                           "--strategy", "plain,majority,fusion,threadweaver,parallel_r1,parathinker",
                           "--out", str(out), "--no-progress"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert {p["strategy"] for p in results["points"]} >= {"plain", "majority", "fusion", *FORMATS}
    assert all(p["accuracy"] == 1.0 for p in results["points"])
    assert results["problems"]["graded"] == 24 and results["extraction"]["fallback_share"] < 0.5


def test_teacher_roles_are_chosen_by_the_request():
    teacher = ArithTeacher()
    problem = next(p for p in generate(2, 50) if p.independent)
    user = LIBRARY.render("math/boxed", question=problem.question)
    base = f"<user>{user}</user><assistant>"
    opened = "x\n<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n</Outlines>\n<Thread>\n1:"
    thread = teacher(Request(prompt=base + opened, params=SamplingParams(stop=("</Thread>",))), 0)[0]
    assert thread.endswith("</Thread>") and "=" in thread
    start = teacher(Request(prompt=base, params=SamplingParams(stop=("</Outlines>",))), 0)[0]
    assert start.endswith("</Outlines>") and start.count("<Outline>") == len(problem.people)
    forced = teacher(Request(prompt=base + "thinking... \\boxed{", params=SamplingParams()), 0)[0]
    assert forced == f"{problem.answer}}}"
    assert teacher(Request(messages=({"role": "user", "content": "Tell me a joke."},)), 0)[0].startswith("I cannot")


# ---- the arith model preset ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def arith_model(tmp_path_factory):
    from reasoning.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("arith") / "model", preset="arith")


def test_arith_preset_is_the_measured_model_with_digit_tokens(arith_model):
    from transformers import AutoConfig, AutoTokenizer

    info = json.loads((arith_model / "parafuse_tiny.json").read_text())
    assert info["preset"] == "arith" and 1_000_000 < info["params"] < 1_100_000
    config = AutoConfig.from_pretrained(arith_model)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
            config.head_dim) == (128, 4, 4, 2, 32)
    tokenizer = AutoTokenizer.from_pretrained(arith_model)
    assert [t for t in tokenizer.tokenize("has 123 pencils") if t.strip("Ġ").isdigit()] == ["1", "2", "3"]
    # the task's words are whole tokens (held-out problems of every level, and the chat turn's header), which
    # keeps a training row about half as long as character-level pieces would
    words = {word for level in (1, 2, 3, 4) for problem in generate(level, 50, "test", 11)
             for word in re.findall(r"[A-Za-z]+", problem.question)}
    assert len(words) > 20 and [w for w in sorted(words) if len(tokenizer.tokenize(" " + w)) != 1] == []
    assert len(tokenizer.tokenize("<|im_start|>assistant\n")) == 3
    for tag in ("<Parallel>", "<Thread>", "<think3>", "</summary>"):
        assert len(tokenizer.encode(tag, add_special_tokens=False)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hf", "vllm"])
def test_arith_model_generates_in_hf_and_vllm(arith_model, kind):
    options = {"max_model_len": 1024, "enforce_eager": True} if kind == "vllm" else {}
    engine = make_engine(kind, str(arith_model), **options)
    try:
        problem = generate(1, 1)[0]
        result = engine.generate_one(Request(messages=chat(problem), params=SamplingParams(max_tokens=16, seed=0)))
        assert result.completions[0].tokens > 0 and result.completions[0].token_ids
    finally:
        engine.close()


def test_threadweaver_style_shortens_the_critical_path_only_where_parts_are_independent():
    from statistics import mean

    engine = make_engine("symbolic", "arith-teacher")
    problems = generate(3, 120)
    plain = engine.generate([Request(messages=chat(p), params=SamplingParams(max_tokens=400)) for p in problems])
    _, Config = get_decoder("threadweaver")
    decoded = run_decodes(engine, "threadweaver", [(p.id, list(chat(p)), Config.from_dict({"max_tokens": 400}))
                                                   for p in problems])
    # generated tokens on both sides: the plain completion against the decode's generated critical path
    independent = [(s.completion_tokens, d.generated_critical_path_tokens) for p, s, d in zip(problems, plain, decoded)
                   if p.independent]
    chains = [(s.completion_tokens, d.generated_critical_path_tokens) for p, s, d in zip(problems, plain, decoded)
              if not p.independent]
    assert independent and chains
    assert mean(c for _, c in independent) < 0.85 * mean(s for s, _ in independent)
    assert all(s == c for s, c in chains), "a chain has nothing to fork: the same tokens either way"


def test_the_rewriter_role_turns_a_sequential_solution_into_fork_join_form():
    from eval.grading.extract import extract_answer
    from reasoning.engines.symbolic import sequential_solution

    engine = make_engine("symbolic", "arith-teacher")
    problems = generate(2, 60)
    requests = [Request(messages=({"role": "user", "content": LIBRARY.render(
        "threadweaver/rewrite", question=p.question, solution=sequential_solution(p, p.answer, "boxed"))},))
        for p in problems]
    for p, result in zip(problems, engine.generate(requests)):
        text = result.texts[0]
        assert ("<Parallel>" in text) == p.independent and get_format("threadweaver").validate(text) == []
        assert extract_answer(text)[0] == str(p.answer)


def test_train_never_holds_an_eval_question_whatever_its_seed():
    evaluated = {p.question for p in generate(2, 1000, "test")}  # what `eval run --benchmark arith` reads
    assert not evaluated & {p.question for p in generate(2, 500, "train", seed=7)}
    with pytest.raises(InputError, match="holds 1000 problems"):
        generate(2, 1001, "test")
    assert parse("Lena starts with as many coins as Omar ends with. How many coins does Lena have now?") is None
