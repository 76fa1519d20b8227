"""Token metrics of a parallel-thinking trace: total, critical path, blocks, branch widths.

The trace is serialized in its own format and every piece is attributed to the sequential text
outside blocks, to a block's own text (its tags, separators, head, outlines and join) or to one
branch (the text between the branch's tags). Then

    total    = outside + sum over blocks (block text + sum of its branches)
    critical = outside + sum over blocks (block text + its longest branch)

which is ThreadWeaver's L_total / L_crit ("token latency"), with branch tags counted in the
block's sequential part as its reference reward does. Tag tokens count as tokens, and so does text
a decoder inserted (headers, forced closes): the reward counts every response token. This is the
one critical-path definition of the project: the decoders report theirs through `trace_metrics`
(reasoning.decoders.base), so a decode and a trace of the same text have the same critical path.

Names, because the papers use "parallel ratio" for two different things:
    speedup                total / critical: the tokens the same response would take written in
                           sequence over its critical path (1.0 without blocks). ThreadWeaver's
                           tables average a per-problem ratio over problems (`eval` does that).
    parallel_token_share   tokens inside parallel blocks / total: ThreadWeaver's `parallel_ratio`.
    has_parallel           at least one block: the share of responses with one is Parallel-R1's
                           "parallel ratio %" (`eval` reports it as parallel_response_rate).

Text is cut at every tag (tags.ALL_TAGS) before counting, so a tokenizer that holds each tag as
one added token gets exactly `len(encode(serialized text))` as the total. The default counter,
`approx_tokens`, is an approximation for when no tokenizer is at hand: a tag is 1 token and other
text costs ceil(len(word) / 4) tokens per whitespace-separated word (whitespace itself is free).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable, Sequence

from reasoning.formats.tags import ALL_TAGS
from reasoning.formats.trace import TAG_SPLIT_RE, Trace

_TAG_SET = frozenset(ALL_TAGS)


def approx_tokens(text: str) -> int:
    """A tag: 1; otherwise ceil(len/4) tokens per whitespace-separated word."""
    if text in _TAG_SET:
        return 1
    return sum(math.ceil(len(word) / 4) for word in text.split())


@dataclass
class TraceMetrics:
    total_tokens: int
    critical_path_tokens: int
    blocks: int
    widths: list[int]              # branches per block
    sequential_tokens: int         # tokens outside blocks
    block_tokens: list[int]        # per block: its own (non-branch) tokens
    branch_tokens: list[list[int]]  # per block, per branch

    @property
    def speedup(self) -> float:
        """total / critical (1.0 for a trace with no blocks): the sequential length over the token latency."""
        return self.total_tokens / self.critical_path_tokens if self.critical_path_tokens else 1.0

    @property
    def parallel_tokens(self) -> int:
        """Tokens inside parallel blocks: their own text and every branch."""
        return sum(self.block_tokens) + sum(map(sum, self.branch_tokens))

    @property
    def parallel_token_share(self) -> float:
        """Tokens inside blocks / total: ThreadWeaver's `parallel_ratio` (0.0 for an empty trace)."""
        return self.parallel_tokens / self.total_tokens if self.total_tokens else 0.0

    @property
    def has_parallel(self) -> bool:
        """The trace holds at least one parallel block (what Parallel-R1's parallel ratio counts)."""
        return self.blocks > 0

    @property
    def acceleration_ratio(self) -> float:
        """1 - critical / total: the fraction of tokens off the critical path (ThreadWeaver's reward term)."""
        return 1.0 - self.critical_path_tokens / self.total_tokens if self.total_tokens else 0.0


def critical_path(sequential: int, block_tokens: Sequence[int], branch_tokens: Sequence[Sequence[int]]) -> int:
    """L_crit: the sequential tokens, each block's own tokens, and each block's longest branch."""
    return sequential + sum(block_tokens) + sum(max(b, default=0) for b in branch_tokens)


def _count(text: str, count: Callable[[str], int]) -> int:
    n, pos = 0, 0
    for m in TAG_SPLIT_RE.finditer(text):
        if m.start() > pos:
            n += count(text[pos:m.start()])
        n += count(m.group())
        pos = m.end()
    if pos < len(text):
        n += count(text[pos:])
    return n


def trace_metrics(trace: Trace, count_tokens: Callable[[str], int] | None = None) -> TraceMetrics:
    """Token metrics of `trace` as serialized in `trace.format` (see the module docstring)."""
    from reasoning.formats import get_format

    count = count_tokens or approx_tokens
    pieces = get_format(trace.format).pieces(trace).pieces
    # Merge neighbouring pieces of the same owner: owners change only at tags, so every counted
    # run is bounded by tags (or the ends of the text), as a tokenizer with added tags splits it.
    runs: list[tuple[tuple[str, int, int], str]] = []
    for p in pieces:
        key = (p.kind, p.block, p.branch)
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1] + p.text)
        else:
            runs.append((key, p.text))
    widths = [len(b.branches) for b in trace.blocks]
    outside = 0
    block_tokens = [0] * len(widths)
    branch_tokens = [[0] * w for w in widths]
    for (kind, bi, ri), text in runs:
        n = _count(text, count)
        if kind == "text":
            outside += n
        elif kind == "block":
            block_tokens[bi] += n
        else:
            branch_tokens[bi][ri] += n
    total = outside + sum(block_tokens) + sum(map(sum, branch_tokens))
    return TraceMetrics(total_tokens=total, critical_path_tokens=critical_path(outside, block_tokens, branch_tokens),
                        blocks=len(widths), widths=widths, sequential_tokens=outside, block_tokens=block_tokens,
                        branch_tokens=branch_tokens)


def text_metrics(text: str, fmt: str, count_tokens: Callable[[str], int] | None = None) -> TraceMetrics:
    """`trace_metrics` of `text` parsed (structure only) in format `fmt`."""
    from reasoning.formats.convert import parse_any

    return trace_metrics(parse_any(text, fmt), count_tokens)
