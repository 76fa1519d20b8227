"""Parallel-R1: `<Parallel><Path>..</Path>..</Parallel>` then `<Summary>..</Summary>`.

Grammar (Parallel-R1, "Towards Parallel Thinking via Reinforcement Learning", arXiv 2509.07980;
stricter than the reference checker where the tree
needs it):

    response := text (block text)*  [a last line "Final Answer: ..." when required]
    block    := <Parallel> [head] (<Path> body </Path>){k >= 2} </Parallel> <Summary> join </Summary>

- Blocks do not nest; `<Path>` and `<Summary>` appear only in their places; every tag closes.
- Only whitespace may stand between `</Path>` and the next `<Path>` / `</Parallel>`, and between
  `</Parallel>` and `<Summary>` (the reference runtime writes "</Parallel>\\n<Summary>"; with or
  without the newline is valid). Free text right after `<Parallel>` is the block's `head`.
- `require_final_answer=True` (default): the response must end with a line `Final Answer: <answer>`
  outside any block (the reference verifier reads it from the last 300 characters).

Canonical layout written for trees from other formats: tags back to back as the reference
runtime writes them (`<Parallel><Path>..</Path><Path>..</Path></Parallel>\\n<Summary>..</Summary>`),
bodies as they are, a head on its own lines. A block without a join gets an empty summary.
"""
from __future__ import annotations

import re

from reasoning.formats.tags import PARALLEL_R1
from reasoning.formats.trace import (
    Block, Branch, ErrorList, FormatError, PieceWriter, Text, Trace, check_width, checked, first_nonblank, is_blank,
    reuse, start_of,
)

NAME = "parallel_r1"
TAGS = PARALLEL_R1
TAG_RE = re.compile(r"</?(?:Parallel|Path|Summary)>")
STRUCTURE_ONLY: dict = {"require_final_answer": False}
_FINAL_ANSWER_RE = re.compile(r"\s*final answer\s*:\s*\S", re.IGNORECASE)


def parse(text: str, *, require_final_answer: bool = True) -> Trace:
    """The trace tree of `text`; raises the first `FormatError` (by offset) when it is invalid."""
    return checked(_scan(text, require_final_answer))


MODES = ("strict", "reference")


def validate(text: str, *, require_final_answer: bool = True, mode: str = "strict") -> list[FormatError]:
    """Every problem with `text`, sorted by offset; empty when it is valid.

    mode="strict" (the default; eval's format problems and clean SFT data): this module's grammar.
    mode="reference": the Parallel-R1 authors' format check, which only reads the sequence of tags
    (`reference_problems`); rewards and data filters that reproduce the paper's training use it
    (a strict check would turn the reference's +1.2 rewards into -1). `require_final_answer` is
    strict-only; pass False when the prompt asks for `\\boxed{}` instead of a "Final Answer:" line.
    """
    if mode == "reference":
        return reference_problems(text)
    if mode != "strict":
        raise ValueError(f"unknown validation mode {mode!r}; choose one of {', '.join(MODES)}")
    return _scan(text, require_final_answer)[1]


def reference_problems(text: str) -> list[FormatError]:
    """The Parallel-R1 reference format check, rule for rule: what its RL reward's format term reads.

    The authors' checker (Parallel-R1, arXiv 2509.07980, §3 reward design; its
    `check_parallel_thinking_format`) scans only the sequence of `<Parallel>`, `<Path>`,
    `<Summary>` tags and their closers, with one stack:
      - `<Parallel>` opens a block with a path count of 0 and clears any pending summary;
      - `<Path>` is pushed; `</Path>` must close the innermost open `<Path>` and then adds one to
        the innermost open block's count (whatever stands between them);
      - `</Parallel>` must close the innermost open `<Parallel>` (so no `<Path>` stays open in
        it), whose count must be at least 2; a summary is then pending;
      - `<Summary>` must come while a summary is pending (any tag but `<Parallel>` or another
        `<Summary>` may stand between, text always may); `</Summary>` is not checked at all;
      - at the end: nothing open, no summary pending, and as many `<Summary>` as `</Parallel>`
        strings in the text (matched or not).
    A wrong tag is reported and the scan goes on, as there. So, unlike `mode="strict"`, this
    accepts: text between `</Path>` and `<Path>` or between `</Parallel>` and `<Summary>`; nested
    blocks; `<Path>` outside any block; an unclosed `<Summary>` (what the reference runtime leaves
    when the length cap ends a decode right after `</Parallel>\\n<Summary>`); no, or a misplaced,
    "Final Answer:" line; text after the last summary.
    """
    problems: list[FormatError] = []
    stack: list[str] = []  # open "<Parallel>" / "<Path>", innermost last
    counts: list[int] = []  # paths closed so far in each open block, innermost last
    pending = False  # a </Parallel> waits for its <Summary>
    summaries = 0
    for m in TAG_RE.finditer(text):
        tag, at = m.group(), m.start()
        if tag == "<Parallel>":
            stack.append(tag)
            counts.append(0)
            pending = False
        elif tag == "<Path>":
            stack.append(tag)
        elif tag == "</Path>":
            if not stack or stack[-1] != "<Path>":
                problems.append(FormatError("</Path> does not close an open <Path>", at, tag, NAME))
            else:
                stack.pop()
                if counts:
                    counts[-1] += 1
        elif tag == "</Parallel>":
            if not stack or stack[-1] != "<Parallel>":
                problems.append(FormatError("</Parallel> does not close an open <Parallel> (a <Path> is still "
                                            "open, or no block is)", at, tag, NAME))
            else:
                stack.pop()
                paths = counts.pop()
                if paths < 2:
                    problems.append(FormatError(f"the block closed here has {paths} path(s); at least 2 are needed",
                                                at, tag, NAME))
                pending = True
        elif tag == "<Summary>":
            if not pending:
                problems.append(FormatError("<Summary> does not follow a </Parallel>", at, tag, NAME))
            pending = False
            summaries += 1
    end = len(text)
    if stack:
        problems.append(FormatError(f"still open at the end: {', '.join(stack)}", end, stack[-1], NAME))
    if pending:
        problems.append(FormatError("the last </Parallel> has no <Summary> after it", end, "<Summary>", NAME))
    closes = text.count("</Parallel>")
    if summaries != closes:
        problems.append(FormatError(f"{summaries} <Summary> for {closes} </Parallel>", end, "<Summary>", NAME))
    return problems


def serialize(trace: Trace) -> str:
    return pieces(trace).text()


def pieces(trace: Trace) -> PieceWriter:
    """The serialized trace as pieces (text / block / branch); `serialize` joins them."""
    w = PieceWriter(NAME, TAG_RE)
    own = trace.format == NAME
    bi = -1
    for seg in trace.segments:
        if isinstance(seg, Text):
            w.check(seg.text, "a text segment", start_of(seg))
            w.add(seg.text, "text")
            continue
        bi += 1
        check_width(seg, bi, NAME, "<Parallel>")
        raw = seg.raw if own else {}
        k = len(seg.branches)
        w.check(seg.head, f"the head of block {bi + 1}", start_of(seg))
        w.add("<Parallel>", "block", bi)
        head = raw.get("head")
        w.add(reuse(head, head is not None and head.strip() == seg.head, f"\n{seg.head}\n" if seg.head else ""),
              "block", bi)
        seps = raw.get("seps")
        if seps is None or len(seps) != k - 1:
            seps = [""] * (k - 1)
        for i, br in enumerate(seg.branches):
            if i:
                w.add(seps[i - 1], "block", bi)
            w.check(br.text, f"branch {i + 1} of block {bi + 1}", start_of(br))
            w.add("<Path>", "block", bi)
            body = br.raw if own else None
            w.add(reuse(body, body is not None and body.strip() == br.text, br.text), "branch", bi, i)
            w.add("</Path>", "block", bi)
        w.add(raw.get("tail", ""), "block", bi)
        w.add("</Parallel>", "block", bi)
        w.add(raw.get("pre_join", "\n"), "block", bi)
        join = seg.join or ""
        w.check(join, f"the summary of block {bi + 1}", start_of(seg))
        w.add("<Summary>", "block", bi)
        jraw = raw.get("join")
        w.add(reuse(jraw, jraw is not None and jraw.strip() == join, join), "block", bi)
        w.add("</Summary>", "block", bi)
    return w


def _scan(text: str, require_final_answer: bool) -> tuple[Trace | None, list[FormatError]]:
    err = ErrorList(NAME, text)
    at = err.at
    segments: list = []
    tags = [(m.group(), m.start(), m.end()) for m in TAG_RE.finditer(text)]
    state = "out"
    seg_start = 0       # start of the current text segment (state "out")
    region = 0          # start of the text since the last structural tag
    blk: dict = {}      # the block being read
    i = 0
    while i < len(tags):
        tag, s, e = tags[i]
        i += 1
        if state == "out":
            if tag == "<Parallel>":
                if s > seg_start:
                    segments.append(Text(text[seg_start:s], span=(seg_start, s)))
                blk = {"open": s, "branches": [], "raw": {"seps": []}}
                state, region = "par", e
            elif tag == "<Summary>":
                err.add(f"<Summary> at {at(s)} does not follow a </Parallel>: a summary comes right after its "
                        f"parallel block", s, tag)
            elif tag == "<Path>":
                err.add(f"<Path> at {at(s)} is outside any <Parallel> block", s, tag)
            else:
                err.add(f"unexpected {tag} at {at(s)}: no {tag.replace('/', '')} is open", s, tag)
        elif state == "par":
            n = len(blk["branches"])
            chunk = text[region:s]
            if tag in ("<Path>", "</Parallel>"):
                if n == 0:
                    blk["raw"]["head"] = chunk
                else:
                    blk["raw"]["seps" if tag == "<Path>" else "tail"] = (
                        blk["raw"]["seps"] + [chunk] if tag == "<Path>" else chunk)
                    if not is_blank(chunk):
                        off = first_nonblank(text, region, s)
                        err.add(f"text at {at(off)} stands between the <Path>s of the <Parallel> block opened at "
                                f"{at(blk['open'])}: only whitespace may follow a </Path>",
                                off, "<Path>")
                if tag == "<Path>":
                    blk["path_open"] = s
                    state, region = "path", e
                else:
                    if n < 2:
                        err.add(f"<Parallel> block opened at {at(blk['open'])} has {n} <Path>"
                                f"{'s' if n != 1 else ''}; a block needs at least 2 paths", blk["open"], "<Parallel>")
                    blk["close"] = s
                    state, region = "after", e
            elif tag == "<Parallel>":
                err.add(f"nested <Parallel> at {at(s)} inside the block opened at {at(blk['open'])}: blocks do "
                        f"not nest", s, tag)
            elif tag == "<Summary>":
                err.add(f"<Summary> at {at(s)} is inside the <Parallel> block opened at {at(blk['open'])}; it "
                        f"belongs after </Parallel>", s, tag)
            else:
                err.add(f"unexpected {tag} at {at(s)} inside the <Parallel> block opened at {at(blk['open'])}: "
                        f"no {tag.replace('/', '')} is open", s, tag)
        elif state == "path":
            if tag == "</Path>":
                body = text[region:s]
                blk["branches"].append(Branch(body.strip(), span=(blk["path_open"], e), raw=body))
                state, region = "par", e
            elif tag == "</Parallel>":
                err.add(f"unclosed <Path> opened at {at(blk['path_open'])}: </Parallel> at {at(s)} closes the "
                        f"block first", blk["path_open"], "<Path>")
                blk["branches"].append(Branch(text[region:s].strip(), span=(blk["path_open"], s)))
                state, region = "par", s
                i -= 1  # read </Parallel> again, now as the block's close
            elif tag in ("<Path>", "<Parallel>"):
                err.add(f"nested {tag} at {at(s)} inside the <Path> opened at {at(blk['path_open'])}: "
                        f"{'paths' if tag == '<Path>' else 'blocks'} do not nest", s, tag)
            else:
                err.add(f"{tag} at {at(s)} is inside the <Path> opened at {at(blk['path_open'])}", s, tag)
        elif state == "after":
            if tag == "<Summary>":
                chunk = text[region:s]
                blk["raw"]["pre_join"] = chunk
                if not is_blank(chunk):
                    off = first_nonblank(text, region, s)
                    err.add(f"text at {at(off)} stands between </Parallel> at {at(blk['close'])} and <Summary> "
                            f"at {at(s)}: </Parallel> must be followed by <Summary>", off, "</Parallel>")
                blk["summary_open"] = s
                state, region = "summary", e
            else:
                err.add(f"</Parallel> at {at(blk['close'])} is not followed by <Summary>: the next tag is {tag} "
                        f"at {at(s)}", blk["close"], "</Parallel>")
                state, seg_start = "out", region
                i -= 1
        elif state == "summary":
            if tag == "</Summary>":
                join = text[region:s]
                blk["raw"]["join"] = join
                segments.append(Block(blk["branches"], head=blk["raw"].get("head", "").strip(), join=join.strip(),
                                      span=(blk["open"], e), raw=blk["raw"]))
                state, seg_start = "out", e
            elif tag == "<Parallel>":
                err.add(f"nested <Parallel> at {at(s)} inside the <Summary> opened at {at(blk['summary_open'])}: "
                        f"blocks do not nest", s, tag)
            else:
                err.add(f"{tag} at {at(s)} is inside the <Summary> opened at {at(blk['summary_open'])}", s, tag)

    end = len(text)
    if state == "out":
        if end > seg_start:
            segments.append(Text(text[seg_start:], span=(seg_start, end)))
    elif state == "par":
        err.add(f"unclosed <Parallel> opened at {at(blk['open'])}", blk["open"], "<Parallel>")
    elif state == "path":
        err.add(f"unclosed <Path> opened at {at(blk['path_open'])}", blk["path_open"], "<Path>")
        err.add(f"unclosed <Parallel> opened at {at(blk['open'])}", blk["open"], "<Parallel>")
    elif state == "after":
        err.add(f"</Parallel> at {at(blk['close'])} is not followed by <Summary>: the text ends", blk["close"],
                "</Parallel>")
    elif state == "summary":
        err.add(f"unclosed <Summary> opened at {at(blk['summary_open'])}", blk["summary_open"], "<Summary>")

    if require_final_answer:
        body = text.rstrip()
        line_start = body.rfind("\n") + 1
        line = body[line_start:]
        tail_ok = state == "out" and line_start >= seg_start and segments and isinstance(segments[-1], Text)
        if not (tail_ok and _FINAL_ANSWER_RE.match(line)):
            shown = line if len(line) <= 60 else line[:57] + "..."
            err.add(f"the response must end with a 'Final Answer: <answer>' line outside any block; the last line "
                    f"(at {at(line_start)}) is {shown!r}", line_start, "Final Answer:")
    errors = err.sorted()
    return (None if errors else Trace(segments, NAME)), errors
