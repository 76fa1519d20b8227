"""Parallel-thinking formats, all of them: the registry, property round trips, conversions, token metrics.

Each format's own cases are in tests/test_formats_<format>.py.
"""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoning.formats import (
    FORMATS, Block, Branch, FormatError, Text, Trace, convert, get_format, parallel_r1, parathinker, threadweaver,
    trace_metrics,
)
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


# ---- round trips -------------------------------------------------------------------------------

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


# ---- metrics -----------------------------------------------------------------------------------

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
