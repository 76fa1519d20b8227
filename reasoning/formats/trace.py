"""The parallel-thinking trace tree that every format parses into and serializes from.

A `Trace` is a list of segments: sequential `Text` and parallel `Block`s. A block holds k
`Branch`es (Parallel-R1 paths, ThreadWeaver threads, ParaThinker paths), an optional `head`
(free text between the block's opening tag and its first branch or outline list) and a `join`
(Parallel-R1 / ParaThinker summary, ThreadWeaver conclusion; None when the block has none).

Content versus layout. Node content is clean: branch bodies, outlines, heads and joins are
stripped of surrounding whitespace, and ThreadWeaver's "N:" thread prefix lives in
`Branch.label`, not in the body, so converting between formats moves only content. `Text`
segments are kept verbatim (whitespace included): they are the sequential text.
The exact layout of a parsed text (whitespace between tags, `<vllm_pad>` runs, the raw inner
text of every tag pair) is kept in the nodes' `raw` fields, which equality ignores. A
serializer uses a node's raw layout only when the trace is in its own format and the raw text
still holds the node's current content; otherwise it writes the format's canonical layout.
So `serialize(parse(x)) == x` byte for byte for every valid `x`, and an edited or converted
tree still serializes to valid text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reasoning.formats.tags import ALL_TAGS


class FormatError(ValueError):
    """A trace that breaks its format's grammar, or a tree a format cannot hold.

    `offset` is the character offset in the text the problem is at (-1 when the problem is in a
    tree with no source position), `tag` the tag it concerns, `format` the format's name.
    """

    def __init__(self, message: str, offset: int = -1, tag: str | None = None, format: str | None = None):
        self.message = message
        self.offset = offset
        self.tag = tag
        self.format = format
        super().__init__(f"{format}: {message}" if format else message)

    def __reduce__(self):  # picklable across process pools
        return (type(self), (self.message, self.offset, self.tag, self.format))


def checked(scanned: tuple[Trace, list[FormatError]]) -> Trace:
    """The trace of a format scanner's (trace, errors), or the first error (by offset) raised."""
    trace, errors = scanned
    if errors:
        raise errors[0]
    return trace


@dataclass
class Text:
    """Sequential text between blocks, verbatim."""

    text: str
    span: tuple[int, int] | None = field(default=None, compare=False, repr=False)


@dataclass
class Branch:
    """One path/thread of a block: its body, and optionally its outline and label (e.g. "1.2")."""

    text: str
    outline: str | None = None
    label: str | None = None
    # (start, end) in the parsed text, from the branch's opening tag through its closing tag.
    span: tuple[int, int] | None = field(default=None, compare=False, repr=False)
    # The exact text between the branch's tags in the parsed format (layout, not content).
    raw: str | None = field(default=None, compare=False, repr=False)


@dataclass
class Block:
    """A parallel block: k branches, an optional head and an optional join."""

    branches: list[Branch]
    head: str = ""
    join: str | None = None
    # (start, end) in the parsed text, from the opening tag through the end of the join.
    span: tuple[int, int] | None = field(default=None, compare=False, repr=False)
    # Layout of the parsed format: separators between tags and raw inner texts, by name.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def width(self) -> int:
        return len(self.branches)


Segment = Text | Block


@dataclass
class Trace:
    """One response as a tree: sequential text and parallel blocks, in order."""

    segments: list[Segment]
    format: str

    @property
    def blocks(self) -> list[Block]:
        return [s for s in self.segments if isinstance(s, Block)]

    def branch_texts(self) -> list[str]:
        return [b.text for blk in self.blocks for b in blk.branches]

    def sequential_text(self) -> str:
        return "".join(s.text for s in self.segments if isinstance(s, Text))


# ---- serialization pieces (shared by serializers and metrics) ----------------------------------

@dataclass(frozen=True)
class Piece:
    """A run of serialized text and what it belongs to.

    kind: "text" (outside blocks), "block" (a block's own text: tags, separators, head,
    outlines, join) or "branch" (the text between a branch's tags); `block` / `branch` index it.
    """

    text: str
    kind: str
    block: int = -1
    branch: int = -1


class PieceWriter:
    """Collects `Piece`s; `check` rejects content holding one of the format's tags."""

    def __init__(self, fmt: str, tag_re: re.Pattern):
        self.fmt = fmt
        self.tag_re = tag_re
        self.pieces: list[Piece] = []
        self.length = 0

    def add(self, text: str, kind: str, block: int = -1, branch: int = -1) -> None:
        if text:
            self.pieces.append(Piece(text, kind, block, branch))
            self.length += len(text)

    def check(self, content: str | None, what: str, node_offset: int = -1, pattern: re.Pattern | None = None) -> None:
        """Raise if `content` (a node's text) holds a tag of this format: it could not be parsed back."""
        if not content:
            return
        m = (pattern or self.tag_re).search(content)
        if m:
            raise FormatError(f"{what} contains the tag {m.group()} (at offset {m.start()} of that text): "
                              f"{self.fmt} cannot hold it as content", node_offset, m.group(), self.fmt)

    def text(self) -> str:
        return "".join(p.text for p in self.pieces)


def start_of(node: Any) -> int:
    span = getattr(node, "span", None)
    return span[0] if span else -1


def check_width(block: Block, index: int, fmt: str, tag: str, max_branches: int | None = None) -> None:
    """Serializers refuse blocks their own validator would reject: fewer than 2 (or too many) branches."""
    k = len(block.branches)
    if k < 2:
        raise FormatError(f"block {index + 1} has {k} branch{'es' if k != 1 else ''}; a parallel block needs "
                          f"at least 2", start_of(block), tag, fmt)
    if max_branches is not None and k > max_branches:
        raise FormatError(f"block {index + 1} has {k} branches; {fmt} allows at most {max_branches}",
                          start_of(block), tag, fmt)


def reuse(raw: str | None, ok: bool, default: str) -> str:
    """The raw layout when there is one that still holds the content, else the canonical text."""
    return raw if raw is not None and ok else default


def is_blank(s: str) -> bool:
    return not s.strip()


def first_nonblank(text: str, start: int, end: int) -> int:
    """Offset of the first non-whitespace character of text[start:end] (end if none)."""
    chunk = text[start:end]
    return start + (len(chunk) - len(chunk.lstrip()))


def where(text: str, offset: int) -> str:
    """'offset 123 (line 4, column 7)' for messages (lines and columns count from 1)."""
    if offset < 0:
        return f"offset {offset}"
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"offset {offset} (line {line}, column {col})"


class ErrorList:
    """Errors found while scanning one text, each with its offset and tag; sorted on the way out."""

    def __init__(self, fmt: str, text: str):
        self.fmt = fmt
        self.text = text
        self.items: list[FormatError] = []

    def add(self, message: str, offset: int, tag: str | None) -> None:
        self.items.append(FormatError(message, offset, tag, self.fmt))

    def at(self, offset: int) -> str:
        return where(self.text, offset)

    def sorted(self) -> list[FormatError]:
        return sorted(self.items, key=lambda e: e.offset)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


TAG_SPLIT_RE = re.compile("|".join(re.escape(t) for t in sorted(ALL_TAGS, key=len, reverse=True)))
