"""The ParaThinker format: pads, the one-block rule, malformed input, first-finish and reference modes."""
from __future__ import annotations

import pytest
from format_errors import check_error, offset_of, only_error

from reasoning.formats import FormatError, Text, Trace, convert, parathinker


# ---- round trips -------------------------------------------------------------------------------

def test_parathinker_keeps_pads_out_of_content():
    text = "<think>\n<think1>a</think1><vllm_pad><vllm_pad>\n<think2>\nb\n</think2><vllm_pad><summary>s</summary>"
    trace = parathinker.parse(text)
    assert [b.text for b in trace.blocks[0].branches] == ["a", "b"]
    assert [b.label for b in trace.blocks[0].branches] == ["1", "2"]
    assert trace.segments[0] == Text("<think>\n")
    assert parathinker.serialize(trace) == text


def test_parathinker_refuses_multi_block_and_leading_text():
    two = "a<Parallel><Path>x</Path><Path>y</Path></Parallel><Summary>s</Summary>" * 2
    with pytest.raises(FormatError, match="exactly one parallel block.*has 2") as e:
        convert("<Parallel><Path>x</Path><Path>y</Path></Parallel><Summary>s</Summary>" * 2, "parallel_r1",
                "parathinker")
    assert e.value.offset == len("<Parallel><Path>x</Path><Path>y</Path></Parallel><Summary>s</Summary>")
    with pytest.raises(FormatError, match="text before its block"):
        convert(two[:len(two) // 2], "parallel_r1", "parathinker")
    with pytest.raises(FormatError, match="no place"):
        convert("<Parallel>plan<Path>x</Path><Path>y</Path></Parallel><Summary>s</Summary>", "parallel_r1",
                "parathinker")


# ---- malformed input ---------------------------------------------------------------------------

def _paths(*nums: int) -> str:
    return "".join(f"<think{n}>p{n}</think{n}>" for n in nums)


@pytest.mark.parametrize("text, tag, at, words", [
    (_paths(1, 3) + "<summary>s</summary>", "<think3>", ("<think3>", 1), ["out of order", "expected <think2>"]),
    (_paths(2, 1) + "<summary>s</summary>", "<think2>", 0, ["out of order", "expected <think1>"]),
    (_paths(*range(1, 10)) + "<summary>s</summary>", "<think9>", ("<think9>", 1), ["at most 8"]),
    ("<think>\n" + _paths(1, 2), "<summary>", ("</think2>", 1), ["missing <summary>", "</think2>"]),
    (_paths(1, 2) + "<summary>s", "<summary>", ("<summary>", 1), ["unclosed <summary>"]),
    ("<think1>p1</think1><think2>p2<summary>s</summary>", "<think2>", ("<think2>", 1), ["unclosed <think2>"]),
    ("<summary>s</summary>", "<summary>", 0, ["before any path"]),
    ("hello " + _paths(1, 2) + "<summary>s</summary>", "<think1>", 0, ["before the first path"]),
    ("<think>\n<vllm_pad> hi" + _paths(1, 2) + "<summary>s</summary>", "<think1>", ("hi<", 1),
     ["before the first path"]),
    (_paths(1, 2) + "<summary>s</summary>\n" + _paths(1, 2) + "<summary>t</summary>", "<think1>", ("<think1>", 2),
     ["second parallel block"]),
    (_paths(1) + "<summary>s</summary>", "<think1>", 0, ["at least 2"]),
    ("<think1>p1<think2>p2</think2></think1><summary>s</summary>", "<think2>", ("<think2>", 1), ["nested <think2>"]),
    ("<think1>p1</think2><think2>p2</think2><summary>s</summary>", "</think2>", ("</think2>", 1),
     ["does not close <think1>"]),
    (_paths(1, 2) + "and<summary>s</summary>", "</think2>", ("and", 1), ["between </think2>"]),
    ("<think>\n  ", "<think1>", 10, ["no paths"]),
    ("<think>\nlet me see", "<think1>", ("let", 1), ["no paths"]),
])
def test_parathinker_malformed(text, tag, at, words):
    check_error(only_error("parathinker", text), tag, offset_of(text, at), *words)


# ---- validator modes: first finish and reference -----------------------------------------------

PT_CUT = "<think1>a b</think1><vllm_pad><think2>c d<think3>e f<summary>S</summary>"
PT_STRAY = "<think1>a b</think1><think2>c <think1> d</think2><summary>S</summary>"


def test_parathinker_first_finish_and_reference_modes_round_trip():
    assert parathinker.validate(PT_CUT), "strict without first_finish: cut paths are unclosed"
    assert parathinker.validate(PT_CUT, first_finish=True) == []
    assert parathinker.validate(PT_STRAY, first_finish=True), "a stray <think1> is still nested for strict"
    for text in (PT_CUT, PT_STRAY):
        assert parathinker.validate(text, mode="reference") == []
        trace = parathinker.parse(text, mode="reference")
        assert parathinker.serialize(trace) == text
    trace = parathinker.parse(PT_CUT, first_finish=True)
    assert trace.blocks[0].raw["cut"] == [1, 2] and [b.text for b in trace.blocks[0].branches] == ["a b", "c d", "e f"]
    # converted elsewhere, the cut paths get their end tags (the other format has no cut paths)
    rebuilt = Trace(trace.segments, "parallel_r1")
    assert parathinker.serialize(rebuilt).count("</think") == 3
    # still errors in both modes: a path left open at the end, a missing summary
    assert parathinker.validate("<think1>a</think1><think2>b", mode="reference")
    assert parathinker.validate("<think1>a</think1><think2>b</think2>", mode="reference")
