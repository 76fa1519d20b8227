"""Fusion-of-N: a fusor model writes one answer from N candidates (Khairi et al., "Making, not
Taking, the Best of N"). Used by eval as a test-time aggregator next to majority vote and
best-of-N, and by synthesis to build data from a teacher pool.

Unlike selection, the fusor may combine or correct candidates; its prompt grows with N times
the candidate length, so `max_candidate_chars` bounds each candidate.
"""
from __future__ import annotations

from collections.abc import Sequence

from prompts import PromptLibrary, default_library
from reasoning.inputs import template_request
from reasoning.types import Request, SamplingParams

DEFAULT_TEMPLATE = "fusion/fuse"


def fusion_request(question: str, candidates: Sequence[str], params: SamplingParams,
                   template: str = DEFAULT_TEMPLATE, library: PromptLibrary | None = None,
                   max_candidate_chars: int | None = 8000, request_id: str | None = None) -> Request:
    """The fusor's request for one problem and its candidates (a chat with one user turn)."""
    library = library or default_library()
    if max_candidate_chars:
        # Keep each candidate's end: that is where the answer is.
        candidates = [c if len(c) <= max_candidate_chars else "[...]" + c[-max_candidate_chars:]
                      for c in candidates]
    return template_request(library, template, params, request_id, question=question, candidates=list(candidates))
