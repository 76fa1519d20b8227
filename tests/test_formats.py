"""Parallel-thinking formats: exact round trips, conversions, malformed input, token metrics."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoning.formats import (
    FORMATS, Block, Branch, FormatError, Text, Trace, convert, get_format, parallel_r1, parathinker, threadweaver,
    trace_metrics,
)
from reasoning.formats.metrics import approx_tokens, text_metrics
from reasoning.formats.tags import ALL_TAGS, PARALLEL_R1, PARATHINKER, THINK, THREADWEAVER

NAMES = sorted(FORMATS)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(fmt: str, text: str) -> Trace:
    mod = get_format(fmt)
    return mod.parse(text, **mod.STRUCTURE_ONLY)


def validate(fmt: str, text: str) -> list[FormatError]:
    mod = get_format(fmt)
    return mod.validate(text, **mod.STRUCTURE_ONLY)


# ---- strategies --------------------------------------------------------------------------------

# Random text without tag characters: letters, digits, punctuation, any whitespace (incl. unicode).
chars = st.characters(blacklist_characters="<>", blacklist_categories=("Cs",))
raw_text = st.text(chars, max_size=25)
content = raw_text.map(str.strip)          # node content is whitespace-stripped
seq_text = st.text(chars, min_size=1, max_size=25)
ws = st.sampled_from(["", "\n", " ", "\n\n", "\t", " \n ", "\u2003\n"])
labels = st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,2}){0,2}", fullmatch=True)


@st.composite
def branches(draw, outlines: bool):
    k = draw(st.integers(2, 6))
    return [Branch(draw(content), outline=draw(st.none() | content) if outlines else None) for _ in range(k)]


@st.composite
def blocks(draw, fmt: str):
    head = "" if fmt == "parathinker" else draw(st.sampled_from([""]) | content)
    join = draw(content) if fmt != "threadweaver" else draw(st.none() | content)
    return Block(draw(branches(fmt == "threadweaver")), head=head, join=join)


@st.composite
def traces(draw, fmt: str):
    """Random trees a format can hold: text and 0-3 blocks (ParaThinker: exactly one, at the start)."""
    if fmt == "parathinker":
        segs = []
        pre = draw(st.sampled_from(["", "<think>", "<think>\n", "\n", "<think><vllm_pad>\n"]))
        if pre:
            segs.append(Text(pre))
        segs.append(draw(blocks(fmt)))
        if draw(st.booleans()):
            segs.append(Text(draw(seq_text)))
        return Trace(segs, fmt)
    segs = []
    if draw(st.booleans()):
        segs.append(Text(draw(seq_text)))
    for _ in range(draw(st.integers(0, 3))):
        segs.append(draw(blocks(fmt)))
        if draw(st.booleans()):
            segs.append(Text(draw(seq_text)))
    return Trace(segs, fmt)


@st.composite
def messy_parallel_r1(draw):
    """Valid Parallel-R1 text with random whitespace everywhere the grammar allows it."""
    out = draw(raw_text)
    for _ in range(draw(st.integers(0, 3))):
        out += "<Parallel>" + draw(ws) + draw(st.sampled_from(["", "let me split. "])) + draw(ws)
        for i in range(draw(st.integers(2, 5))):
            out += (draw(ws) if i else "") + "<Path>" + draw(ws) + draw(content) + draw(ws) + "</Path>"
        out += draw(ws) + "</Parallel>" + draw(st.sampled_from(["", "\n", "\n\n", " "])) + "<Summary>" + draw(ws)
        out += draw(content) + draw(ws) + "</Summary>" + draw(raw_text)
    return out + "\nFinal Answer: " + draw(st.sampled_from(["42", "x = 3", "\\frac{1}{2}"]))


@st.composite
def messy_threadweaver(draw):
    think = draw(st.booleans())
    out = ("<think>" if think else "") + draw(raw_text)
    for _ in range(draw(st.integers(0, 3))):
        nums = draw(st.lists(labels, min_size=2, max_size=5, unique=True))
        out += "<Parallel>" + draw(ws) + draw(st.sampled_from(["", "Split:"])) + draw(ws) + "<Outlines>" + draw(ws)
        for n in nums:
            gap = draw(st.sampled_from(["", " "]))
            out += f"<Outline>{draw(ws)}{n}{gap}:{draw(ws)}{draw(content)}{draw(ws)}</Outline>"
            if draw(st.booleans()):  # a repeated number: dropped, as the reference orchestrator does
                out += f"{draw(ws)}<Outline>{n}: again</Outline>"
            out += draw(ws)
        out += "</Outlines>" + draw(ws)
        for i, n in enumerate(nums):
            out += (draw(ws) if i else "") + f"<Thread>{draw(ws)}{n}:{draw(ws)}{draw(content)}{draw(ws)}</Thread>"
        out += draw(ws)
        if draw(st.booleans()):
            out += "<Conclusion>" + draw(ws) + draw(content) + draw(ws) + "</Conclusion>" + draw(ws)
        out += "</Parallel>" + draw(raw_text)
    if think and draw(st.booleans()):
        out += "</think>" + draw(raw_text)
    return out


@st.composite
def messy_parathinker(draw):
    pad = st.sampled_from(["", "\n", "<vllm_pad>", "<vllm_pad><vllm_pad>\n", " "])
    out = draw(st.sampled_from(["", "<think>", "<think>\n", "\n<think>\n\n"])) + draw(pad)
    for i in range(1, draw(st.integers(2, 8)) + 1):
        out += (draw(pad) if i > 1 else "") + f"<think{i}>{draw(ws)}{draw(content)}{draw(ws)}</think{i}>"
    out += draw(pad) + "<summary>" + draw(ws) + draw(content) + draw(ws) + "</summary>" + draw(raw_text)
    return out


MESSY = {"parallel_r1": messy_parallel_r1(), "threadweaver": messy_threadweaver(), "parathinker": messy_parathinker()}


# ---- registry ----------------------------------------------------------------------------------

def test_registry_and_module_surface():
    assert NAMES == ["parallel_r1", "parathinker", "threadweaver"]
    for name, mod in FORMATS.items():
        assert mod.NAME == name and get_format(name) is mod
        assert callable(mod.parse) and callable(mod.validate) and callable(mod.serialize)
    assert get_format("Parallel-R1") is parallel_r1
    assert parallel_r1.TAGS == PARALLEL_R1 and threadweaver.TAGS == THREADWEAVER and parathinker.TAGS == PARATHINKER
    with pytest.raises(ValueError, match="unknown parallel-thinking format 'multiverse'.*parallel_r1"):
        get_format("multiverse")


# ---- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", NAMES)
@FAST
@given(data=st.data())
def test_tree_serialize_parse_serialize(fmt, data):
    tree = data.draw(traces(fmt))
    text = get_format(fmt).serialize(tree)
    assert validate(fmt, text) == []
    back = parse(fmt, text)
    assert get_format(fmt).serialize(back) == text
    assert back.branch_texts() == tree.branch_texts()
    assert [b.head for b in back.blocks] == [b.head for b in tree.blocks]
    assert back.sequential_text() == tree.sequential_text()
    if fmt == "threadweaver":
        assert [b.join for b in back.blocks] == [b.join for b in tree.blocks]
        assert [br.outline for b in back.blocks for br in b.branches] == [
            br.outline if br.outline is not None else f"path {i + 1}"
            for b in tree.blocks for i, br in enumerate(b.branches)]
    else:
        assert [b.join for b in back.blocks] == [b.join or "" for b in tree.blocks]


@pytest.mark.parametrize("fmt", NAMES)
@FAST
@given(data=st.data())
def test_valid_text_round_trips_byte_for_byte(fmt, data):
    text = data.draw(MESSY[fmt])
    assert get_format(fmt).validate(text) == []
    trace = get_format(fmt).parse(text)
    assert get_format(fmt).serialize(trace) == text
    for br in (br for b in trace.blocks for br in b.branches):  # content is clean, layout is raw
        assert br.text == br.text.strip()
        assert text[br.span[0]:br.span[1]].count(br.text) >= 1


def test_parallel_r1_accepts_summary_with_and_without_newline():
    for sep in ("", "\n"):
        text = f"<Parallel><Path>a</Path><Path>b</Path></Parallel>{sep}<Summary>s</Summary>\nFinal Answer: 1"
        assert parallel_r1.serialize(parallel_r1.parse(text)) == text
    tree = parallel_r1.parse(text)
    tree.blocks[0].branches.reverse()  # edited content: layout reused where it still fits
    assert parallel_r1.serialize(tree) == text.replace("<Path>a</Path><Path>b</Path>", "<Path>b</Path><Path>a</Path>")


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


def test_parathinker_keeps_pads_out_of_content():
    text = "<think>\n<think1>a</think1><vllm_pad><vllm_pad>\n<think2>\nb\n</think2><vllm_pad><summary>s</summary>"
    trace = parathinker.parse(text)
    assert [b.text for b in trace.blocks[0].branches] == ["a", "b"]
    assert [b.label for b in trace.blocks[0].branches] == ["1", "2"]
    assert trace.segments[0] == Text("<think>\n")
    assert parathinker.serialize(trace) == text


# ---- conversions -------------------------------------------------------------------------------

def _fits_parathinker(tree: Trace) -> bool:
    if len(tree.blocks) != 1 or tree.blocks[0].head or len(tree.blocks[0].branches) > 8:
        return False
    first = tree.segments.index(tree.blocks[0])
    return all(not s.text.replace("<think>", "").replace("<vllm_pad>", "").strip() for s in tree.segments[:first])


@pytest.mark.parametrize("src", NAMES)
@pytest.mark.parametrize("dst", NAMES)
@FAST
@given(data=st.data())
def test_conversion_keeps_branches_joins_and_text(src, dst, data):
    tree = data.draw(traces(src))
    text = get_format(src).serialize(tree)
    if dst == "parathinker" and not _fits_parathinker(tree):
        with pytest.raises(FormatError):
            convert(text, src, dst)
        return
    out = convert(text, src, dst)
    back = parse(dst, out)
    assert Counter(back.branch_texts()) == Counter(tree.branch_texts())
    assert back.branch_texts() == tree.branch_texts()
    assert [b.join or "" for b in back.blocks] == [b.join or "" for b in tree.blocks]
    assert [b.head for b in back.blocks] == [b.head for b in tree.blocks]
    assert back.sequential_text() == tree.sequential_text()
    assert convert(out, dst, dst) == out
    if src == dst:
        assert out == text


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


def test_conversion_round_trip_through_threadweaver_outlines():
    r1 = ("Hi\n<Parallel><Path>one</Path><Path>two</Path><Path>three</Path></Parallel>\n<Summary>ok</Summary>"
          "\nFinal Answer: 3")
    tw = convert(r1, "parallel_r1", "threadweaver")
    assert [b.outline for b in threadweaver.parse(tw).blocks[0].branches] == ["path 1", "path 2", "path 3"]
    assert convert(tw, "threadweaver", "parallel_r1") == r1
    pt = convert(r1.replace("Hi\n", "<think>\n"), "parallel_r1", "parathinker")
    assert pt == ("<think>\n<think1>one</think1><think2>two</think2><think3>three</think3><summary>ok</summary>"
                  "\nFinal Answer: 3")


def test_serializer_refuses_content_holding_its_tags():
    tree = Trace([Block([Branch("a <Path> b"), Branch("c")], join="s")], "threadweaver")
    with pytest.raises(FormatError, match="branch 1 of block 1 contains the tag <Path>") as e:
        parallel_r1.serialize(tree)
    assert e.value.tag == "<Path>"
    with pytest.raises(FormatError, match="at least 2"):
        threadweaver.serialize(Trace([Block([Branch("a")])], "threadweaver"))
    with pytest.raises(FormatError, match="at most 8"):
        parathinker.serialize(Trace([Block([Branch(str(i)) for i in range(9)], join="")], "parathinker"))


# ---- malformed input ---------------------------------------------------------------------------

def _only(fmt: str, text: str, **kw) -> FormatError:
    errors = get_format(fmt).validate(text, **kw)
    assert errors, text
    with pytest.raises(FormatError) as raised:
        get_format(fmt).parse(text, **kw)
    assert raised.value.offset == errors[0].offset and str(raised.value) == str(errors[0])
    return errors[0]


def _loc(text: str, at) -> int:
    """An offset given as a number, or as (needle, n): the start of the n-th occurrence of needle (1-based)."""
    if isinstance(at, int):
        return at
    needle, nth = at
    pos = -1
    for _ in range(nth):
        pos = text.index(needle, pos + 1)
    return pos


def _check(err: FormatError, tag: str, offset: int, *words: str) -> None:
    assert err.tag == tag, err
    assert err.offset == offset, err
    msg = str(err)
    assert tag in msg and f"offset {offset}" in msg, msg
    for w in words:
        assert w in msg, msg


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
    _check(_only("parallel_r1", text), tag, _loc(text, at), *words)


def test_parallel_r1_nested_block_is_named():
    text = "<Parallel><Path>a<Parallel></Path><Path>b</Path></Parallel><Summary>s</Summary>" + FA
    (err,) = parallel_r1.validate(text)
    _check(err, "<Parallel>", 17, "nested <Parallel>", "do not nest")


def test_parallel_r1_final_answer_switch():
    body = "<Parallel>" + P2 + "</Parallel>\n<Summary>s</Summary>\nso it is 7"
    err = _only("parallel_r1", body)
    _check(err, "Final Answer:", body.rindex("\n") + 1, "must end with")
    assert parallel_r1.validate(body, require_final_answer=False) == []
    assert parallel_r1.validate(body + "\nfinal answer: 7\n") == []
    inside = "<Parallel>" + P2 + "</Parallel>\n<Summary>Final Answer: 7</Summary>"
    _check(_only("parallel_r1", inside), "Final Answer:", _loc(inside, ("<Summary>", 1)), "outside any block")


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
    _check(_only("threadweaver", text), tag, _loc(text, at), *words)


def test_threadweaver_duplicate_outline_numbers_are_dropped():
    text = ("<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>1: a again</Outline>\n</Outlines>\n"
            "<Thread>\n1: x\n</Thread><Thread>\n1: y\n</Thread>\n</Parallel>")
    _check(_only("threadweaver", text), "<Thread>", text.rindex("<Thread>"), "has no outline", "lists 1 outline")


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
    _check(_only("parathinker", text), tag, _loc(text, at), *words)


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


def test_metrics_threadweaver_counts_outlines_and_conclusion_as_block_text():
    text = ("go<Parallel>\n<Outlines>\n<Outline>1: aa</Outline>\n<Outline>2: bb</Outline>\n</Outlines>\n"
            "<Thread>\n1: q r s t\n</Thread><Thread>\n2: u\n</Thread>\n<Conclusion>\nvv\n</Conclusion>\n</Parallel>ok")
    m = text_metrics(text, "threadweaver")
    # block: 14 tags + "1: aa" (2) + "2: bb" (2) + "vv" (1); branches: "1: q r s t" (5), "2: u" (2)
    assert m.block_tokens == [14 + 5] and m.branch_tokens == [[5, 2]] and m.sequential_tokens == 2
    assert (m.total_tokens, m.critical_path_tokens) == (2 + 19 + 7, 2 + 19 + 5)


def test_metrics_with_character_counter_and_several_blocks():
    trace = Trace([Text("abc"), Block([Branch("1234"), Branch("12"), Branch("123456")], join="jj"), Text("d"),
                   Block([Branch("x"), Branch("yy")], join="")], "parathinker")
    trace = parallel_r1.parse(parallel_r1.serialize(trace), require_final_answer=False)
    m = trace_metrics(trace, len)
    tags1 = len("<Parallel><Path></Path><Path></Path><Path></Path></Parallel>\n<Summary></Summary>")
    tags2 = len("<Parallel><Path></Path><Path></Path></Parallel>\n<Summary></Summary>")
    assert m.block_tokens == [tags1 + 2, tags2]
    assert m.critical_path_tokens == 4 + tags1 + 2 + 6 + tags2 + 2
    assert m.total_tokens == len(parallel_r1.serialize(trace))
    assert m.widths == [3, 2] and m.blocks == 2
    empty = trace_metrics(Trace([Text("just text")], "threadweaver"))
    assert empty.total_tokens == empty.critical_path_tokens == 2 and empty.speedup == 1.0


@pytest.fixture(scope="module")
def tok(tiny_model):
    """The tiny model's tokenizer (tiny_model: conftest's session fixture, build_tiny_model in a temp dir)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_tags_are_single_tokens_in_tiny_tokenizer(tok):
    for tag in set(ALL_TAGS) | set(THINK):
        assert len(tok.encode(tag, add_special_tokens=False)) == 1, tag


@pytest.mark.parametrize("fmt", NAMES)
def test_metrics_with_tiny_tokenizer(fmt, tok):
    def count(s: str) -> int:
        return len(tok.encode(s, add_special_tokens=False))

    tree = Trace([Text("<think>\n")] if fmt == "parathinker" else [Text("Question: what is 3 + 4?\n")], fmt)
    tree.segments.append(Block([Branch("first compute 3 + 4 = 7"), Branch("so the total is 7, check"),
                                Branch("add")], join="The answer is 7."))
    tree.segments.append(Text("\nFinal Answer: 7"))
    text = get_format(fmt).serialize(tree)
    trace = parse(fmt, text)
    m = trace_metrics(trace, count)
    assert m.total_tokens == count(text)  # tags split the text exactly as the tokenizer splits it
    inner = [text[b.span[0]:b.span[1]] for b in trace.blocks[0].branches]
    opens = [s[:s.index(">") + 1] for s in inner]
    bodies = [s[len(o):s.rindex("</")] for s, o in zip(inner, opens)]
    assert m.branch_tokens == [[count(b) for b in bodies]]
    assert m.critical_path_tokens == m.total_tokens - sum(m.branch_tokens[0]) + max(m.branch_tokens[0])
    assert m.block_tokens[0] == count(text[trace.blocks[0].span[0]:trace.blocks[0].span[1]]) - sum(m.branch_tokens[0])


@pytest.mark.parametrize("fmt", NAMES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_tokenizer_metrics_on_random_traces(fmt, tok, data):
    def count(s: str) -> int:
        return len(tok.encode(s, add_special_tokens=False))

    text = get_format(fmt).serialize(data.draw(traces(fmt)))
    m = trace_metrics(parse(fmt, text), count)
    assert m.total_tokens == count(text)
    assert m.critical_path_tokens == m.total_tokens - sum(map(sum, m.branch_tokens)) + sum(
        max(b) for b in m.branch_tokens)
    assert m.critical_path_tokens <= m.total_tokens and m.speedup >= 1.0


def test_parsed_tree_equals_the_tree_it_came_from():
    tree = Trace([Text("a "), Block([Branch("x", outline="do x", label="1"), Branch("y", outline="do y", label="2")],
                                    head="plan", join="xy"), Text(" b")], "threadweaver")
    back = threadweaver.parse(threadweaver.serialize(tree))
    assert back == tree  # equality is on content; the layout kept in `raw` and `span` is ignored
    assert back.blocks[0].branches[0].span is not None and back.blocks[0].raw


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
