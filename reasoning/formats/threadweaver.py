"""ThreadWeaver: outlines, one thread per outline and an optional conclusion in a `<Parallel>` block.

Grammar (ThreadWeaver, "Adaptive Threading for Efficient Parallel Reasoning in Language Models",
arXiv 2512.07843: its fork-join trajectory format and its released inference controller):

    response := text (block text)*            (blocks optionally inside <think> .. </think>)
    block    := <Parallel> [head] <Outlines> (<Outline> N: desc </Outline>)* </Outlines>
                (<Thread> N: body </Thread>){k} [<Conclusion> join </Conclusion>] </Parallel>

- Outline numbers are read with the reference regex `\\s*([0-9]+(?:\\.[0-9]+)*)\\s*:` (hierarchical
  "1.2" allowed); a repeated number is dropped, as the reference orchestrator drops it. An outline
  without a number is an error (the orchestrator would silently fork no thread for it).
- Threads match the (distinct) outlines in order: there must be as many threads as outlines, at
  least 2, and thread i must start with its outline's number ("\\n{n}:" as the orchestrator writes).
  The number goes to `Branch.label`, the outline text to `Branch.outline`, the rest to the body.
- Only whitespace may stand between `</Outline>` and the next item, between `</Outlines>`,
  the threads, `<Conclusion>` and `</Parallel>`. Free text right after `<Parallel>` is the head.
- Blocks do not nest. The `<think>` wrapper is optional: at most one `<think>` and one `</think>`,
  in that order, no block after `</think>`, no wrapper tag inside a block. An unclosed `<think>` is
  accepted (a response cut at its budget). The capitalised `<Think>` tokens are plain text here.

Canonical layout written for trees from other formats, as the reference orchestrator writes it:

    <Parallel>\\n<Outlines>\\n<Outline>1: desc</Outline>\\n..</Outlines>\\n
    <Thread>\\n1: body\\n</Thread><Thread>\\n2: ..\\n</Thread>\\n[<Conclusion>\\njoin\\n</Conclusion>\\n]</Parallel>

Branches without labels are numbered 1..k; branches without outlines get "N: path N".
"""
from __future__ import annotations

import re

from reasoning.formats.tags import THREADWEAVER
from reasoning.formats.trace import (
    Block, Branch, ErrorList, FormatError, PieceWriter, Text, Trace, check_width, checked, first_nonblank, is_blank,
    ordinal, reuse, start_of,
)

NAME = "threadweaver"
TAGS = THREADWEAVER
TAG_RE = re.compile(r"</?(?:Parallel|Outlines|Outline|Thread|Conclusion|think)>")
_BLOCK_TAG_RE = re.compile(r"</?(?:Parallel|Outlines|Outline|Thread|Conclusion)>")
NUMBER_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)*)\s*:")
_LABEL_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_OUTLINE_ITEM_RE = re.compile(r"<Outline>(.*?)</Outline>", re.DOTALL)
STRUCTURE_ONLY: dict = {}

_CLOSES_FIRST = {"outline": ("</Outlines>",), "thread": ("</Parallel>", "<Conclusion>"), "concl": ("</Parallel>",)}
_EXPECTED = {
    "head": "<Outlines>", "outlines": "<Outline> or </Outlines>", "outline": "</Outline>",
    "threads": "<Thread>, <Conclusion> or </Parallel>", "thread": "</Thread>", "concl": "</Conclusion>",
    "closing": "</Parallel>",
}


def parse(text: str) -> Trace:
    """The trace tree of `text`; raises the first `FormatError` (by offset) when it is invalid."""
    return checked(_scan(text))


MODES = ("strict", "reference")


def validate(text: str, *, mode: str = "strict", skip_conclusion_check: bool = False,
             allow_whitespace_between_threads: bool = True) -> list[FormatError]:
    """Every problem with `text`, sorted by offset; empty when it is valid.

    mode="strict" (the default, for eval): this module's grammar, which follows the reference
    orchestrator. mode="reference": the authors' SFT data filter (`reference_problems`), stricter;
    data filters that regenerate the paper's training sets use it (ThreadWeaver, arXiv 2512.07843,
    §4 data). Its two switches are the filter's own; the defaults are what its pipeline passed.
    """
    if mode == "reference":
        return reference_problems(text, skip_conclusion_check, allow_whitespace_between_threads)
    if mode != "strict":
        raise ValueError(f"unknown validation mode {mode!r} for threadweaver; choose one of {', '.join(MODES)}")
    return _scan(text)[1]


_ANY_TAG = re.compile(r"<(/?)(\w+)>")
_NUMBERED = re.compile(r"\s*(\d+):\s*(.+)", re.DOTALL)
_REF_BLOCK = re.compile(r"<Parallel>(.*?)</Parallel>", re.DOTALL)


def reference_problems(text: str, skip_conclusion_check: bool = False,
                       allow_whitespace_between_threads: bool = True) -> list[FormatError]:
    """The reference data filter's verdict: one problem (its first reason) or none.

    Rules, as the authors' `is_parallel_format_correct_v2` applies them after writing `<Think>`
    as `<think>`: as many `<Parallel>` as `</Parallel>`; each non-greedy `<Parallel>..</Parallel>`
    holds no other `<Parallel>` and no tag but Outlines/Outline/Thread/Conclusion (any case);
    as many `<Outline>` as `<Thread>`, each tag pair balanced, at most 50 outlines, exactly one
    `<Conclusion>` (unless `skip_conclusion_check`); the block is, whitespace aside, exactly
    `<Outlines>..</Outlines>` then threads then `<Conclusion>..</Conclusion>`; outlines and
    threads hold no tag and read "N: something" (integers, numbered 1..k, non-empty); threads
    carry the outlines' numbers in order; with `allow_whitespace_between_threads=False` (the
    function's own default; its pipeline passed True) nothing may stand between `</Thread>` and
    `<Thread>`; the conclusion is non-empty and tag-free. Text outside blocks is not checked.
    """
    def bad(message: str, at: int, tag: str = "<Parallel>") -> list[FormatError]:
        return [FormatError(f"reference filter: {message}", at, tag, NAME)]

    norm = text.replace("<Think>", "<think>").replace("</Think>", "</think>")
    if norm.count("<Parallel>") != norm.count("</Parallel>"):
        return bad("unequal numbers of <Parallel> and </Parallel>", 0)
    for m in _REF_BLOCK.finditer(norm):
        block, at = m.group(1), m.start()
        if "<Parallel>" in block or "</Parallel>" in block:
            return bad("nested <Parallel>", at)
        for _, name in _ANY_TAG.findall(block):
            if name.lower() not in ("outlines", "outline", "thread", "conclusion"):
                return bad(f"a <{name}> tag inside the block", at)
        count = block.count
        if count("<Outline>") != count("<Thread>"):
            return bad("as many <Outline> as <Thread> are needed", at)
        for name in ("Outline", "Thread", "Conclusion"):
            if count(f"<{name}>") != count(f"</{name}>"):
                return bad(f"unbalanced <{name}> tags", at)
        conclusions = count("<Conclusion>")
        if not skip_conclusion_check and conclusions != 1:
            return bad(f"{conclusions} <Conclusion> (exactly one is needed)", at)
        if count("<Outline>") > 50:
            return bad("more than 50 outlines", at)
        tail = r"\s*<Conclusion>(?P<conclusion>.*?)</Conclusion>" if conclusions else ""
        layout = re.fullmatch(r"\s*<Outlines>(?P<outlines>.*?)</Outlines>\s*(?P<threads>(?:<Thread>.*?</Thread>)+)"
                              + tail + r"\s*", block, re.DOTALL)
        if layout is None:
            return bad("the block is not <Outlines>, then threads, then a conclusion", at)
        outlines = re.findall(r"<Outline>(.*?)</Outline>", layout.group("outlines"), re.DOTALL)
        if not outlines:
            return bad("no <Outline> inside <Outlines>", at, "<Outline>")
        numbers = []
        for item in outlines:
            found = None if _ANY_TAG.search(item) else _NUMBERED.fullmatch(item.strip())
            if found is None:
                return bad(f"an outline that is not 'N: description': {item.strip()[:40]!r}", at, "<Outline>")
            numbers.append(int(found.group(1)))
        if numbers != list(range(1, len(numbers) + 1)):
            return bad(f"outlines numbered {numbers}, not 1..{len(numbers)}", at, "<Outline>")
        threads = list(re.finditer(r"<Thread>(.*?)</Thread>", layout.group("threads"), re.DOTALL))
        if len(threads) != len(outlines):
            return bad(f"{len(threads)} threads for {len(outlines)} outlines", at, "<Thread>")
        labels = []
        for t in threads:
            found = None if _ANY_TAG.search(t.group(1)) else _NUMBERED.fullmatch(t.group(1).strip())
            if found is None:
                return bad(f"a thread that is not 'N: body': {t.group(1).strip()[:40]!r}", at, "<Thread>")
            labels.append(int(found.group(1)))
        if labels != numbers:
            return bad(f"threads numbered {labels}, outlines {numbers}", at, "<Thread>")
        if not allow_whitespace_between_threads:
            gaps = [layout.group("threads")[a.end():b.start()] for a, b in zip(threads, threads[1:])]
            if any(gaps):
                return bad("text or whitespace between </Thread> and <Thread>", at, "<Thread>")
        if not skip_conclusion_check:
            conclusion = layout.group("conclusion").strip()
            if not conclusion or _ANY_TAG.search(conclusion):
                return bad("an empty conclusion, or one holding tags", at, "<Conclusion>")
    return []


def serialize(trace: Trace) -> str:
    return pieces(trace).text()


def split_numbered(inner: str) -> tuple[str | None, str]:
    """("1.2", "rest stripped") for "\\n1.2: rest\\n"; (None, stripped) when there is no number."""
    m = NUMBER_RE.match(inner)
    if not m:
        return None, inner.strip()
    return m.group(1), inner[m.end():].strip()


def _outline_items(inner: str) -> list[tuple[str | None, str]]:
    """The distinct (number, outline) items of an <Outlines> section's inner text."""
    seen, items = set(), []
    for m in _OUTLINE_ITEM_RE.finditer(inner):
        label, desc = split_numbered(m.group(1))
        if label not in seen:
            seen.add(label)
            items.append((label, desc))
    return items


def _labels(block: Block) -> list[str]:
    labels = [b.label for b in block.branches]
    if all(lb is not None and _LABEL_RE.fullmatch(lb) for lb in labels) and len(set(labels)) == len(labels):
        return labels  # type: ignore[return-value]
    return [str(i + 1) for i in range(len(block.branches))]


def pieces(trace: Trace) -> PieceWriter:
    """The serialized trace as pieces (text / block / branch); `serialize` joins them."""
    w = PieceWriter(NAME, TAG_RE)
    own = trace.format == NAME
    bi = -1
    for seg in trace.segments:
        if isinstance(seg, Text):
            w.check(seg.text, "a text segment", start_of(seg), pattern=_BLOCK_TAG_RE)
            w.add(seg.text, "text")
            continue
        bi += 1
        check_width(seg, bi, NAME, "<Parallel>")
        raw = seg.raw if own else {}
        k = len(seg.branches)
        labels = _labels(seg)
        outlines = [(lb, b.outline if b.outline is not None else f"path {lb}") for lb, b in zip(labels, seg.branches)]
        w.check(seg.head, f"the head of block {bi + 1}", start_of(seg))
        w.add("<Parallel>", "block", bi)
        head = raw.get("head")
        w.add(reuse(head, head is not None and head.strip() == seg.head, f"\n{seg.head}\n" if seg.head else "\n"),
              "block", bi)
        w.add("<Outlines>", "block", bi)
        for i, (_, desc) in enumerate(outlines):
            w.check(desc, f"the outline of branch {i + 1} of block {bi + 1}", start_of(seg.branches[i]))
        section = raw.get("outlines")
        canonical = "\n" + "".join(f"<Outline>{lb}: {d}</Outline>\n" if d else f"<Outline>{lb}:</Outline>\n"
                                   for lb, d in outlines)
        w.add(reuse(section, section is not None and _outline_items(section) == outlines, canonical), "block", bi)
        w.add("</Outlines>", "block", bi)
        w.add(raw.get("mid", "\n"), "block", bi)
        seps = raw.get("seps")
        if seps is None or len(seps) != k - 1:
            seps = [""] * (k - 1)
        for i, (br, lb) in enumerate(zip(seg.branches, labels)):
            if i:
                w.add(seps[i - 1], "block", bi)
            w.check(br.text, f"branch {i + 1} of block {bi + 1}", start_of(br))
            w.add("<Thread>", "block", bi)
            body = br.raw if own else None
            default = f"\n{lb}: {br.text}\n" if br.text else f"\n{lb}:\n"
            w.add(reuse(body, body is not None and split_numbered(body) == (lb, br.text), default), "branch", bi, i)
            w.add("</Thread>", "block", bi)
        w.add(raw.get("tail", "\n"), "block", bi)
        if seg.join is not None:
            w.check(seg.join, f"the conclusion of block {bi + 1}", start_of(seg))
            w.add("<Conclusion>", "block", bi)
            jraw = raw.get("join")
            w.add(reuse(jraw, jraw is not None and jraw.strip() == seg.join, f"\n{seg.join}\n" if seg.join else "\n"),
                  "block", bi)
            w.add("</Conclusion>", "block", bi)
            w.add(raw.get("post_join", "\n"), "block", bi)
        w.add("</Parallel>", "block", bi)
    return w


def _scan(text: str) -> tuple[Trace | None, list[FormatError]]:
    err = ErrorList(NAME, text)
    at = err.at
    segments: list = []
    state = "out"
    seg_start = 0
    region = 0
    think_open: int | None = None
    think_close: int | None = None
    blk: dict = {}

    def bad(tag: str, s: int) -> None:
        opened = f"the <Parallel> block opened at {at(blk['open'])}"
        if tag == "<Parallel>":
            err.add(f"nested <Parallel> at {at(s)} inside {opened}: blocks do not nest", s, tag)
        elif tag in ("<think>", "</think>"):
            err.add(f"{tag} at {at(s)} is inside {opened}: the <think> wrapper goes around blocks", s, tag)
        else:
            inner = {"outline": ("<Outline>", "item_open"), "thread": ("<Thread>", "thread_open"),
                     "concl": ("<Conclusion>", "concl_open"), "outlines": ("<Outlines>", "outlines_open")}.get(state)
            where_ = f"inside {inner[0]} opened at {at(blk[inner[1]])}" if inner else f"in {opened}"
            err.add(f"unexpected {tag} at {at(s)} {where_}: expected {_EXPECTED[state]}", s, tag)

    def blank_or_error(s: int, what: str, tag: str) -> str:
        chunk = text[region:s]
        if not is_blank(chunk):
            off = first_nonblank(text, region, s)
            err.add(f"text at {at(off)} {what}: only whitespace may stand there", off, tag)
        return chunk

    def close_block(s: int, e: int) -> None:
        n, m = len(blk["branches"]), len(blk["outlines"])
        if blk["has_outlines"] and n < m:
            err.add(f"</Parallel> at {at(s)} closes the block opened at {at(blk['open'])} after {n} <Thread>"
                    f"{'s' if n != 1 else ''} but its <Outlines> lists {m} outlines: one <Thread> per outline",
                    s, "</Parallel>")
        elif n < 2 and (not blk["has_outlines"] or n == m):
            err.add(f"<Parallel> block opened at {at(blk['open'])} has {n} <Thread>{'s' if n != 1 else ''}; "
                    f"a block needs at least 2 threads", blk["open"], "<Parallel>")
        raw = blk["raw"]
        join = raw.get("join")
        segments.append(Block(blk["branches"], head=raw.get("head", "").strip(),
                              join=None if join is None else join.strip(), span=(blk["open"], e), raw=raw))

    tags = [(m.group(), m.start(), m.end()) for m in TAG_RE.finditer(text)]
    i = 0
    while i < len(tags):
        tag, s, e = tags[i]
        i += 1
        if state in ("outline", "thread", "concl") and tag in _CLOSES_FIRST[state]:
            # the enclosing tag closes before this one: report it, close it here, read the tag again
            opener, key = {"outline": ("<Outline>", "item_open"), "thread": ("<Thread>", "thread_open"),
                           "concl": ("<Conclusion>", "concl_open")}[state]
            err.add(f"unclosed {opener} opened at {at(blk[key])}: {tag} at {at(s)} comes before its "
                    f"{opener.replace('<', '</')}", blk[key], opener)
            if state == "thread":
                blk["branches"].append(Branch(text[region:s].strip(), span=(blk["thread_open"], s)))
            state = {"outline": "outlines", "thread": "threads", "concl": "closing"}[state]
            region = s
            i -= 1
            continue
        if state == "out":
            if tag == "<Parallel>":
                if think_close is not None:
                    err.add(f"<Parallel> at {at(s)} comes after </think> at {at(think_close)}: blocks belong "
                            f"inside the reasoning", s, tag)
                if s > seg_start:
                    segments.append(Text(text[seg_start:s], span=(seg_start, s)))
                blk = {"open": s, "branches": [], "outlines": [], "labels": set(), "has_outlines": False,
                       "raw": {"seps": []}}
                state, region = "head", e
            elif tag == "<think>":
                if think_open is not None:
                    err.add(f"second <think> at {at(s)} (the first is at {at(think_open)})", s, tag)
                elif think_close is not None:
                    err.add(f"<think> at {at(s)} comes after </think> at {at(think_close)}", s, tag)
                else:
                    think_open = s
            elif tag == "</think>":
                if think_close is not None:
                    err.add(f"second </think> at {at(s)} (the first is at {at(think_close)})", s, tag)
                else:
                    think_close = s
            elif tag.startswith("</"):
                err.add(f"unexpected {tag} at {at(s)}: no {tag.replace('/', '')} is open", s, tag)
            else:
                err.add(f"{tag} at {at(s)} is outside any <Parallel> block", s, tag)
        elif state == "head":
            if tag in ("<Outlines>", "<Thread>", "</Parallel>"):
                blk["raw"]["head"] = text[region:s]
            if tag == "<Outlines>":
                blk["has_outlines"] = True
                blk["outlines_open"] = s
                state, region = "outlines", e
                blk["outlines_inner"] = e
            elif tag == "<Thread>":
                err.add(f"<Thread> at {at(s)} comes before any <Outlines> in the block opened at "
                        f"{at(blk['open'])}: ThreadWeaver lists the outlines first", s, tag)
                blk["thread_open"] = s
                state, region = "thread", e
            elif tag == "</Parallel>":
                close_block(s, e)
                state, seg_start = "out", e
            else:
                bad(tag, s)
        elif state == "outlines":
            if tag in ("<Outline>", "</Outlines>"):
                blank_or_error(s, f"inside <Outlines> opened at {at(blk['outlines_open'])} is not an <Outline> item;",
                               "<Outlines>")
            if tag == "<Outline>":
                blk["item_open"] = s
                state, region = "outline", e
            elif tag == "</Outlines>":
                blk["raw"]["outlines"] = text[blk["outlines_inner"]:s]
                state, region = "threads", e
            else:
                bad(tag, s)
        elif state == "outline":
            if tag == "</Outline>":
                label, desc = split_numbered(text[region:s])
                if label is None:
                    err.add(f"<Outline> at {at(blk['item_open'])} does not start with a number 'N:' (ThreadWeaver "
                            f"forks one thread per numbered outline)", blk["item_open"], "<Outline>")
                elif label not in blk["labels"]:
                    blk["labels"].add(label)
                    blk["outlines"].append((label, desc))
                state, region = "outlines", e
            else:
                bad(tag, s)
        elif state == "threads":
            n = len(blk["branches"])
            if tag in ("<Thread>", "<Conclusion>", "</Parallel>"):
                chunk = blank_or_error(s, f"stands between the <Thread>s of the block opened at {at(blk['open'])}",
                                       "<Thread>")
                if n == 0:
                    blk["raw"]["mid"] = chunk
                elif tag == "<Thread>":
                    blk["raw"]["seps"].append(chunk)
                else:
                    blk["raw"]["tail"] = chunk
            if tag == "<Thread>":
                m = len(blk["outlines"])
                if blk["has_outlines"] and n >= m:
                    err.add(f"<Thread> at {at(s)} has no outline: the <Outlines> at {at(blk['outlines_open'])} "
                            f"lists {m} outline{'s' if m != 1 else ''} and this is thread {n + 1}", s, tag)
                blk["thread_open"] = s
                state, region = "thread", e
            elif tag == "<Conclusion>":
                blk["concl_open"] = s
                state, region = "concl", e
            elif tag == "</Parallel>":
                close_block(s, e)
                state, seg_start = "out", e
            else:
                bad(tag, s)
        elif state == "thread":
            if tag == "</Thread>":
                inner = text[region:s]
                label, body = split_numbered(inner)
                n = len(blk["branches"])
                outline = None
                if blk["has_outlines"] and n < len(blk["outlines"]):
                    want, outline = blk["outlines"][n]
                    if label is None:
                        err.add(f"<Thread> at {at(blk['thread_open'])} does not start with its outline number "
                                f"'{want}:'", blk["thread_open"], "<Thread>")
                    elif label != want:
                        err.add(f"<Thread> at {at(blk['thread_open'])} is numbered '{label}' but its outline (the "
                                f"{ordinal(n + 1)}) is numbered '{want}'", blk["thread_open"], "<Thread>")
                blk["branches"].append(Branch(body, outline=outline, label=label, span=(blk["thread_open"], e),
                                              raw=inner))
                state, region = "threads", e
            else:
                bad(tag, s)
        elif state == "concl":
            if tag == "</Conclusion>":
                blk["raw"]["join"] = text[region:s]
                state, region = "closing", e
            else:
                bad(tag, s)
        elif state == "closing":
            if tag == "</Parallel>":
                blk["raw"]["post_join"] = blank_or_error(s, "stands between </Conclusion> and </Parallel>",
                                                         "</Conclusion>")
                close_block(s, e)
                state, seg_start = "out", e
            else:
                bad(tag, s)

    if state == "out":
        if len(text) > seg_start:
            segments.append(Text(text[seg_start:], span=(seg_start, len(text))))
    else:
        inner = {"outlines": ("<Outlines>", "outlines_open"), "outline": ("<Outline>", "item_open"),
                 "thread": ("<Thread>", "thread_open"), "concl": ("<Conclusion>", "concl_open")}.get(state)
        if inner:
            err.add(f"unclosed {inner[0]} opened at {at(blk[inner[1]])}", blk[inner[1]], inner[0])
        err.add(f"unclosed <Parallel> opened at {at(blk['open'])}", blk["open"], "<Parallel>")
    errors = err.sorted()
    return (None if errors else Trace(segments, NAME)), errors
