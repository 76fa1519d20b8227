"""Grading on real-world answer formats: each category a researcher's outputs and golds come in.

All cases are our own, made up in the shape of what public model outputs and benchmark files hold.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.grading import Grader, extract_answer, grade_pair, grade_pairs
from eval.grading.fast_paths import FLOAT_GOLD_REL_TOL, parse_clock, parse_number

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=1, timeout_s=10) as g:
        yield g


def verdicts(grader, cases):
    """[(correct, extractor, reason)] for (gold, output) cases."""
    return [(g.correct, g.extractor, g.reason) for g in grader.grade_many([(gold, out) for gold, out, *_ in cases])]


# ---- 1. no anchor ---------------------------------------------------------------------------------

NO_ANCHOR = [
    ("3/4", "Adding the two parts gives three quarters of the cake.\n$\\frac{3}{4}$", "last_math"),
    ("17", "First 9 + 8.\nA: 17", "answer_label"),
    ("17", "**Answer:** 17", "answer_label"),
    ("42", "Reasoning about it step by step.\n\n42", "last_line"),
    ("2", "The roots satisfy the equation, so $x = 2$.", "last_math"),
]


@pytest.mark.parametrize("gold, output, tier", NO_ANCHOR)
def test_unanchored_outputs_are_read_by_the_fallback_tiers_and_say_which(grader, gold, output, tier):
    grade = grader.grade(gold, output)
    assert (grade.correct, grade.extractor) == (True, tier)


def test_strict_extraction_keeps_the_anchored_tiers_only():
    with Grader(workers=1, strict_extraction=True) as strict:
        assert [g.reason for g in strict.grade_many([(g, o) for g, o, _ in NO_ANCHOR])] == ["no_answer"] * 5
        assert strict.grade("5", "so the answer is 5.").correct, "anchored answers still count"
        assert strict.describe()["strict_extraction"] is True


def test_fallback_tiers_do_not_read_prose_as_an_answer(grader):
    cases = [("5", "We know $x$ is positive, and many more words follow before anything is concluded here."),
             ("5", "Let me think about the problem again from the start."),
             ("12", "The sum is 12 if we count twice, but then we must subtract the overlap first.")]
    assert [g.reason for g in grader.grade_many(cases)] == ["no_answer"] * 3


# ---- 2. several answers ---------------------------------------------------------------------------

def test_several_boxes_against_a_tuple_list_gold_in_any_order(grader):
    cases = [("(1,2),(3,4)", "So \\boxed{(1,2)} and \\boxed{(3,4)}."),
             ("(1,2),(3,4)", "So \\boxed{(3,4)} and \\boxed{(1,2)}."),
             ("(1,2),(3,4)", "So \\boxed{(1,2)} and \\boxed{(3,5)}."),
             (["$x=1$", "$x=2$"], "Either \\boxed{x=2} or \\boxed{x=1}"),
             (["1", "2"], "The solutions are \\boxed{1, 2}"),
             (["1", "2"], "The solutions are \\boxed{1}"),
             ("\\boxed{3} and \\boxed{-3}", "we get \\boxed{-3}, \\boxed{3}")]
    got = [(g.correct, g.reason) for g in grader.grade_many(cases)]
    assert got == [(True, "parts"), (True, "parts"), (False, "parts_mismatch"), (True, "parts"), (True, "parts"),
                   (False, "parts_count"), (True, "parts")]
    assert grader.grade("(1,2),(3,4)", "So \\boxed{(1,2)} and \\boxed{(3,4)}.").extractor == "boxed+parts"


def test_an_intermediate_box_far_from_the_end_is_not_a_part(grader):
    text = "Step one gives \\boxed{9}." + " We keep working." * 20 + " Finally \\boxed{(1,2)}"
    assert grader.grade("(1,2)", text).correct


# ---- 3. Final Answer: a sentence ------------------------------------------------------------------

@pytest.mark.parametrize("output, answer", [
    ("Final Answer: The smallest such $n$ is 12.", "12"),
    ("Final Answer: So we need $x = \\frac{1}{2}$ to balance it", "x = \\frac{1}{2}"),  # graded without "x ="
    ("Final Answer: We conclude that it takes 45 minutes in total", "45"),
    ("Final Answer: 7", "7"),
])
def test_final_answer_with_a_sentence_takes_the_math_in_it(output, answer):
    assert extract_answer(output) == (answer, "final_answer")


# ---- 4. gold normalisation ------------------------------------------------------------------------

@pytest.mark.parametrize("gold, output, correct", [
    ("7 (marbles)", "\\boxed{7}", True),
    ("12 km", "\\boxed{12}", True),
    ("5 \\text{ cm}", "\\boxed{5}", True),
    ("10{,}000", "\\boxed{10000}", True),
    ("10,000", "\\boxed{10\\,000}", True),
    ("10000", "\\boxed{10,000}", True),
    ("0.5", "\\boxed{0,5}", False),  # a decimal comma is ambiguous: never guessed
    ("\\text{3:15 p.m.}", "\\boxed{3:15 \\text{ pm}}", True),
    ("3:15 PM", "\\boxed{15:15}", True),
    ("3:15 a.m.", "\\boxed{3:15 pm}", False),
    ("6.0e23", "\\boxed{6.0 \\times 10^{23}}", True),
    ("6 \\times 10^{23}", "\\boxed{6e23}", True),
    ("6.0e23", "\\boxed{6.0e24}", False),
    ("Tuesday", "\\boxed{\\text{tuesday}}", True),
    ("yes", "So the answer is Yes.", True),
    ("no", "So the answer is yes.", False),
    ("the Red house", "\\boxed{red house}", True),
    ("Alice", "\\boxed{Bob}", False),
])
def test_gold_normalisation(grader, gold, output, correct):
    assert grader.grade(gold, output).correct is correct


def test_e_notation_is_a_whole_value_never_inside_an_expression():
    assert parse_number("6.0e23") is not None and parse_number("2e") is None and parse_number("2e+x") is None
    assert parse_number("3e2 + 1") is None
    assert parse_clock("3:15 p.m.") == (15, 15, 0) and parse_clock("13:15 p.m.") is None


# ---- 5. float noise in golds ----------------------------------------------------------------------

@pytest.mark.parametrize("gold, answer, correct", [
    ("1234.0999999996", "1234.1", True),
    ("0.6666666667", "0.666667", True),
    ("0.6666666667", "\\frac{2}{3}", True),
    ("145.0", "145", True),
    ("0.333", "\\frac{1}{3}", False),
    ("0.6666666667", "0.67", False),
    ("1234", "1234.0000001", False),  # integer golds stay exact
])
def test_float_noise_in_golds_within_a_documented_tolerance(grader, gold, answer, correct):
    assert grader.grade(gold, f"\\boxed{{{answer}}}").correct is correct


def test_the_float_tolerance_is_configurable():
    assert FLOAT_GOLD_REL_TOL == 1e-6
    with Grader(workers=1, float_tol=1e-12) as tight:
        assert not tight.grade("0.6666666667", "\\boxed{0.666667}").correct
        assert tight.grade("1234.0999999996", "\\boxed{1234.1}").correct


# ---- 6. multiple choice ---------------------------------------------------------------------------

@pytest.mark.parametrize("gold, output, correct", [
    ("C", "Comparing them all, so the answer is (C)", True),
    ("C", "Comparing them all.\nC) 42", True),
    ("(D) 42", "so the answer is (D).", True),
    ("(D) 42", "which gives \\boxed{42}", True),
    ("(D) 42", "so the answer is (B).", False),
    ("(D) 42", "which gives \\boxed{41}", False),
])
def test_multiple_choice_letters_in_prose_and_lettered_golds(grader, gold, output, correct):
    assert grader.grade(gold, output).correct is correct


# ---- 7. last number, not the last digit ------------------------------------------------------------

@pytest.mark.parametrize("output, answer", [
    ("The golden ratio is $\\frac{1+\\sqrt{5}}{2}$ here", "\\frac{1+\\sqrt{5}}{2}"),
    ("so the share is 3/4 of it", "3/4"),
    ("we computed \\frac{1+\\sqrt{5}}{2} at last", "\\frac{1+\\sqrt{5}}{2}"),
    ("there were 1,250 people", "1250"),
])
def test_allow_last_number_takes_the_last_number_or_expression(output, answer):
    assert extract_answer(output, allow_last_number=True, strict=True) == (answer, "last_number")


# ---- 8. loading benchmark files ---------------------------------------------------------------------

def write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loader_joins_question_fields_reads_list_golds_ids_and_choices(tmp_path):
    from eval.benchmarks import load_file

    data = write(tmp_path / "svamp.jsonl", [
        {"uid": "s1", "Body": "Tom has 3 apples.", "Question": "How many after 2 more?", "Answer": 5.0},
        {"uid": "s2", "Body": "A set.", "Question": "Which x?", "Answer": ["$x=1$", "$x=2$"]},
    ])
    problems = load_file(data, "Body,Question", "Answer", id_field="uid")
    assert problems[0].question == "Tom has 3 apples. How many after 2 more?" and problems[0].gold == "5"
    assert problems[1].gold == ["$x=1$", "$x=2$"] and problems[0].id == "svamp-s1"
    templated = load_file(data, "{Body}\nQuestion: {Question}", "Answer")
    assert templated[0].question == "Tom has 3 apples.\nQuestion: How many after 2 more?"
    mc = write(tmp_path / "mc.jsonl", [{"q": "Pick", "options": ["12", "42"], "label": "B"},
                                        {"q": "Pick again", "options": ["1", "2", "3"], "label": 0}])
    golds = [p.gold for p in load_file(mc, "q", "label", choices_field="options")]
    assert golds == ["(B) 42", "(A) 1"]
    multi = write(tmp_path / "multi.jsonl", [{"q": "Roots?", "a": "1, -2", "is_multiple_answer": True}])
    assert load_file(multi, "q", "a")[0].gold == ["1", "-2"]


def test_auto_gold_never_takes_a_whole_worked_solution(tmp_path):
    from eval.benchmarks import load_file

    data = write(tmp_path / "sol.jsonl", [
        {"q": "a", "solution": "We add the numbers one by one and then carefully check the result twice to be sure "
                               "that nothing was missed along the way."},
        {"q": "b", "solution": "Adding gives \\boxed{12} in the end after a long derivation with many words here."},
        {"q": "c", "solution": "Natalia sold 24 clips in May and 48 in all.\n#### 72"},
    ])
    problems = load_file(data, "q", "solution")
    assert problems[0].gold is None and "reads as a worked solution" in problems[0].gold_error
    assert "--answer-field" in problems[0].gold_error
    assert [p.gold for p in problems[1:]] == ["12", "72"]


def test_loader_errors_name_only_flags_that_exist():
    import argparse
    import re

    from eval.benchmarks import GENERIC_HELP
    from parafuse.cli import build_parser

    flags = set(re.findall(r"--[a-z-]+", GENERIC_HELP))
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["eval"]
    run = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    known = {s for a in run._actions for s in a.option_strings}
    assert flags and flags <= known


# ---- eval grade ---------------------------------------------------------------------------------

def test_grade_pair_and_grade_pairs_from_python():
    assert grade_pair("3/4", "so $\\frac{3}{4}$").correct
    assert [g.correct for g in grade_pairs([("5", "\\boxed{5}"), ("5", "\\boxed{6}")])] == [True, False]
    assert grade_pair("17", "A: 17", strict_extraction=True).reason == "no_answer"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parafuse.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_eval_grade_cli_grades_resumes_and_agrees_with_the_grader(tmp_path, grader):
    cases = NO_ANCHOR + [("5", "\\boxed{6}", ""), ("(1,2),(3,4)", "\\boxed{(1,2)} and \\boxed{(3,4)}", "")]
    data = write(tmp_path / "pairs.jsonl", [{"id": i, "gold": g, "output": o} for i, (g, o, _) in enumerate(cases)])
    out = tmp_path / "graded.jsonl"
    done = run_cli("eval", "grade", "--input", str(data), "--gold-field", "gold", "--prediction-field", "output",
                   "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = grader.grade_many([(g, o) for g, o, _ in cases])
    assert [(r["grade"]["correct"], r["grade"]["extractor"], r["grade"]["reason"]) for r in rows] == \
        [(g.correct, g.extractor, g.reason) for g in expected], "eval grade gives eval run's verdicts"
    assert [r["id"] for r in rows] == list(range(len(cases)))
    assert [r["gold"] for r in rows] == [g for g, _, _ in cases], "the input's own fields are kept"
    assert "6 correct" in done.stderr and "by extractor:" in done.stderr
    # A rerun grades nothing again; a cut-off last line is repaired and regraded.
    out.write_text(out.read_text()[:-20])
    again = run_cli("eval", "grade", "--input", str(data), "--gold-field", "gold", "--prediction-field", "output",
                    "--out", str(out), "--no-progress")
    assert again.returncode == 0 and f"({len(cases) - 1} already in" in again.stderr
    assert len(out.read_text().splitlines()) == len(cases)


def test_eval_grade_names_the_line_of_bad_input(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"gold": "1", "output": "\\\\boxed{1}"}\n{"gold": "2"}\n')
    done = run_cli("eval", "grade", "--input", str(data), "--gold-field", "gold", "--prediction-field", "output",
                   "--out", str(tmp_path / "o.jsonl"))
    assert done.returncode == 2 and "bad.jsonl:2: no field 'output'" in done.stderr


def test_eval_grade_regrades_when_the_settings_change(tmp_path):
    data = write(tmp_path / "pairs.jsonl", [{"gold": "17", "output": "work\nA: 17"}])
    out = tmp_path / "graded.jsonl"
    args = ("eval", "grade", "--input", str(data), "--gold-field", "gold", "--prediction-field", "output",
            "--out", str(out), "--no-progress")
    assert run_cli(*args).returncode == 0
    assert json.loads(out.read_text())["grade"]["correct"] is True
    strict = run_cli(*args, "--strict-extraction")
    assert strict.returncode == 0 and "(0 already in" in strict.stderr
    assert json.loads(out.read_text())["grade"]["reason"] == "no_answer"


def test_more_boxes_than_gold_parts_is_wrong_and_long_list_golds_are_one_answer(grader):
    assert grader.grade(["1", "2"], "\\boxed{1}, \\boxed{2}, \\boxed{3}").reason == "parts_count"
    assert grader.grade(["", "5"], "\\boxed{5}").correct, "a list with one part is that part"
    assert not grader.grade(["", "5"], "\\boxed{6}").correct


def test_final_answer_text_and_subject_first_sentences():
    assert extract_answer("Final Answer: Both I and II") == ("Both I and II", "final_answer")
    assert extract_answer("Final Answer: 42 is the number of apples") == ("42", "final_answer")
    assert extract_answer("there are 12 apples in the set $S$.", allow_last_number=True, strict=True)[0] == "12"


def test_a_gold_that_is_a_choice_text_stays_that_choice(tmp_path):
    from eval.benchmarks import load_file

    data = write(tmp_path / "mc.jsonl", [{"q": "Pick", "options": ["1", "2", "3"], "label": "2"}])
    assert load_file(data, "q", "label", choices_field="options")[0].gold == "(B) 2"
