"""Fusion-of-N: a fusor model writes one answer from N candidates (Khairi et al., "Making, not
Taking, the Best of N"). Used by eval as a test-time aggregator next to majority vote and
best-of-N, and by synthesis to build data from a teacher pool.

Unlike selection, the fusor may combine or correct candidates; its prompt grows with N times
the candidate length, so `max_candidate_chars` bounds each candidate. Two prompts ship:
`fusion/fuse` for math (a worked solution ending in \\boxed{}) and `fusion/fuse_general` for
open-ended prompts; `auto` picks by the prompt template the candidates answered.
"""
from __future__ import annotations

from collections.abc import Sequence

from prompts import PromptLibrary, default_library
from reasoning.inputs import template_request
from reasoning.types import Request, SamplingParams

DEFAULT_TEMPLATE = "fusion/fuse"
GENERAL_TEMPLATE = "fusion/fuse_general"


def resolve_fusion_template(fusion_template: str, answer_template: str) -> str:
    """`auto` -> the math fusor prompt (it asks for \\boxed{}) when the candidates answered a
    `math/*` prompt, else the general one (open-ended prompts, the paper's main setting: chat and
    translation); any other name is kept."""
    if fusion_template != "auto":
        return fusion_template
    return DEFAULT_TEMPLATE if answer_template.startswith("math/") else GENERAL_TEMPLATE


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
