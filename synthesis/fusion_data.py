"""Fusion-of-N data (Khairi et al., "Making, not Taking, the Best of N"): a teacher pool answers
every prompt, and a fusor model writes one answer from all N candidates.

    prompt ──teacher 1 (n1 samples), teacher 2 (n2), ...──▶ N candidates ──fusor──▶ one fused answer

The paper's pool was five strong models, one sample each at T=0.3, fused by a sixth; here the
pool is any list of engines and models (`ENGINE:MODEL[@BASE_URL][*N]`). The fusor prompt is
the same template eval's `fusion` strategy uses at test time (`fusion/fuse`), so data and
test-time aggregation stay one method. For math prompts with a gold answer every candidate and
the fusion are graded, which shows what the paper claims and the digest warns about: the fusion
can beat the best candidate, and it can also overwrite a correct majority.
"""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.metrics import maj_at_k
from eval.records import Problem
from prompts import PromptLibrary, default_library
from reasoning.cached_engine import CachedEngine
from reasoning.engines import ENGINES
from reasoning.engines.base import Engine
from reasoning.fusion import fusion_request
from reasoning.inputs import derive_seed
from reasoning.store import GenerationStore
from reasoning.types import InputError, SamplingParams
from synthesis.config import FusionDataConfig
from synthesis.executor import chat_request, run_jobs
from synthesis.output import markdown_table, push_to_hub, write_card, write_dataset, write_jsonl
from synthesis.sources import load_pool

Log = Callable[[str], None]
TOKEN_KINDS = ("teacher_prompt", "teacher_completion", "fusor_prompt", "fusor_completion")
_SPEC = re.compile(r"(?P<engine>[a-z]+):(?P<model>[^@*]+?)(?:@(?P<url>[^*]+))?(?:\*(?P<n>\d+))?")


@dataclass(frozen=True)
class TeacherSpec:
    engine: str
    model: str
    base_url: tuple[str, ...] | None = None
    n: int = 1


def parse_teacher(spec: str) -> TeacherSpec:
    """`ENGINE:MODEL[@BASE_URL[,URL...]][*N]`, e.g. `openai:Qwen/Qwen3-8B@http://gpu1:8000/v1*2`."""
    m = _SPEC.fullmatch(spec.strip())
    if not m or m["engine"] not in ENGINES:
        raise InputError(f"--teacher {spec!r}: expected ENGINE:MODEL[@BASE_URL][*N] with ENGINE one of "
                         f"{', '.join(ENGINES)}, e.g. openai:Qwen/Qwen3-8B@http://localhost:8000/v1*2")
    n = int(m["n"]) if m["n"] else 1
    if n < 1:
        raise InputError(f"--teacher {spec!r}: the sample count after '*' must be >= 1")
    urls = tuple(u for u in (m["url"] or "").split(",") if u) or None
    if m["engine"] == "openai" and not urls:
        example = f"openai:{m['model'].strip()}@http://host:8000/v1" + (f"*{m['n']}" if m["n"] else "")
        raise InputError(f"--teacher {spec!r}: an openai teacher needs its server, e.g. {example}")
    return TeacherSpec(m["engine"], m["model"].strip(), urls, n)


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
            c = self.cfg
            params = SamplingParams(temperature=c.fusor_temperature, max_tokens=c.fusor_max_tokens,
                                    seed=derive_seed(c.seed, f"{p.id}/fusor"))
            req = fusion_request(p.question, out.candidates, params, c.fusion_template, self.library,
                                 max_candidate_chars=c.max_candidate_chars, request_id=f"{p.id}/fusor")
            r = await self.fusor.agenerate(req)
            out.fused, out.fused_finish = r.completions[0].text, r.completions[0].finish_reason
            out.tokens["fusor_prompt"] += r.prompt_tokens
            out.tokens["fusor_completion"] += r.completion_tokens
        except Exception as e:  # an engine that gave up after its retries: recorded, retried on a rerun
            out.failure = f"{type(e).__name__}: {e}"
        self._count["ok" if out.failure is None else "failed"] += 1
        return out

    async def _teacher(self, p: Problem, i: int, engine: Engine, n: int):
        c = self.cfg
        params = SamplingParams(n=n, temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_tokens, seed=c.seed)
        req = chat_request(self.library, c.template, params, f"{p.id}/teacher{i}", system=c.system,
                           question=p.question)
        return await engine.agenerate(req)


def grade_outcomes(outcomes: Sequence[FusionDataOutcome], timeout_s: float = 5.0) -> dict[int, dict[str, Any]]:
    """Per outcome index: each candidate's answer and correctness, the fusion's, the oracle and the majority."""
    from eval.grading.equivalence import Grader

    todo = [(k, o) for k, o in enumerate(outcomes) if o.failure is None and o.problem.gold is not None]
    pairs = [(o.problem.gold, t) for _, o in todo for t in o.candidates + [o.fused]]
    with Grader(timeout_s=timeout_s) as g:
        grades = g.grade_many(pairs)
    out, pos = {}, 0
    for k, o in todo:
        gs = grades[pos:pos + len(o.candidates) + 1]
        pos += len(gs)
        cands, fused = gs[:-1], gs[-1]
        out[k] = {"candidate_answers": [x.answer for x in cands], "candidate_correct": [x.correct for x in cands],
                  "fused_answer": fused.answer, "fused_correct": fused.correct,
                  "oracle_correct": any(x.correct for x in cands),
                  "majority_correct": maj_at_k([x.answer for x in cands], [x.correct for x in cands], len(cands))}
    return out


GRADED = ("candidate_answers", "candidate_correct", "fused_answer", "fused_correct", "oracle_correct",
          "majority_correct")


def features():
    """The dataset schema of Fusion-of-N rows (graded columns are null where nothing was graded)."""
    from datasets import Features, List, Value

    text, i64 = Value("string"), Value("int64")
    cols = {"id": text, "source": text, "prompt": text, "candidates": List(text), "candidate_models": List(text),
            "fused": text, "fused_finish_reason": text, "messages": List({"role": text, "content": text}),
            "answer": text, "candidate_answers": List(text), "candidate_correct": List(Value("bool")),
            "fused_answer": text, "fused_correct": Value("bool"), "oracle_correct": Value("bool"),
            "majority_correct": Value("float64"),
            **{f"{k}_tokens": i64 for k in TOKEN_KINDS},
            "teachers": text, "fusor": text, "template": text, "fusion_template": text, "seed": i64, "generator": text}
    return Features(cols)


def _row(o: FusionDataOutcome, graded: dict[str, Any] | None, prov: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"fusion/{o.problem.id}", "source": o.problem.benchmark, "prompt": o.problem.question,
            "candidates": o.candidates, "candidate_models": o.candidate_models, "fused": o.fused,
            "fused_finish_reason": o.fused_finish,
            "messages": [{"role": "user", "content": o.problem.question}, {"role": "assistant", "content": o.fused}],
            "answer": o.problem.gold, **dict.fromkeys(GRADED), **(graded or {}),
            **{f"{k}_tokens": v for k, v in o.tokens.items()}, **prov}


def fusion_stats(outcomes: Sequence[FusionDataOutcome], graded: dict[int, dict[str, Any]]) -> dict[str, Any]:
    ok = [o for o in outcomes if o.failure is None]
    tokens = {k: sum(o.tokens[k] for o in outcomes) for k in outcomes[0].tokens} if outcomes else {}
    st: dict[str, Any] = {"prompts": len(outcomes), "rows": len(ok), "failed": len(outcomes) - len(ok),
                          "candidates_per_prompt": len(ok[0].candidates) if ok else 0, "tokens": tokens,
                          "truncated_fusions": sum(o.fused_finish == "length" for o in ok)}
    if graded:
        g = list(graded.values())
        n = len(g)
        st["graded"] = n
        st["accuracy"] = {
            "candidate_mean": sum(sum(x["candidate_correct"]) / len(x["candidate_correct"]) for x in g) / n,
            "majority": sum(x["majority_correct"] for x in g) / n,
            "fusion": sum(x["fused_correct"] for x in g) / n,
            "oracle": sum(x["oracle_correct"] for x in g) / n}
        st["fusion_beats_oracle"] = sum(x["fused_correct"] and not x["oracle_correct"] for x in g)
        st["fusion_fixes_majority"] = sum(x["fused_correct"] and x["majority_correct"] < 0.5 for x in g)
        st["fusion_breaks_majority"] = sum(not x["fused_correct"] and x["majority_correct"] > 0.5 for x in g)
    return st


def card_body(st: dict[str, Any], prov: dict[str, Any]) -> str:
    parts = ["Fusion-of-N data (Khairi et al., \"Making, not Taking, the Best of N\", 2025) generated with parafuse: "
             "each prompt was answered by a pool of teachers, and a fusor model read every candidate and wrote one "
             "answer (`fused`). Columns: `prompt`, `candidates` with `candidate_models`, `fused`, `messages` "
             "(user/assistant turns for SFT) and, for math with a gold `answer`, each candidate's and the fusion's "
             "extracted answer and correctness.",
             "## Counts", f"{st['prompts']} prompts, **{st['rows']} rows**, {st['failed']} failed (engine errors, "
             f"retried on a rerun); {st['candidates_per_prompt']} candidates per prompt; "
             f"{st['truncated_fusions']} fusions hit the token cap."]
    if "accuracy" in st:
        acc = st["accuracy"]
        parts += [f"## Accuracy (graded rows: {st['graded']})",
                  markdown_table([{"aggregate": k, "accuracy": v} for k, v in acc.items()], ["aggregate", "accuracy"]),
                  f"Fusion correct where no candidate was: {st['fusion_beats_oracle']}; fusion right where the "
                  f"majority was wrong: {st['fusion_fixes_majority']}; fusion wrong where the majority was right: "
                  f"{st['fusion_breaks_majority']}."]
    t = st["tokens"]
    parts += ["## Tokens", markdown_table([{"stage": k, "tokens": v} for k, v in t.items()], ["stage", "tokens"]),
              "## Provenance", "\n".join(f"- {k}: `{v}`" for k, v in prov.items())]
    return "\n\n".join(parts)


def synthesize_fusion_data(cfg: FusionDataConfig, teachers: Sequence[tuple[Engine, int]], fusor: Engine,
                           out_dir: Path, library: PromptLibrary | None = None, progress: bool = True,
                           hub_repo: str | None = None, hub_private: bool = False,
                           log: Log = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Generate, grade (math), and write the dataset folder with its card; returns the statistics."""
    from parafuse import __version__

    cfg.check()
    library = library or default_library()
    library.variables(cfg.template), library.variables(cfg.fusion_template)  # fail now on a bad template
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    problems = []
    for source in [s.strip() for s in cfg.input.split(",") if s.strip()]:
        problems += load_pool(source, cfg.data_dir, cfg.question_field, cfg.answer_field, cfg.id_field, cfg.limit)
    log(f"{len(problems)} prompts x {sum(n for _, n in teachers)} candidates from {len(teachers)} teacher(s)")
    t0 = time.perf_counter()
    with GenerationStore(out_dir / "store.jsonl") as store:
        run = FusionDataRun(cfg, teachers, fusor, store, library, progress)
        outcomes = run.run(problems)
    elapsed = time.perf_counter() - t0
    do_grade = cfg.grade == "yes" or (cfg.grade == "auto" and any(p.gold is not None for p in problems))
    graded = grade_outcomes(outcomes) if do_grade else {}
    prov = {"teachers": ", ".join(f"{e.kind}:{e.model}*{n}" for e, n in teachers),
            "fusor": f"{fusor.kind}:{fusor.model}", "template": f"{cfg.template}@{library.version(cfg.template)}",
            "fusion_template": f"{cfg.fusion_template}@{library.version(cfg.fusion_template)}", "seed": cfg.seed,
            "generator": f"parafuse {__version__}"}
    rows = [_row(o, graded.get(k), prov) for k, o in enumerate(outcomes) if o.failure is None]
    failures = [{"id": f"fusion/{o.problem.id}", "prompt": o.problem.question, "error": o.failure}
                for o in outcomes if o.failure is not None]
    st = fusion_stats(outcomes, graded)
    st.update(requests_sent=run.requests_sent, requests_from_store=run.requests_from_store,
              generation_s=round(elapsed, 2))
    write_dataset(out_dir, rows, features())
    write_jsonl(out_dir / "failures.jsonl", failures)
    (out_dir / "stats.json").write_text(json.dumps(st, indent=1))
    write_card(out_dir, "Fusion-of-N data", card_body(st, prov), ["synthetic", "fusion-of-n", "parafuse"],
               cfg.to_dict())
    if hub_repo:
        log(f"pushed to the Hub: {push_to_hub(out_dir, hub_repo, hub_private)}")
    return st


def summary(st: dict[str, Any], out: str) -> str:
    lines = [f"{st['prompts']} prompts: {st['rows']} rows, {st['failed']} failed -> {out}/data/train.parquet "
             f"(card {out}/README.md)",
             f"requests: {st['requests_sent']} sent, {st['requests_from_store']} from the store; "
             f"generation {st['generation_s']:.1f} s; tokens "
             + ", ".join(f"{k} {v:,}" for k, v in st["tokens"].items())]
    if "accuracy" in st:
        lines.append("accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in st["accuracy"].items()))
    return "\n".join(lines)
