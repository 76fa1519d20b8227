"""Run requests through an engine and the generation store: resumable, with progress."""
from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from reasoning.engines.base import Engine
from reasoning.store import GenerationStore, request_key
from reasoning.types import Failure, Request, Result


@dataclass
class RunSummary:
    """Counts and token usage of one run (what the CLI prints at the end)."""

    requests: int = 0
    cached: int = 0
    ok: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.completion_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0
        s = (f"{self.requests} requests: {self.ok} ok ({self.cached} already in the store), {self.failed} failed; "
             f"prompt tokens {self.prompt_tokens:,}, completion tokens {self.completion_tokens:,} "
             f"generated now in {self.elapsed_s:.1f} s ({rate:,.0f} tok/s)")
        return s


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="req", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def run_requests(engine: Engine, requests: Sequence[Request], store: GenerationStore,
                 progress: bool = True, desc: str = "generate") -> tuple[list[Result | Failure], RunSummary]:
    """Generate every request not already finished in `store`; return outcomes in input order.

    Identical requests (same key) are generated once and share the result. Each finished
    request is appended to the store before the next is taken, so a kill loses nothing done.
    """
    t0 = time.perf_counter()
    keys = [request_key(engine.kind, engine.model, r) for r in requests]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    todo = [k for k in first if k not in store]
    summary = RunSummary(requests=len(requests))
    outcome: dict[str, Result | Failure] = {k: store.result(k) for k in first if k in store}
    summary.cached = sum(1 for k in keys if k in outcome)
    per_key = Counter(keys)  # identical requests share one generation; the bar counts them all
    with _progress(len(requests), summary.cached, desc, progress) as bar:
        for j, res in engine.iter_results([requests[first[k]] for k in todo]):
            k = todo[j]
            store.put(k, requests[first[k]], res)
            outcome[k] = res
            if isinstance(res, Result):
                summary.prompt_tokens += res.prompt_tokens
                summary.completion_tokens += res.completion_tokens
                bar.set_postfix(tok=f"{summary.completion_tokens:,}", refresh=False)
            bar.update(per_key[k])
    results = [outcome[k] for k in keys]
    summary.ok = sum(isinstance(r, Result) for r in results)
    summary.failed = len(results) - summary.ok
    summary.errors = sorted({r.error for r in results if isinstance(r, Failure)})[:5]
    summary.elapsed_s = time.perf_counter() - t0
    return results, summary
