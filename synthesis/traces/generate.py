"""The teacher requests of each trace method, per problem, through one generation store (resumable)."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from eval.records import Problem
from prompts import PromptLibrary, default_library
from reasoning.cached_engine import CachedEngine
from reasoning.engines.base import Engine
from reasoning.inputs import seeded, template_request
from reasoning.store import GenerationStore
from reasoning.types import InputError, Result
from synthesis.executor import run_jobs
from synthesis.traces.config import TracesConfig


@dataclass
class TraceOutcome:
    """What the teacher wrote for one problem (checked and turned into a row by the pipeline)."""

    problem: Problem
    reply: str | None = None  # parallel_r1: the reply; threadweaver: the rewrite; parathinker: the summary
    reply_tokens: int = 0
    finish_reason: str | None = None
    sequential: str | None = None  # threadweaver: the stage-1 solution
    sequential_from: str = "teacher"  # threadweaver: teacher | dataset
    paths: list[str] = field(default_factory=list)  # parathinker
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failure: str | None = None


class TracesRun:
    """Generate every problem's teacher replies for one method (see the package docstring)."""

    def __init__(self, cfg: TracesConfig, engine: Engine, store: GenerationStore,
                 library: PromptLibrary | None = None, progress: bool = True):
        self.cfg, self.progress = cfg, progress
        self.library = library or default_library()
        self.engine = CachedEngine(engine, store)
        self._count = {"ok": 0, "failed": 0}

    def run(self, problems: Sequence[Problem]) -> list[TraceOutcome]:
        return run_jobs(problems, self._job, self.cfg.concurrency, engines=[self.engine], progress=self.progress,
                        desc=f"traces {self.cfg.method}", postfix=lambda: dict(self._count))

    @property
    def requests_sent(self) -> int:
        return self.engine.calls

    @property
    def requests_from_store(self) -> int:
        return self.engine.hits

    async def _ask(self, out: TraceOutcome, template: str, request_id: str, seed_offset: int = 0, n: int = 1,
                   **variables) -> Result:
        cfg = self.cfg
        base = cfg.teacher.base_seed(cfg.seed)
        params = seeded(cfg.teacher.params(n=n, seed=None if base is None else base + seed_offset), request_id)
        request = template_request(self.library, template, params, request_id, cfg.system, **variables)
        result = await self.engine.agenerate(request)
        out.prompt_tokens += result.prompt_tokens
        out.completion_tokens += result.completion_tokens
        return result

    async def _job(self, problem: Problem) -> TraceOutcome:
        out = TraceOutcome(problem)
        method, cfg = self.cfg.method, self.cfg
        try:
            if method == "parallel_r1":
                result = await self._ask(out, cfg.cold_start_template, f"{problem.id}/cold-start",
                                         question=problem.question)
                completion = result.completions[0]
                out.reply, out.reply_tokens, out.finish_reason = completion.text, completion.tokens, \
                    completion.finish_reason
            elif method == "threadweaver":
                own = (problem.meta or {}).get("solution")
                if cfg.solution_field and isinstance(own, str) and own.strip():
                    out.sequential, out.sequential_from = own.strip(), "dataset"
                else:
                    first = await self._ask(out, cfg.solve_template, f"{problem.id}/sequential",
                                            question=problem.question)
                    out.sequential = first.completions[0].text
                rewrite = await self._ask(out, cfg.rewrite_template, f"{problem.id}/rewrite",
                                          question=problem.question, solution=out.sequential)
                completion = rewrite.completions[0]
                out.reply, out.reply_tokens, out.finish_reason = completion.text, completion.tokens, \
                    completion.finish_reason
            else:
                # P paths, each its own request with its own seed, so each is a sample of its own.
                results = await asyncio.gather(*(self._ask(out, cfg.solve_template, f"{problem.id}/path{k}", k,
                                                           question=problem.question)
                                                 for k in range(1, cfg.num_paths + 1)))
                out.paths = [r.completions[0].text for r in results]
                summary = await self._ask(out, cfg.summary_template, f"{problem.id}/summary",
                                          question=problem.question, paths=out.paths)
                completion = summary.completions[0]
                out.reply, out.reply_tokens, out.finish_reason = completion.text, completion.tokens, \
                    completion.finish_reason
        except InputError:  # no server, a bad model name: nothing later would fare better
            raise
        except Exception as e:  # an engine that gave up after its retries: recorded, retried on a rerun
            out.failure = f"{type(e).__name__}: {e}"
        self._count["ok" if out.failure is None else "failed"] += 1
        return out
