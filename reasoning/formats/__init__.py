"""Parallel-thinking formats (Parallel-R1, ThreadWeaver, ParaThinker): their tags, and the
parsers, validators and serializers to and from one trace tree."""
from __future__ import annotations

from types import ModuleType

from reasoning.formats import parallel_r1, parathinker, threadweaver
from reasoning.formats.trace import Block, Branch, FormatError, Text, Trace

# name -> module exposing NAME, TAGS, parse(text), validate(text), serialize(trace), pieces(trace)
FORMATS: dict[str, ModuleType] = {
    parallel_r1.NAME: parallel_r1,
    threadweaver.NAME: threadweaver,
    parathinker.NAME: parathinker,
}


def get_format(name: str) -> ModuleType:
    """The format module called `name` ("parallel_r1", "threadweaver", "parathinker"; case and '-' ignored)."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in FORMATS:
        raise ValueError(f"unknown parallel-thinking format {name!r}; known formats: {', '.join(sorted(FORMATS))}")
    return FORMATS[key]


from reasoning.formats.convert import convert, convert_trace  # noqa: E402  (they use get_format)
from reasoning.formats.metrics import TraceMetrics, trace_metrics  # noqa: E402

__all__ = ["FORMATS", "get_format", "convert", "convert_trace", "trace_metrics", "TraceMetrics", "Trace", "Text",
           "Block", "Branch", "FormatError", "parallel_r1", "threadweaver", "parathinker"]
