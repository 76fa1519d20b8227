"""Parallel-R1's reference verifier (`eval.grading.reference_parallel_r1`), rule by rule.

Each row states what the reference scores, from its rules: the last `Final Answer:` in the last
300 characters of the tag-stripped text, Minerva normalisation, string equality.
"""
from __future__ import annotations

import pytest

from eval.grading.reference_parallel_r1 import ReferenceGrader, extract, grade, normalize_final_answer, strip_tags

BLOCK = "<Parallel><Path>try 5</Path><Path>try 7</Path></Parallel>\n<Summary>both give 12</Summary>\n"

CASES = [  # (gold, response, correct, why)
    ("12", BLOCK + "Final Answer: 12", True, "the plain convention"),
    ("12", "so \\boxed{12}", False, "a lone \\boxed{} is wrong"),
    ("12", "Final Answer: \\boxed{12}", True, "the normalisation unwraps a box after Final Answer:"),
    ("12", "final answer:12", True, "case-insensitive, no space needed"),
    ("12", "Final Answer: 7\nI made a slip.\nFinal Answer: 12", True, "the last one wins"),
    ("12", "Final Answer: 12\n" + "x" * 300, False, "outside the last 300 characters"),
    ("12", "<Summary>Final Answer: 12</Summary>" + "<Parallel>" * 30, True, "tags are stripped before the window"),
    ("0.5", "Final Answer: \\frac{1}{2}", False, "string equality: no math equivalence"),
    ("\\frac{1}{2}", "Final Answer: \\dfrac{1}{2}", False, "\\dfrac is not normalised"),
    ("\\frac{1}{2}", "Final Answer: \\frac12", True, "\\fracab is spelled out"),
    ("1000", "Final Answer: 1,000", True, "thousands commas go for whole numbers"),
    ("5", "Final Answer: x = 5", True, "only what follows the last = counts"),
    ("5", "Final Answer: $5$.", True, "dollars and the period before one go"),
    ("30", "Final Answer: 30 degrees", True, "units are deleted"),
    ("30", "Final Answer: 30^\\circ", True, "degree marks are deleted"),
    ("10", "Final Answer: 10 \\text{ cm}", True, "\\text{} unwrapped, spaces and units gone"),
    ("(1,2)", "Final Answer: (1, 2)", True, "spaces go"),
    ("12", "The answer is 12.", False, "no Final Answer: line is [INVALID]"),
]


@pytest.mark.parametrize("gold,response,correct,why", CASES, ids=[c[3] for c in CASES])
def test_reference_verdicts(gold, response, correct, why):
    assert grade(gold, response).correct is correct, why


def test_minerva_normalisation_rules():
    assert normalize_final_answer("pizza area") == "pizzarea"  # "a " goes anywhere, as in the reference
    assert normalize_final_answer("\\sqrt2") == "\\sqrt{2}"
    assert normalize_final_answer("\\text{(B)}") == "(B)"
    assert normalize_final_answer("\\boxed{\\frac{3}{4}}") == "\\frac{3}{4}"
    assert normalize_final_answer("5 \\text{ ways}") == "5"


def test_what_the_verifier_reads():
    assert strip_tags(BLOCK + "<|im_end|>") == "try 5try 7\nboth give 12\n"
    assert extract("no answer here") is None
    g = grade("12", "Final Answer: $12$")
    assert (g.answer, g.extractor, g.reason) == ("12", "final_answer_reference", "reference_equal")
    assert grade("12", "nothing").reason == "no_answer" and grade(None, "Final Answer: 1").reason == "unparseable_gold"
    assert grade(["1", "2"], "Final Answer: 1, 2").correct, "several golds compare as their comma-joined string"


def test_grader_interface_and_the_eval_grade_setting():
    from eval.grading import grade_pair

    with ReferenceGrader() as g:
        assert [x.correct for x in g.grade_many([("3", "Final Answer: 3"), ("3", "\\boxed{3}")])] == [True, False]
        assert "300" in g.describe()["rules"]
    # the same setting in `eval grade` / grade_pair: the reference and parafuse disagree on a lone box
    assert grade_pair("3", "\\boxed{3}", grader="parallel_r1_reference").correct is False
    assert grade_pair("3", "\\boxed{3}").correct is True
