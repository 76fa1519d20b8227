"""Convert a parallel-thinking trace from one format to another through the trace tree.

What moves: the sequential text segments (verbatim), every block's branch bodies (in order),
its head and its join. What each target does with what it cannot hold:

- ThreadWeaver needs an outline per branch: branches without one (from Parallel-R1 or
  ParaThinker) get the generic outline "N: path N"; labels come from the source when they are
  distinct outline numbers (ThreadWeaver, ParaThinker's path numbers), else 1..k. A join of None
  writes no <Conclusion>.
- Parallel-R1 and ParaThinker have no outlines: outlines are dropped. Their summary is
  mandatory: a block without a join (ThreadWeaver with no <Conclusion>) gets an empty summary.
- ParaThinker holds exactly one block at the start of the response. A trace with several
  blocks (or none), with text before its block, or with a head raises `FormatError`: the
  conversion never merges blocks or drops sequential text silently.

Only structure is checked on both sides: Parallel-R1's "Final Answer:" line is not required
(`parallel_r1.validate(out)` checks it when it matters). The output is re-validated against
the target grammar before it is returned, so `convert` never hands back text its parser rejects.
"""
from __future__ import annotations

from reasoning.formats import get_format
from reasoning.formats.trace import FormatError, Trace


def parse_any(text: str, fmt: str) -> Trace:
    """Parse `text` in `fmt`, checking structure only (no Parallel-R1 final-answer requirement)."""
    module = get_format(fmt)
    return module.parse(text, **module.STRUCTURE_ONLY)


def convert_trace(trace: Trace, dst: str) -> str:
    """Serialize `trace` in the format `dst`; raises FormatError if `dst` cannot hold it."""
    module = get_format(dst)
    out = module.serialize(trace)
    errors = module.validate(out, **module.STRUCTURE_ONLY)
    if errors:
        e = errors[0]
        raise FormatError(f"the converted text is not valid {module.NAME}: {e.message}", e.offset, e.tag, module.NAME)
    return out


def convert(text: str, src: str, dst: str) -> str:
    """`text` in format `src`, rewritten in format `dst` (FormatError when invalid or not representable)."""
    return convert_trace(parse_any(text, src), dst)
