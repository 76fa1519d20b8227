"""The ThreadWeaver format: its tree fields and layout, malformed input, metrics, strict and reference validation."""
from __future__ import annotations

import pytest
from format_errors import check_error, offset_of, only_error

from reasoning.formats import Block, Branch, Text, Trace, threadweaver
from reasoning.formats.metrics import text_metrics


# ---- round trips -------------------------------------------------------------------------------

def test_threadweaver_tree_fields_and_reference_layout():
    text = ("<think>\nFirst.\n<Parallel>\n<Outlines>\n<Outline>1: add</Outline>\n<Outline>1: dup</Outline>\n"
            "<Outline>1.2: check</Outline>\n</Outlines>\n<Thread>\n1: 2+2=4\n</Thread><Thread>\n1.2: ok\n</Thread>\n"
            "<Conclusion>\nboth agree\n</Conclusion>\n</Parallel>\nSo 4.\n</think>\n\\boxed{4}")
    trace = threadweaver.parse(text)
    (blk,) = trace.blocks
    assert [(b.label, b.outline, b.text) for b in blk.branches] == [("1", "add", "2+2=4"), ("1.2", "check", "ok")]
    assert blk.join == "both agree" and blk.head == ""
    assert threadweaver.serialize(trace) == text
    # a tree from elsewhere gets the orchestrator's layout and generic outlines
    fresh = Trace([Block([Branch("x"), Branch("y")])], "parallel_r1")
    assert threadweaver.serialize(fresh) == (
        "<Parallel>\n<Outlines>\n<Outline>1: path 1</Outline>\n<Outline>2: path 2</Outline>\n</Outlines>\n"
        "<Thread>\n1: x\n</Thread><Thread>\n2: y\n</Thread>\n</Parallel>")


def test_parsed_tree_equals_the_tree_it_came_from():
    tree = Trace([Text("a "), Block([Branch("x", outline="do x", label="1"), Branch("y", outline="do y", label="2")],
                                    head="plan", join="xy"), Text(" b")], "threadweaver")
    back = threadweaver.parse(threadweaver.serialize(tree))
    assert back == tree  # equality is on content; the layout kept in `raw` and `span` is ignored
    assert back.blocks[0].branches[0].span is not None and back.blocks[0].raw


# ---- malformed input ---------------------------------------------------------------------------

OUT2 = "<Outlines>\n<Outline>1: a</Outline>\n<Outline>2: b</Outline>\n</Outlines>\n"
TH = "<Thread>\n1: x\n</Thread><Thread>\n2: y\n</Thread>\n"


@pytest.mark.parametrize("text, tag, at, words", [
    ("<Parallel>\n" + OUT2 + TH, "<Parallel>", 0, ["unclosed <Parallel>"]),
    ("x<Parallel>\n" + OUT2 + "<Thread>\n1: x\n</Parallel>", "<Thread>", ("<Thread>", 1),
     ["unclosed <Thread>", "</Parallel>"]),
    ("<Parallel>\n" + OUT2 + "<Thread>\n1: x\n</Thread>\n</Parallel>", "</Parallel>", ("</Parallel>", 1),
     ["1 <Thread>", "2 outlines"]),
    ("<Parallel>\n" + OUT2 + TH + "<Thread>\n3: z\n</Thread></Parallel>", "<Thread>", ("<Thread>", 3),
     ["has no outline", "lists 2 outlines"]),
    ("<Parallel>\n" + OUT2 + "<Thread>\n2: x\n</Thread><Thread>\n1: y\n</Thread>\n</Parallel>", "<Thread>",
     ("<Thread>", 1), ["numbered '2'", "numbered '1'"]),
    ("<Parallel>\n" + OUT2 + "<Thread>\nx\n</Thread><Thread>\n2: y\n</Thread>\n</Parallel>", "<Thread>",
     ("<Thread>", 1), ["does not start with its outline number '1:'"]),
    ("<Parallel>\n" + OUT2 + "<Thread>\n1: <Parallel>\n</Thread><Thread>\n2: y\n</Thread>\n</Parallel>",
     "<Parallel>", ("<Parallel>", 2), ["nested <Parallel>", "do not nest"]),
    ("<Parallel>\n<Outlines><Outline>1: a</Outline></Outlines><Thread>1: x</Thread></Parallel>", "<Parallel>", 0,
     ["1 <Thread>", "at least 2"]),
    ("<Parallel>\n<Outlines><Outline>first</Outline><Outline>2: b</Outline></Outlines></Parallel>", "<Outline>",
     ("<Outline>", 1), ["does not start with a number"]),
    ("<Parallel>\n" + TH + "</Parallel>", "<Thread>", ("<Thread>", 1), ["before any <Outlines>"]),
    ("intro <Thread>1: x</Thread>", "<Thread>", ("<Thread>", 1), ["outside any <Parallel>"]),
    ("<think>a</think><Parallel>\n" + OUT2 + TH + "</Parallel>", "<Parallel>", ("<Parallel>", 1), ["after </think>"]),
    ("<think>a<think>", "<think>", ("<think>", 2), ["second <think>"]),
    ("<Parallel>\n" + OUT2 + TH + "<Conclusion>c</Conclusion>\n<Thread>\n3: z\n</Thread></Parallel>", "<Thread>",
     ("<Thread>", 3), ["unexpected <Thread>", "expected </Parallel>"]),
    ("<Parallel>\n" + OUT2 + "<Thread>\n1: x\n</Thread> and <Thread>\n2: y\n</Thread>\n</Parallel>", "<Thread>",
     ("and", 1), ["between the <Thread>s"]),
    ("<Parallel>\n" + OUT2 + "<Thread>\n1: x\n</Thread><Conclusion>c", "<Parallel>", 0,
     ["unclosed <Parallel>"]),
])
def test_threadweaver_malformed(text, tag, at, words):
    check_error(only_error("threadweaver", text), tag, offset_of(text, at), *words)


def test_threadweaver_duplicate_outline_numbers_are_dropped():
    text = ("<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>1: a again</Outline>\n</Outlines>\n"
            "<Thread>\n1: x\n</Thread><Thread>\n1: y\n</Thread>\n</Parallel>")
    check_error(only_error("threadweaver", text), "<Thread>", text.rindex("<Thread>"), "has no outline",
                "lists 1 outline")


# ---- metrics -----------------------------------------------------------------------------------

def test_metrics_threadweaver_counts_outlines_and_conclusion_as_block_text():
    text = ("go<Parallel>\n<Outlines>\n<Outline>1: aa</Outline>\n<Outline>2: bb</Outline>\n</Outlines>\n"
            "<Thread>\n1: q r s t\n</Thread><Thread>\n2: u\n</Thread>\n<Conclusion>\nvv\n</Conclusion>\n</Parallel>ok")
    m = text_metrics(text, "threadweaver")
    # block: 14 tags + "1: aa" (2) + "2: bb" (2) + "vv" (1); branches: "1: q r s t" (5), "2: u" (2)
    assert m.block_tokens == [14 + 5] and m.branch_tokens == [[5, 2]] and m.sequential_tokens == 2
    assert (m.total_tokens, m.critical_path_tokens) == (2 + 19 + 7, 2 + 19 + 5)


# ---- validator modes: strict (eval) and reference (the authors' own checks) ----------------------

TW_OK = ("<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>2: b</Outline>\n</Outlines>\n"
         "<Thread>\n1: x\n</Thread><Thread>\n2: y\n</Thread>\n<Conclusion>\nz\n</Conclusion>\n</Parallel>")

TW_CASES = [
    (TW_OK, True, True),
    (TW_OK.replace("2: b", "2.1: b").replace("2: y", "2.1: y"), True, False),  # integers only
    (TW_OK.replace("2: b", "3: b").replace("2: y", "3: y"), True, False),  # numbered 1..k
    (TW_OK.replace("<Parallel>\n<Outlines>", "<Parallel>\nplan\n<Outlines>"), True, False),  # no head text
    (TW_OK.replace("1: a<", "1: <").replace("1: a", "1:"), True, False),  # non-empty outline
    (TW_OK.replace("<Conclusion>\nz\n</Conclusion>\n", ""), True, False),  # one conclusion
    (TW_OK.replace("</Thread><Thread>", "</Thread>\n<Thread>"), True, True),  # whitespace: the pipeline allowed it
]


@pytest.mark.parametrize("text,strict,reference", TW_CASES)
def test_threadweaver_modes(text, strict, reference):
    assert (threadweaver.validate(text) == []) is strict
    assert (threadweaver.validate(text, mode="reference") == []) is reference


def test_threadweaver_reference_switches():
    spaced = TW_OK.replace("</Thread><Thread>", "</Thread>\n<Thread>")
    assert threadweaver.validate(spaced, mode="reference", allow_whitespace_between_threads=False)
    bare = TW_OK.replace("<Conclusion>\nz\n</Conclusion>\n", "")
    assert threadweaver.validate(bare, mode="reference", skip_conclusion_check=True) == []
