"""`TracesConfig`: the settings of `parafuse synth traces`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reasoning.sampling import Sampling, sampling
from reasoning.settings import nested, setting, to_dict
from reasoning.types import InputError
from synthesis.config import SourceConfig

TRACE_METHODS = ("parallel_r1", "threadweaver", "parathinker")


@dataclass
class TracesConfig(SourceConfig):
    """`parafuse synth traces`: parallel-thinking traces for training, filtered (see synthesis.traces)."""

    method: str = setting("threadweaver", "which paper's data: parallel_r1 (cold start) | threadweaver (two-stage "
                                          "rewrite) | parathinker (paths + summary)", choices=TRACE_METHODS)
    output_format: str | None = setting(None, "format the kept traces are written in (default: the method's own); "
                                              "converted through the trace tree", choices=TRACE_METHODS)
    teacher: Sampling = nested(sampling(temperature=0.6, top_p=0.95, max_tokens=2048),
                               "sampling of the teacher's replies (ThreadWeaver's generator used 0.6)",
                               aliases={"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_tokens"})
    format_mode: str = setting("reference", "parallel_r1: the format check: reference (the authors' tag-sequence "
                                            "checker) | strict (parafuse's grammar)", choices=("reference", "strict"))
    max_response_tokens: int = setting(4096, "parallel_r1: drop replies longer than this many tokens")
    cold_start_template: str = setting("traces/parallel_r1", "parallel_r1: the instruction template")
    solve_template: str = setting("math/boxed", "threadweaver and parathinker: the template of a sequential solution")
    rewrite_template: str = setting("threadweaver/rewrite", "threadweaver: the rewriter's template")
    solution_field: str | None = setting(None, "threadweaver: field of --input FILE holding a sequential solution "
                                               "to rewrite instead of asking the teacher for one")
    num_paths: int = setting(4, "parathinker: paths per problem, each with its own seed")
    summary_template: str = setting("traces/parathinker_summary", "parathinker: the summary template")
    seed: int = setting(0, "base seed; each request's seed is derived from it and the request's id")
    system: str | None = setting(None, "system message before every prompt")
    concurrency: int = setting(32, "problems in flight at once")

    def check(self) -> None:
        if not self.input:
            raise InputError("--input is required: gsm8k-train, math-train or a JSONL file (e.g. `parafuse eval "
                             "task arith --out arith.jsonl`)")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"--limit must be >= 1, got {self.limit}")
        if not 2 <= self.num_paths <= 8:
            raise InputError(f"--num-paths must lie in 2..8 (ParaThinker's tags), got {self.num_paths}")
        if self.max_response_tokens < 1 or self.concurrency < 1:
            raise InputError("--max-response-tokens and --concurrency must be >= 1")

    @property
    def trace_format(self) -> str:
        return self.output_format or self.method

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
