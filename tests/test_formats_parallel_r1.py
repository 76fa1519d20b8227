"""The Parallel-R1 format: layout round trips, malformed input, metrics, strict and reference validation."""
from __future__ import annotations

import pytest
from format_errors import check_error, offset_of, only_error

from reasoning.formats import FormatError, parallel_r1
from reasoning.formats.metrics import approx_tokens, text_metrics


# ---- round trips -------------------------------------------------------------------------------

def test_parallel_r1_accepts_summary_with_and_without_newline():
    for sep in ("", "\n"):
        text = f"<Parallel><Path>a</Path><Path>b</Path></Parallel>{sep}<Summary>s</Summary>\nFinal Answer: 1"
        assert parallel_r1.serialize(parallel_r1.parse(text)) == text
    tree = parallel_r1.parse(text)
    tree.blocks[0].branches.reverse()  # edited content: layout reused where it still fits
    assert parallel_r1.serialize(tree) == text.replace("<Path>a</Path><Path>b</Path>", "<Path>b</Path><Path>a</Path>")


# ---- malformed input ---------------------------------------------------------------------------

P2 = "<Path>a</Path><Path>b</Path>"
FA = "\nFinal Answer: 7"


@pytest.mark.parametrize("text, tag, at, words", [
    ("x<Parallel>" + P2 + "<Summary>s</Summary>" + FA, "<Parallel>", ("<Parallel>", 1), ["unclosed <Parallel>"]),
    ("x<Parallel><Path>a</Path><Path>b" + FA, "<Parallel>", ("<Parallel>", 1), ["unclosed <Parallel>"]),
    ("<Parallel>" + P2 + "</Parallel><Summary>s" + FA, "<Summary>", ("<Summary>", 1), ["unclosed <Summary>"]),
    ("intro <Summary>s</Summary>" + FA, "<Summary>", ("<Summary>", 1), ["does not follow a </Parallel>"]),
    ("<Parallel><Path>a<Parallel><Path>b</Path></Path></Parallel><Summary>s</Summary>" + FA, "<Parallel>", 0,
     ["at least 2"]),
    ("<Parallel><Path>a</Path><Path>b<Path>c</Path></Path></Parallel><Summary>s</Summary>" + FA, "<Path>",
     ("<Path>", 3), ["nested <Path>"]),
    ("<Parallel><Path>only</Path></Parallel>\n<Summary>s</Summary>" + FA, "<Parallel>", 0, ["1 <Path>", "at least 2"]),
    ("ab<Parallel>" + P2 + "</Parallel>\nso<Summary>s</Summary>" + FA, "</Parallel>", ("so<", 1),
     ["followed by <Summary>"]),
    ("ab<Parallel>" + P2 + "</Parallel>\n<Parallel>" + P2 + "</Parallel><Summary>s</Summary>" + FA, "</Parallel>",
     ("</Parallel>", 1), ["not followed by <Summary>", "next tag is <Parallel>"]),
    ("<Parallel>" + P2 + "</Parallel>" + FA, "</Parallel>", ("</Parallel>", 1),
     ["not followed by <Summary>", "text ends"]),
    ("<Path>a</Path>" + FA, "<Path>", 0, ["outside any <Parallel>"]),
    ("<Parallel><Path>a</Path>note<Path>b</Path></Parallel><Summary>s</Summary>" + FA, "<Path>", ("note", 1),
     ["between the <Path>s"]),
    ("<Parallel>" + P2 + "</Parallel><Summary>s</Summary></Summary>" + FA, "</Summary>", ("</Summary>", 2),
     ["unexpected </Summary>", "no <Summary> is open"]),
])
def test_parallel_r1_malformed(text, tag, at, words):
    check_error(only_error("parallel_r1", text), tag, offset_of(text, at), *words)


def test_parallel_r1_nested_block_is_named():
    text = "<Parallel><Path>a<Parallel></Path><Path>b</Path></Parallel><Summary>s</Summary>" + FA
    (err,) = parallel_r1.validate(text)
    check_error(err, "<Parallel>", 17, "nested <Parallel>", "do not nest")


def test_parallel_r1_final_answer_switch():
    body = "<Parallel>" + P2 + "</Parallel>\n<Summary>s</Summary>\nso it is 7"
    err = only_error("parallel_r1", body)
    check_error(err, "Final Answer:", body.rindex("\n") + 1, "must end with")
    assert parallel_r1.validate(body, require_final_answer=False) == []
    assert parallel_r1.validate(body + "\nfinal answer: 7\n") == []
    inside = "<Parallel>" + P2 + "</Parallel>\n<Summary>Final Answer: 7</Summary>"
    check_error(only_error("parallel_r1", inside), "Final Answer:", offset_of(inside, ("<Summary>", 1)),
                "outside any block")


def test_validate_reports_every_problem_sorted():
    text = "<Summary>a</Summary><Parallel><Path>x</Path></Parallel>"
    errors = parallel_r1.validate(text)
    assert [e.tag for e in errors] == ["<Summary>", "Final Answer:", "</Summary>", "<Parallel>", "</Parallel>"]
    assert [e.offset for e in errors] == sorted(e.offset for e in errors)
    assert all(isinstance(e, FormatError) and isinstance(e, ValueError) for e in errors)


# ---- metrics -----------------------------------------------------------------------------------

def test_metrics_hand_computed_default_counter():
    text = ("ab cd<Parallel><Path>x y z</Path><Path>w</Path></Parallel>\n<Summary>s t</Summary>so it is")
    m = text_metrics(text, "parallel_r1")
    # outside: "ab cd" (2) + "so it is" (3); block: 8 tags + "s t" (2); branches 3 and 1
    assert (m.sequential_tokens, m.block_tokens, m.branch_tokens) == (5, [10], [[3, 1]])
    assert m.total_tokens == 5 + 10 + 4 and m.critical_path_tokens == 5 + 10 + 3
    assert m.blocks == 1 and m.widths == [2]
    assert m.speedup == pytest.approx(19 / 18) and m.acceleration_ratio == pytest.approx(1 - 18 / 19)
    assert m.parallel_token_share == pytest.approx(14 / 19) and m.has_parallel
    assert approx_tokens("<Parallel>") == 1 and approx_tokens("abcdefgh ijklm") == 2 + 2


# ---- validator modes: strict (eval) and reference (the authors' own checks) ---------------------------

R1_OK = "<Parallel><Path>a</Path><Path>b</Path></Parallel>\n<Summary>s</Summary>\nFinal Answer: 7"

# (text, strict valid, reference valid): the reference checker's rules, one case each
R1_CASES = [
    (R1_OK, True, True),
    # 1. text between </Path> and <Path>, and between </Parallel> and <Summary>: ignored by the reference
    ("<Parallel><Path>a</Path> so <Path>b</Path></Parallel> then <Summary>s</Summary>\nFinal Answer: 7", False, True),
    # 2. a well-formed nested block inside a path
    ("<Parallel><Path><Parallel><Path>x</Path><Path>y</Path></Parallel><Summary>t</Summary></Path><Path>b</Path>"
     "</Parallel><Summary>s</Summary>\nFinal Answer: 7", False, True),
    # 3. a <Path> outside any block
    ("<Path>a</Path>\nFinal Answer: 7", False, True),
    # 4. an unclosed <Summary> (the runtime's cut after </Parallel>\n<Summary>)
    ("<Parallel><Path>a</Path><Path>b</Path></Parallel>\n<Summary>", False, True),
    # 5. no Final Answer line / bold Final Answer
    ("<Parallel><Path>a</Path><Path>b</Path></Parallel><Summary>s</Summary> **Final Answer:** 7", False, True),
    # still wrong for the reference: one path, a summary with no block, a block never summarized, open tags
    ("<Parallel><Path>a</Path></Parallel><Summary>s</Summary>", False, False),
    ("<Summary>s</Summary>", False, False),
    ("<Parallel><Path>a</Path><Path>b</Path></Parallel> done", False, False),
    ("<Parallel><Path>a</Path><Path>b", False, False),
    # a <Path> between </Parallel> and <Summary> keeps the summary pending (only <Parallel> clears it)
    ("<Parallel><Path>a</Path><Path>b</Path></Parallel><Path>c</Path><Summary>s</Summary>", False, True),
    ("<Parallel><Path>a</Path><Path>b</Path></Parallel><Parallel><Summary>", False, False),
]


@pytest.mark.parametrize("text,strict,reference", R1_CASES)
def test_parallel_r1_modes(text, strict, reference):
    assert (parallel_r1.validate(text) == []) is strict
    assert (parallel_r1.validate(text, mode="reference") == []) is reference
    with pytest.raises(ValueError, match="unknown validation mode"):
        parallel_r1.validate(text, mode="loose")


def test_parallel_r1_boxed_prompt_needs_no_final_answer_line():
    boxed = "<Parallel><Path>a</Path><Path>b</Path></Parallel>\n<Summary>s</Summary>\nSo \\boxed{7}."
    assert parallel_r1.validate(boxed) and parallel_r1.validate(boxed, require_final_answer=False) == []
