"""Fusion-of-N data generation: teacher pool, then fusor, per prompt (see the package docstring)."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eval.records import Problem
from prompts import PromptLibrary, default_library
from reasoning.cached_engine import CachedEngine
from reasoning.engines import ENGINE_OPTIONS, ENGINES
from reasoning.engines.base import Engine
from reasoning.fusion import fusion_request
from reasoning.inputs import seeded, template_request
from reasoning.store import GenerationStore
from reasoning.types import InputError
from synthesis.config import FusionDataConfig
from synthesis.executor import run_jobs

Log = Callable[[str], None]
TOKEN_KINDS = ("teacher_prompt", "teacher_completion", "fusor_prompt", "fusor_completion")
_SPEC = re.compile(r"(?P<engine>[a-z]+):(?P<model>[^@*,]+?)(?:@(?P<url>[^*]+?))?(?:\*(?P<n>\d+))?"
                   r"(?P<options>(?:,[a-z][a-z0-9_-]*=[^,]*)*)")


@dataclass(frozen=True)
class TeacherSpec:
    engine: str
    model: str
    base_url: tuple[str, ...] | None = None
    n: int = 1
    options: tuple[tuple[str, Any], ...] = ()  # engine options of its own: (field name, value), e.g. max_model_len


def _teacher_options(spec: str, text: str) -> tuple[tuple[str, Any], ...]:
    """`,max-model-len=4096,dtype=float32` -> the options, typed and checked as the engine flags are."""
    import argparse

    from reasoning.engines import add_engine_args

    flags = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_engine_args(flags, model_required=False, with_model=False)
    allowed = [o for o in ENGINE_OPTIONS if o != "base_url"]
    out = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        field_name = name.replace("-", "_")
        if field_name not in allowed:
            raise InputError(f"--teacher {spec!r}: {name!r} is not an engine option; a teacher may set "
                             + ", ".join(o.replace("_", "-") for o in allowed) + " (its server goes after '@')")
        try:
            parsed, rest = flags.parse_known_args(["--" + field_name.replace("_", "-"), value])
        except argparse.ArgumentError as e:
            raise InputError(f"--teacher {spec!r}: {e}") from None
        if rest == [value]:  # a switch (enforce-eager, ...): the value turns it on or off
            if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise InputError(f"--teacher {spec!r}: {name} takes true or false, got {value!r}")
            out[field_name] = value.lower() in ("true", "yes", "1")
        elif rest:
            raise InputError(f"--teacher {spec!r}: cannot read {item!r}")
        else:
            out[field_name] = getattr(parsed, field_name)
    return tuple(out.items())


def parse_teacher(spec: str) -> TeacherSpec:
    """`ENGINE:MODEL[@BASE_URL[,URL...]][*N][,OPTION=VALUE...]`, e.g. `openai:Qwen/Qwen3-8B@http://gpu1:8000/v1*2`
    or `vllm:Qwen/Qwen3-8B*2,max-model-len=8192,tensor-parallel-size=2`. Options are engine flags without
    their `--`; a teacher without them takes the command's."""
    m = _SPEC.fullmatch(spec.strip())
    if not m or m["engine"] not in ENGINES:
        raise InputError(f"--teacher {spec!r}: expected ENGINE:MODEL[@BASE_URL][*N][,OPTION=VALUE...] with ENGINE "
                         f"one of {', '.join(ENGINES)}, e.g. openai:Qwen/Qwen3-8B@http://localhost:8000/v1*2")
    n = int(m["n"]) if m["n"] else 1
    if n < 1:
        raise InputError(f"--teacher {spec!r}: the sample count after '*' must be >= 1")
    urls = tuple(u for u in (m["url"] or "").split(",") if u) or None
    if m["engine"] == "openai" and not urls:
        example = f"openai:{m['model'].strip()}@http://host:8000/v1" + (f"*{m['n']}" if m["n"] else "")
        raise InputError(f"--teacher {spec!r}: an openai teacher needs its server, e.g. {example}")
    return TeacherSpec(m["engine"], m["model"].strip(), urls, n, _teacher_options(spec, m["options"]))


@dataclass
class FusionDataOutcome:
    problem: Problem
    candidates: list[str] = field(default_factory=list)
    candidate_models: list[str] = field(default_factory=list)
    fused: str | None = None
    fused_finish: str | None = None
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_KINDS, 0))
    failure: str | None = None


class FusionDataRun:
    """Candidates from every teacher, then the fusor; all through one generation store."""

    def __init__(self, cfg: FusionDataConfig, teachers: Sequence[tuple[Engine, int]], fusor: Engine,
                 store: GenerationStore, library: PromptLibrary | None = None, progress: bool = True):
        self.cfg, self.progress = cfg, progress
        self.library = library or default_library()
        self.teachers = [(CachedEngine(e, store), n) for e, n in teachers]
        self.fusor = CachedEngine(fusor, store)
        self._count = {"ok": 0, "failed": 0}

    def run(self, problems: Sequence[Problem]) -> list[FusionDataOutcome]:
        engines = [e for e, _ in self.teachers] + [self.fusor]
        return run_jobs(problems, self._job, self.cfg.concurrency, engines=engines, progress=self.progress,
                        desc="fusion", postfix=lambda: dict(self._count))

    @property
    def requests_sent(self) -> int:
        return sum(e.calls for e, _ in self.teachers) + self.fusor.calls

    @property
    def requests_from_store(self) -> int:
        return sum(e.hits for e, _ in self.teachers) + self.fusor.hits

    async def _job(self, p: Problem) -> FusionDataOutcome:
        out = FusionDataOutcome(p)
        try:
            # Let every teacher finish (and be stored) even when one fails, so a rerun resends only that one.
            results = await asyncio.gather(*(self._teacher(p, i, e, n) for i, (e, n) in enumerate(self.teachers)),
                                           return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r
            for (e, _), r in zip(self.teachers, results):
                out.candidates += [c.text for c in r.completions]
                out.candidate_models += [e.model] * len(r.completions)
                out.tokens["teacher_prompt"] += r.prompt_tokens
                out.tokens["teacher_completion"] += r.completion_tokens
            cfg, rid = self.cfg, f"{p.id}/fusor"
            params = seeded(cfg.fusor.params(seed=cfg.fusor.base_seed(cfg.seed)), rid)
            req = fusion_request(p.question, out.candidates, params, cfg.fusion_template, self.library,
                                 max_candidate_chars=cfg.max_candidate_chars, request_id=rid)
            r = await self.fusor.agenerate(req)
            out.fused, out.fused_finish = r.completions[0].text, r.completions[0].finish_reason
            out.tokens["fusor_prompt"] += r.prompt_tokens
            out.tokens["fusor_completion"] += r.completion_tokens
        except InputError:  # no server at all, a bad model name: nothing later would fare better
            raise
        except Exception as e:  # an engine that gave up after its retries: recorded, retried on a rerun
            out.failure = f"{type(e).__name__}: {e}"
        self._count["ok" if out.failure is None else "failed"] += 1
        return out

    async def _teacher(self, p: Problem, i: int, engine: Engine, n: int):
        cfg = self.cfg
        params = cfg.teacher.params(n=n, seed=cfg.teacher.base_seed(cfg.seed))
        rid = f"{p.id}/teacher{i}"
        # `question` for the math templates, `prompt` for generic/user (the user's text as is)
        req = template_request(self.library, cfg.template, seeded(params, rid), rid, cfg.system, question=p.question,
                               prompt=p.question)
        return await engine.agenerate(req)
