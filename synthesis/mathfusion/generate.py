"""MathFusion (Pei et al., ACL 2025): new problems written by fusing pairs of similar ones.

    pairs ──fuse (template per strategy; retried while the reply has no usable problem)──▶
    fused problem ──solve k times──▶ majority answer and its share ──▶ a candidate row

Strategies (prompts under prompts/templates/mathfusion/):
    sequential   problem 1's result becomes an input of problem 2 (solve one, then the other)
    parallel     one scenario needing both problems' solution methods together
    conditional  both sub-problems are solved, a new question selects one of their answers

Every request goes through the generation store (`CachedEngine`), so a killed run resumes
without sending a finished request again; a reply that cannot be parsed is retried up to
`fusion_retries` times with a new seed and then recorded as a failure together with every
reply, so small or misbehaving models show up as counted failures rather than silent gaps.
Filtering, deduplication and decontamination of the candidates happen in `synthesis.mathfusion.pipeline`
(with `synthesis.dedup` and `synthesis.decontam`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eval.records import Problem
from prompts import PromptLibrary, default_library
from reasoning.cached_engine import CachedEngine
from reasoning.engines.base import Engine
from reasoning.inputs import seeded, template_request
from reasoning.store import GenerationStore
from reasoning.types import InputError, Result
from synthesis.config import MathFusionConfig
from synthesis.consensus import Consensus, consensus
from synthesis.dedup import Fingerprint, fingerprint
from synthesis.executor import run_jobs
from synthesis.pairing import Pair
from synthesis.sections import STRATEGY_SECTIONS, SectionError, parse_sections


@dataclass(frozen=True)
class FusionJob:
    """One fused problem to make: a strategy and an ordered pair of seed problems."""

    strategy: str
    a: Problem
    b: Problem
    pair: Pair

    @property
    def id(self) -> str:
        return f"{self.strategy}/{self.a.id}+{self.b.id}"


@dataclass
class Tokens:
    prompt: int = 0
    completion: int = 0

    def add(self, r: Result) -> None:
        self.prompt += r.prompt_tokens
        self.completion += r.completion_tokens


@dataclass
class FusionOutcome:
    """What happened to one job: a fused problem with its solutions, or why there is none."""

    job: FusionJob
    problem: str | None = None
    reply: str | None = None  # the accepted fusion reply
    attempts: list[dict[str, Any]] = field(default_factory=list)  # rejected replies: reason, detail, reply
    solutions: list[str] = field(default_factory=list)
    consensus: Consensus | None = None
    failure: str | None = None  # a SectionError reason, or "engine_error"
    failure_detail: str = ""
    fingerprint: Fingerprint | None = None  # of the problem, for dedup (computed while waiting on the engine)
    fuse_tokens: Tokens = field(default_factory=Tokens)
    solve_tokens: Tokens = field(default_factory=Tokens)

    @property
    def ok(self) -> bool:
        return self.failure is None


def make_jobs(problems: Sequence[Problem], pairs: Sequence[Pair], strategies: Sequence[str]) -> list[FusionJob]:
    """One job per (strategy, pair), strategy-major so a partial run covers whole strategies first."""
    return [FusionJob(s, problems[p.a], problems[p.b], p) for s in strategies for p in pairs]


class MathFusionRun:
    """Generate fused problems and their solutions for a list of jobs (see the module docstring)."""

    def __init__(self, cfg: MathFusionConfig, engine: Engine, store: GenerationStore, solver: Engine | None = None,
                 library: PromptLibrary | None = None, progress: bool = True):
        self.cfg = cfg
        self.library = library or default_library()
        # "fusor" is Fusion-of-N's word; MathFusion's model that writes the fused problems is the fusion engine.
        self.fusion_engine = CachedEngine(engine, store)
        self.solver = CachedEngine(solver, store) if solver is not None else self.fusion_engine
        self.progress = progress
        self.fuse_params = cfg.fuse.params(seed=cfg.fuse.base_seed(cfg.seed))
        # Greedy solutions ignore the nucleus: top_p 1 keeps their store key free of a value that does nothing.
        self.solve_params = cfg.solve.params(n=cfg.num_solutions, seed=cfg.solve.base_seed(cfg.seed),
                                             top_p=cfg.solve.top_p if cfg.solve.temperature > 0 else 1.0)
        self._count = {"ok": 0, "failed": 0, "tokens": 0}

    def template(self, strategy: str) -> str:
        return f"{self.cfg.fusion_template_dir}/{strategy}"

    def run(self, jobs: Sequence[FusionJob]) -> list[FusionOutcome]:
        engines = [self.fusion_engine] + ([self.solver] if self.solver is not self.fusion_engine else [])
        return run_jobs(jobs, self._job, self.cfg.concurrency, engines=engines, progress=self.progress,
                        desc="mathfusion", postfix=lambda: dict(self._count))

    @property
    def requests_sent(self) -> int:
        return self.fusion_engine.calls + (self.solver.calls if self.solver is not self.fusion_engine else 0)

    @property
    def requests_from_store(self) -> int:
        return self.fusion_engine.hits + (self.solver.hits if self.solver is not self.fusion_engine else 0)

    async def _job(self, job: FusionJob) -> FusionOutcome:
        out = FusionOutcome(job)
        try:
            await self._fuse(job, out)
            if out.ok:
                await self._solve(job, out)
        except InputError:  # no server at all, a bad model name: nothing later would fare better
            raise
        except Exception as e:  # an engine that gave up after its retries: recorded, retried on a rerun
            out.failure, out.failure_detail = "engine_error", f"{type(e).__name__}: {e}"
        self._count["ok" if out.ok else "failed"] += 1
        self._count["tokens"] += out.fuse_tokens.completion + out.solve_tokens.completion
        return out

    async def _fuse(self, job: FusionJob, out: FusionOutcome) -> None:
        names = STRATEGY_SECTIONS[job.strategy]
        for attempt in range(self.cfg.fusion_retries + 1):
            rid = f"{job.id}/fuse" + (f"/{attempt}" if attempt else "")  # a retry gets a seed of its own
            req = template_request(self.library, self.template(job.strategy), seeded(self.fuse_params, rid), rid,
                                   self.cfg.system, key_suffix=f"#attempt{attempt}" if attempt else "",
                                   problem_1=job.a.question, problem_2=job.b.question)
            res = await self.fusion_engine.agenerate(req)
            out.fuse_tokens.add(res)
            c = res.completions[0]
            try:
                parsed = parse_sections(c.text, names, inputs=(job.a.question, job.b.question),
                                        finish_reason=c.finish_reason)
            except SectionError as e:
                out.attempts.append({"reason": e.reason, "detail": str(e), "reply": c.text})
                continue
            out.problem, out.reply = parsed.problem, c.text
            out.fingerprint = fingerprint(parsed.problem)
            return
        last = out.attempts[-1]
        out.failure, out.failure_detail = last["reason"], last["detail"]

    async def _solve(self, job: FusionJob, out: FusionOutcome) -> None:
        rid = f"{job.id}/solve"
        req = template_request(self.library, self.cfg.solve_template, seeded(self.solve_params, rid), rid,
                               self.cfg.system, question=out.problem)
        res = await self.solver.agenerate(req)
        out.solve_tokens.add(res)
        out.solutions = [c.text for c in res.completions]
        out.consensus = consensus(out.solutions)

