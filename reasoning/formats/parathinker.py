"""ParaThinker: `<think1>..</think1>` .. `<thinkP>..</thinkP>` then `<summary>..</summary>`.

Grammar (ParaThinker, "Native Parallel Thinking as a New Paradigm to Scale LLM Test-time Compute",
arXiv 2509.04475: its control tokens, sequence layout and released inference engine):

    response := [<think>] <think1> body </think1> .. <thinkP> body </thinkP> <summary> join </summary> [text]

- One block per response, at its start: before `<think1>` only whitespace, `<vllm_pad>` and one
  optional `<think>` (the assistant prefix) may stand. 2 <= P <= 8 paths numbered 1, 2, .. in order.
- Between `</thinkN>` and the next tag only whitespace and `<vllm_pad>` (the engine pads every path
  to whole KV blocks); these stay in the layout, not in the bodies.
- Text after `</summary>` is kept as a trailing text segment; it may hold no ParaThinker tag.
- First-Finish (`validate(text, first_finish=True)`, and always in `mode="reference"`): the
  reference engine stops every path when the first one finishes, so a path may end with no end
  tag where the next path's opener, a `<vllm_pad>` or `<summary>` starts. Such paths are listed
  in the block's `raw["cut"]` (branch indices) and serialize back without their end tag; a tree
  converted from another format has none. `mode="reference"` also reads a `<think1>` or `<think>`
  inside a path as text (the engine rewrites stray path/summary tokens to `<think1>`).

Canonical layout written for trees from other formats: tags back to back,
`<think1>body</think1><think2>body</think2><summary>join</summary>`, bodies as they are.
A tree this format cannot hold raises `FormatError` on serialize (no silent merging): more or
fewer than one block, text other than `<think>`/whitespace before the block, a block head, more
than 8 branches. Outlines and labels are not written (paths are numbered by position).
"""
from __future__ import annotations

import re

from reasoning.formats.tags import PARATHINKER
from reasoning.formats.trace import (
    Block, Branch, ErrorList, FormatError, PieceWriter, Text, Trace, check_width, checked, is_blank, reuse, start_of,
)

NAME = "parathinker"
TAGS = PARATHINKER
MAX_PATHS = 8
TAG_RE = re.compile(r"</?think[0-9]*>|</?summary>|<vllm_pad>")
_PATH_RE = re.compile(r"<think([0-9]+)>")
_PRE_TAGS_RE = re.compile(r"<think>|<vllm_pad>")
# Structure only: a path cut by First-Finish (no end tag) still parses, so metrics read such traces.
STRUCTURE_ONLY: dict = {"first_finish": True}


MODES = ("strict", "reference")


def parse(text: str, *, mode: str = "strict", first_finish: bool = False) -> Trace:
    """The trace tree of `text`; raises the first `FormatError` (by offset) when it is invalid."""
    return checked(_scan(text, _mode(mode), first_finish))


def validate(text: str, *, mode: str = "strict", first_finish: bool = False) -> list[FormatError]:
    """Every problem with `text`, sorted by offset; empty when it is valid.

    mode="strict" (the default, for eval and for SFT data): the grammar above; with
    `first_finish=True` (a trace decoded with First-Finish) a path may also end, with no end tag,
    where the next path's opener or `<summary>` starts: the reference engine cuts every path
    but the first finished one there (ParaThinker, arXiv 2509.04475, §3.3 inference).
    mode="reference": what the reference engine writes, for rewards and data filters that must
    accept its outputs: cut paths as above, and a `<think1>` or `<think>` inside a path is text
    (the engine rewrites a stray `<think_j>`/`<summary>` sampled inside a path to `<think1>`).
    """
    return _scan(text, _mode(mode), first_finish)[1]


def _mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown validation mode {mode!r} for parathinker; choose one of {', '.join(MODES)}")
    return mode


def serialize(trace: Trace) -> str:
    return pieces(trace).text()


def pieces(trace: Trace) -> PieceWriter:
    """The serialized trace as pieces (text / block / branch); `serialize` joins them."""
    w = PieceWriter(NAME, TAG_RE)
    own = trace.format == NAME
    blocks = trace.blocks
    if len(blocks) != 1:
        where_ = f" (the second starts at offset {start_of(blocks[1])} of its source)" if len(blocks) > 1 else ""
        raise FormatError(f"ParaThinker holds exactly one parallel block per response; this trace has "
                          f"{len(blocks)}{where_}", start_of(blocks[1]) if len(blocks) > 1 else -1, "<think1>", NAME)
    before = True
    thinks = 0
    for seg in trace.segments:
        if isinstance(seg, Text):
            if before:
                thinks += seg.text.count("<think>")
                rest = _PRE_TAGS_RE.sub("", seg.text)
                if not is_blank(rest) or thinks > 1:
                    shown = seg.text if len(seg.text) <= 40 else seg.text[:37] + "..."
                    raise FormatError(f"ParaThinker allows only an optional <think> and whitespace before its paths; "
                                      f"the trace has text before its block: {shown!r}", start_of(seg), "<think1>",
                                      NAME)
            else:
                w.check(seg.text, "the text after the summary", start_of(seg))
            w.add(seg.text, "text")
            continue
        before = False
        check_width(seg, 0, NAME, "<think1>", MAX_PATHS)
        if seg.head:
            raise FormatError(f"the block has head text {seg.head[:40]!r} before its first branch; ParaThinker has "
                              f"no place for it", start_of(seg), "<think1>", NAME)
        raw = seg.raw if own else {}
        k = len(seg.branches)
        seps = raw.get("seps")
        if seps is None or len(seps) != k - 1:
            seps = [""] * (k - 1)
        cut = set(raw.get("cut", ()))  # paths First-Finish stopped: no end tag, as the reference engine leaves them
        for i, br in enumerate(seg.branches):
            if i:
                w.add(seps[i - 1], "block", 0)
            body = br.raw if own else None
            kept = body is not None and body.strip() == br.text
            if not (kept and raw.get("mode") == "reference"):  # reference text may hold a stray <think1>
                w.check(br.text, f"branch {i + 1}", start_of(br))
            w.add(f"<think{i + 1}>", "block", 0)
            w.add(reuse(body, kept, br.text), "branch", 0, i)
            if i not in cut:
                w.add(f"</think{i + 1}>", "block", 0)
        w.add(raw.get("tail", ""), "block", 0)
        join = seg.join or ""
        w.check(join, "the summary", start_of(seg))
        w.add("<summary>", "block", 0)
        jraw = raw.get("join")
        w.add(reuse(jraw, jraw is not None and jraw.strip() == join, join), "block", 0)
        w.add("</summary>", "block", 0)
    return w


def _first_content(text: str, start: int, end: int) -> int:
    """Offset of the first character in text[start:end] that is neither whitespace nor a <think>/<vllm_pad>."""
    pos = start
    while pos < end:
        m = _PRE_TAGS_RE.match(text, pos)
        if m and m.end() <= end:
            pos = m.end()
        elif text[pos].isspace():
            pos += 1
        else:
            return pos
    return end


def _scan(text: str, mode: str = "strict", first_finish: bool = False) -> tuple[Trace | None, list[FormatError]]:
    err = ErrorList(NAME, text)
    reference = mode == "reference"
    may_cut = first_finish or reference  # a path may end where the next path or the summary opens
    at = err.at
    segments: list = []
    state = "pre"
    think_at: int | None = None
    region = 0          # start of the text since the last structural tag
    seg_start = 0
    blk: dict = {}

    def sep_chunk(s: int, after: str) -> str:
        chunk = text[region:s]
        if not is_blank(_PRE_TAGS_RE.sub("", chunk)):
            off = _first_content(text, region, s)
            err.add(f"text at {at(off)} stands between {after} and the next tag: only whitespace and <vllm_pad> "
                    f"may stand there", off, after)
        return chunk

    def start_path(tag: str, num: int, s: int, e: int) -> None:
        nonlocal state, region
        want = len(blk["branches"]) + 1
        if num > MAX_PATHS:
            err.add(f"{tag} at {at(s)}: ParaThinker allows at most {MAX_PATHS} paths (<think1> .. "
                    f"<think{MAX_PATHS}>)", s, tag)
        elif tag != f"<think{want}>":
            err.add(f"{tag} at {at(s)} is out of order: expected <think{want}>", s, tag)
        blk["cur"], blk["path_open"] = num, s
        state, region = "path", e

    def cut_path(s: int) -> None:
        """The open path ends at `s` with no end tag (First-Finish stopped it there)."""
        nonlocal state, region
        cur, body = blk["cur"], text[region:s]
        blk["raw"]["cut"].append(len(blk["branches"]))
        blk["branches"].append(Branch(body.strip(), label=str(cur), span=(blk["path_open"], s), raw=body))
        blk["close"], blk["close_tag"] = s, f"<think{cur}> (cut)"
        state, region = "between", s

    tags = [(m.group(), m.start(), m.end()) for m in TAG_RE.finditer(text)]
    i = 0
    while i < len(tags):
        tag, s, e = tags[i]
        i += 1
        pm = _PATH_RE.fullmatch(tag)
        if state == "pre":
            if tag == "<think>":
                if think_at is not None:
                    err.add(f"second <think> at {at(s)} (the first is at {at(think_at)})", s, tag)
                think_at = s
            elif tag == "<vllm_pad>":
                pass
            elif pm:
                off = _first_content(text, 0, s)
                if off < s:
                    err.add(f"text at {at(off)} comes before the first path: ParaThinker allows only an optional "
                            f"<think> before <think1>", off, "<think1>")
                if s > 0:
                    segments.append(Text(text[:s], span=(0, s)))
                blk = {"open": s, "branches": [], "raw": {"seps": [], "cut": [], "mode": mode}}
                start_path(tag, int(pm.group(1)), s, e)
            elif tag == "<summary>":
                err.add(f"<summary> at {at(s)} comes before any path: the paths (<think1> ..) come first", s, tag)
            else:
                err.add(f"unexpected {tag} at {at(s)} before the first path <think1>", s, tag)
        elif state == "path":
            cur, opened = blk["cur"], blk["path_open"]
            if reference and tag in ("<think1>", "<think>"):
                continue  # the reference engine's stray-token rewrite (or a sampled <think>): text of the path
            if may_cut and (pm or tag in ("<summary>", "<vllm_pad>")):  # a pad: the cut path's block padding
                cut_path(s)
                i -= 1  # read the tag again, after the cut path
                continue
            if tag.startswith("</think") and tag != "</think>":
                if tag != f"</think{cur}>":
                    err.add(f"{tag} at {at(s)} does not close <think{cur}> opened at {at(opened)}", s, tag)
                body = text[region:s]
                blk["branches"].append(Branch(body.strip(), label=str(cur), span=(opened, e), raw=body))
                blk["close"] = s
                blk["close_tag"] = tag
                state, region = "between", e
            elif tag == "<summary>":
                err.add(f"unclosed <think{cur}> opened at {at(opened)}: <summary> at {at(s)} comes before its "
                        f"</think{cur}>", opened, f"<think{cur}>")
                blk["branches"].append(Branch(text[region:s].strip(), label=str(cur), span=(opened, s)))
                blk["close"], blk["close_tag"] = s, f"</think{cur}>"
                state, region = "between", s
                i -= 1  # read <summary> again, after the path
            elif pm:
                err.add(f"nested {tag} at {at(s)} inside <think{cur}> opened at {at(opened)}: paths do not nest "
                        f"(close <think{cur}> first)", s, tag)
                blk["branches"].append(Branch(text[region:s].strip(), label=str(cur), span=(opened, s)))
                start_path(tag, int(pm.group(1)), s, e)  # read on as if <think{cur}> had closed here
            else:
                err.add(f"{tag} at {at(s)} is inside <think{cur}> opened at {at(opened)}", s, tag)
        elif state == "between":
            if tag == "<vllm_pad>":
                continue
            if pm or tag == "<summary>":
                chunk = sep_chunk(s, blk["close_tag"])
                if pm:
                    blk["raw"]["seps"].append(chunk)
                    start_path(tag, int(pm.group(1)), s, e)
                else:
                    blk["raw"]["tail"] = chunk
                    n = len(blk["branches"])
                    if n < 2:
                        err.add(f"the paths starting at {at(blk['open'])} number {n}; ParaThinker needs at least 2 "
                                f"(<think1>, <think2>, ..) before <summary>", blk["open"], "<think1>")
                    blk["summary_open"] = s
                    state, region = "summary", e
            elif tag.startswith("</"):
                err.add(f"unexpected {tag} at {at(s)}: no {tag.replace('/', '')} is open", s, tag)
            else:
                err.add(f"unexpected {tag} at {at(s)} after {blk['close_tag']} at {at(blk['close'])}: expected the "
                        f"next path or <summary>", s, tag)
        elif state == "summary":
            if tag == "</summary>":
                join = text[region:s]
                blk["raw"]["join"] = join
                segments.append(Block(blk["branches"], join=join.strip(), span=(blk["open"], e), raw=blk["raw"]))
                state, seg_start, blk["summary_close"] = "post", e, s
            else:
                err.add(f"{tag} at {at(s)} is inside <summary> opened at {at(blk['summary_open'])}", s, tag)
        else:  # post
            if pm:
                err.add(f"{tag} at {at(s)} starts a second parallel block after the summary closed at "
                        f"{at(blk['summary_close'])}: ParaThinker holds one block per response", s, tag)
            elif tag == "<summary>":
                err.add(f"second <summary> at {at(s)} (the first closed at {at(blk['summary_close'])})", s, tag)
            else:
                err.add(f"unexpected {tag} at {at(s)} after the summary closed at {at(blk['summary_close'])}", s, tag)

    end = len(text)
    if state == "pre":
        off = _first_content(text, 0, end)
        err.add(f"no paths: a ParaThinker response starts (after an optional <think>) with <think1>; none at "
                f"{at(off)}", off, "<think1>")
    elif state == "path":
        err.add(f"unclosed <think{blk['cur']}> opened at {at(blk['path_open'])}", blk["path_open"],
                f"<think{blk['cur']}>")
    elif state == "between":
        err.add(f"missing <summary>: the paths end with {blk['close_tag']} at {at(blk['close'])} and no <summary> "
                f"follows", blk["close"], "<summary>")
    elif state == "summary":
        err.add(f"unclosed <summary> opened at {at(blk['summary_open'])}", blk["summary_open"], "<summary>")
    elif end > seg_start:
        segments.append(Text(text[seg_start:], span=(seg_start, end)))
    errors = err.sorted()
    return (None if errors else Trace(segments, NAME)), errors
