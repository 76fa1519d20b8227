"""Run many independent multi-request jobs concurrently, with a progress bar.

Each job (one fused problem, one Fusion-of-N prompt) is a coroutine that makes a few
dependent engine calls. Jobs run in a bounded pool of workers, so the next job's first request
is sent while others are still solving: there is no barrier between pipeline stages, and the
engine always has work up to its own in-flight limit.
"""
from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_jobs(jobs: Sequence[T], worker: Callable[[T], Awaitable[R]], concurrency: int, engines: Sequence[Any] = (),
             progress: bool = True, desc: str = "synth", postfix: Callable[[], dict] | None = None) -> list[R]:
    """`worker(job)` for every job, at most `concurrency` at a time; results in job order.

    `engines` are closed for this event loop at the end (the openai engine's HTTP session
    belongs to the loop that opened it). A worker should catch its own errors and return a
    failure record: an exception here stops the run (finished requests are already stored).
    """
    from tqdm.auto import tqdm

    results: list[R | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit="item", disable=not progress, file=sys.stderr,
               dynamic_ncols=True, smoothing=0.05)

    async def main():
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(jobs)):
            queue.put_nowait(i)

        async def work():
            while not queue.empty():
                i = queue.get_nowait()
                results[i] = await worker(jobs[i])
                bar.update(1)
                if postfix is not None:
                    bar.set_postfix(postfix(), refresh=False)

        try:
            await asyncio.gather(*(work() for _ in range(max(1, min(concurrency, len(jobs))))))
        finally:
            for engine in engines:
                await engine.aclose()

    # Full collections scan every result kept so far and pause the event loop for tenths of a
    # second on large runs; young collections still free the short-lived cycles.
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], max(thresholds[2], 1000))
    try:
        asyncio.run(main())
    finally:
        gc.set_threshold(*thresholds)
        bar.close()
    return results  # type: ignore[return-value]
