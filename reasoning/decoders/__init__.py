"""Parallel-thinking decoders: Parallel-R1, ThreadWeaver and ParaThinker on any stock engine.

Each method module has a config dataclass and `async def decode(engine, source, cfg, key="")`
returning a `DecodeResult`; `source` is raw prompt text or chat messages. Branch requests of
a block are issued together (`asyncio.gather` over `engine.agenerate`), so an engine that
batches concurrent requests (vllm, openai) runs them side by side. `run_decodes` decodes many
prompts at once, bounded; wrap the engine in `reasoning.cached_engine.CachedEngine` to make
it resumable.

    from reasoning.decoders import get_decoder, run_decodes
    decode, Config = get_decoder("threadweaver")
    [res] = run_decodes(engine, "threadweaver", [("q1", messages, Config.from_dict({"max_tokens": 256}))])
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reasoning.decoders.base import DecodeResult, DecoderConfig, Segment
from reasoning.decoders.parallel_r1 import ParallelR1Config
from reasoning.decoders.parathinker import ParaThinkerConfig
from reasoning.decoders.threadweaver import ThreadWeaverConfig
from reasoning.engines.base import Engine
from reasoning.methods import METHODS, REGISTRY, get_method
from reasoning.types import InputError

# method name -> decoder config class, read from the method registry
CONFIGS: dict[str, type[DecoderConfig]] = {name: method.config_class for name, method in REGISTRY.items()}

Job = tuple[str, "str | Sequence[Mapping[str, str]]", DecoderConfig]  # (key, prompt or messages, config)


def get_decoder(method: str) -> tuple[Callable[..., Any], type[DecoderConfig]]:
    """(async decode function, config class) of a registered method."""
    entry = get_method(method)
    return entry.decode, entry.config_class


async def adecode_many(engine: Engine, method: str, jobs: Sequence[Job], concurrency: int = 8,
                       on_done: Callable[[int, DecodeResult | BaseException], None] | None = None,
                       ) -> list[DecodeResult | BaseException]:
    """Decode every job with at most `concurrency` decodes in flight; a failed decode is its exception."""
    decode, _ = get_decoder(method)
    sem = asyncio.Semaphore(max(1, concurrency))
    out: list[DecodeResult | BaseException | None] = [None] * len(jobs)

    async def one(i: int, job: Job):
        key, source, cfg = job
        async with sem:
            try:
                res: DecodeResult | BaseException = await decode(engine, source, cfg, key=key)
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - one prompt's failure is reported, not fatal to the rest
                res = e
        out[i] = res
        if on_done is not None:
            on_done(i, res)

    await asyncio.gather(*(one(i, j) for i, j in enumerate(jobs)))
    return out  # type: ignore[return-value]


def run_decodes(engine: Engine, method: str, jobs: Sequence[Job], concurrency: int = 8,
                on_done: Callable[[int, DecodeResult | BaseException], None] | None = None,
                progress: bool = False, desc: str | None = None) -> list[DecodeResult | BaseException]:
    """`adecode_many` on a fresh event loop, with a progress bar over prompts."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc=desc or method, unit="prompt", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)

    def done(i, res):
        bar.update(1)
        if isinstance(res, DecodeResult):
            bar.set_postfix(tok=res.total_tokens, refresh=False)
        if on_done is not None:
            on_done(i, res)

    async def main():
        try:
            return await adecode_many(engine, method, jobs, concurrency, done)
        finally:
            await engine.aclose()  # the openai engine's HTTP session belongs to this loop

    try:
        return asyncio.run(main())
    finally:
        bar.close()


__all__ = ["CONFIGS", "METHODS", "DecodeResult", "DecoderConfig", "Segment", "ParaThinkerConfig", "ParallelR1Config",
           "ThreadWeaverConfig", "adecode_many", "get_decoder", "run_decodes"]
