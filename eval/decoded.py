"""The decoded strategies: n decodes per problem with a parallel-thinking decoder, one per method
registered in `reasoning.methods` (Parallel-R1, arXiv 2509.07980; ThreadWeaver, arXiv 2512.07843;
ParaThinker, arXiv 2509.04475), each scored as one point at budget 1.

Here are the settings check run before any engine starts (`check_decoder_settings`), the line said
once per strategy (`decoder_line`), how a decode's tokens and end are counted, the trace statistics
results.json reports per strategy (`format_statistics`), and `DecodedStrategy`, the `EvalRun` mixin
that runs the decodes through the run's store.
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import TYPE_CHECKING, Any

from eval.records import Problem, Sample, Scored, outcome_rates
from eval.strategies import DECODED
from reasoning.inputs import derive_seed
from reasoning.types import InputError

if TYPE_CHECKING:  # hints only: the decoders load when a decoded strategy runs
    from eval.config import EvalConfig
    from prompts import PromptLibrary
    from reasoning.decoders import DecodeResult


DECODE_CONCURRENCY = 32  # decodes in flight at once for the decoder strategies


def response_tokens(decoded: DecodeResult) -> int:
    """The response's tokens (generated and inserted), as its critical path counts them; the generated
    count where the decode has none (a failed decode, an older store)."""
    return decoded.response_tokens or decoded.total_tokens


def decode_finish(stop_reason: str) -> str:
    """A decode's finish_reason for the audit trail: cut by a cap (length), failed, or stopped."""
    if stop_reason == "failed":
        return "failed"
    return "length" if stop_reason in ("length", "token_budget", "truncated_thread", "iteration_cap") else "stop"


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


class DecodedStrategy:
    """`EvalRun._decoded`: it reads the run's cfg, engine, progress and format_stats, and calls its
    `_messages`, `_grader`, `_grade_pool` and `_record`."""

    def _decoded(self, strategy: str, problems, store, records: list[Sample]) -> dict[int, Scored]:
        """n decodes per problem (`decoder_samples` where set) with a parallel-thinking decoder, as one point
        at budget 1.

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
        from eval.run import log  # eval.run imports this module, so its log is looked up once a run is going

        cfg, method = self.cfg, get_method(strategy)
        count = cfg.decodes_per_problem()
        base = cfg.pool.base_seed(cfg.seed)
        own = decoder_settings(cfg, strategy)
        grader = self._grader(own.grader)

        def settings(i: int, p: Problem):
            sample = dataclasses.replace(own.sampling, seed=derive_seed(base, f"{p.id}/{strategy}/{i}"))
            return method.config_for_run(sample, max_total_tokens=own.max_total_tokens, **own.overrides)

        jobs = [(f"{p.id}/{i}", self._messages(p, own.template), settings(i, p)) for p in problems
                for i in range(count)]
        log(decoder_line(own, jobs[0][2] if jobs else None))
        # An in-process engine answers one call at a time; a decoder's branches and the decodes in flight are
        # many concurrent calls, so they are collected into batched `generate` calls (the servers batch their own).
        engine = self.engine
        if getattr(engine, "kind", None) == "hf":
            from reasoning.engines.batching import BatchingEngine

            engine = BatchingEngine(engine)
        cached = CachedEngine(engine, store)
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
        per = {p.id: outs[k * count:(k + 1) * count] for k, p in enumerate(problems)}
        self.format_stats[strategy] = format_statistics(
            decoded, [[o for o in per[p.id] if o.stop_reason != "failed"] for p in problems]) | {
            "failed_decodes": len(errors)}
        # Tokens on the Pareto axes are the response's (inserted headers included), the same count the
        # critical path is taken from, so a decode's critical path never exceeds its total.
        graded = self._grade_pool(problems, [[(o.text, response_tokens(o)) for o in per[p.id]] for p in problems],
                                  [0.0] * len(problems), [None] * len(problems),
                                  [[decode_finish(o.stop_reason) for o in per[p.id]] for p in problems], grader)
        s = Scored(axis="decodes", estimator=f"mean of {count} decodes per problem")
        for k, p in enumerate(problems):
            for i, (smp, o) in enumerate(zip(graded[p.id], per[p.id])):
                smp = dataclasses.replace(smp, latency_s=o.wall_s, seed=jobs[k * count + i][2].sampling.seed)
                if k * count + i in errors:
                    smp = dataclasses.replace(smp, answer=None, extractor="none", correct=False,
                                              grade_reason=f"decode failed: {errors[k * count + i]}")
                records.append(self._record(p, strategy, 1, smp, response_tokens(o), o.critical_path_tokens, o.wall_s,
                                            i))
            s.add(statistics.mean(x.correct for x in graded[p.id]),
                  statistics.mean(response_tokens(o) for o in per[p.id]),
                  statistics.mean(o.critical_path_tokens for o in per[p.id]),
                  statistics.mean(o.wall_s for o in per[p.id]), *outcome_rates(graded[p.id]))
        return {1: s}
