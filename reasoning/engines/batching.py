"""Concurrent requests to an in-process engine, answered in batches.

An in-process engine's `agenerate` runs one request at a time. A decoder issues its branch
requests together, and many decodes run at once (`adecode_many`): `BatchingEngine` collects the
requests that are waiting while a batch runs and hands them to the engine's `generate` together,
so the hf engine decodes them in one left-padded `generate` call per compatible group (its own
batching rules, `HFEngine.iter_results`). No timer: the first request starts a batch at once, and
whatever arrives meanwhile forms the next one.
"""
from __future__ import annotations

import asyncio
from typing import Any

from reasoning.engines.base import Engine
from reasoning.types import Failure, Request, Result


class BatchingEngine:
    """Wraps an in-process engine; every other attribute (tokenizer, render_chat, count_tokens, ...) is the
    wrapped engine's."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._waiting: list[tuple[Request, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    async def agenerate(self, request: Request) -> Result:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # let every coroutine that is ready add its request first
            batch, self._waiting = self._waiting, []
            try:
                results = await asyncio.to_thread(self.engine.generate, [request for request, _ in batch])
            except BaseException as e:  # noqa: BLE001 - every waiting request learns of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (request, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, Failure):
                    future.set_exception(RuntimeError(f"{self.engine.kind} engine failed on request "
                                                      f"{request.id!r}: {result.error}"))
                else:
                    future.set_result(result)

    async def aclose(self) -> None:
        await self.engine.aclose()


__all__ = ["BatchingEngine"]
