"""`CachedEngine`: any engine behind the generation store, so multi-request pipelines resume.

A decoder issues many dependent requests per prompt (main text, branches, summaries). Put the
engine behind `CachedEngine(engine, store)` and every finished request is appended to the
store the moment it returns; a rerun after a crash or a kill replays the finished ones from
the store (in the same order, with the same texts, so the decoder takes the same path) and
sends only what was never finished. `calls` counts the requests that reached the inner
engine, `hits` the ones answered from the store.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from reasoning.engines.base import Engine
from reasoning.store import GenerationStore, request_key
from reasoning.types import Failure, Request, Result


class CachedEngine(Engine):
    """An Engine that answers from a GenerationStore first and records what the inner engine returns.

    Keys are `request_key(inner.kind, inner.model, request)`, the same keys `parafuse reason
    generate` writes, so a store can be shared between the two. Identical requests in flight
    at the same time are sent once. The inner engine is not closed by `close()`: its owner does that.
    """

    def __init__(self, engine: Engine, store: GenerationStore):
        super().__init__(engine.model, engine.tokenizer_name)
        self.inner = engine
        self.store = store
        self.kind = engine.kind
        self.calls = 0  # requests sent to the inner engine
        self.hits = 0  # requests answered from the store
        self._in_flight: dict[str, asyncio.Future] = {}
        self._ready: asyncio.Task | None = None

    # ---- what the wrapper passes through ------------------------------------------------
    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str:
        return self.inner.render_chat(messages, add_generation_prompt=add_generation_prompt)

    def prompt_text(self, request: Request) -> str:
        return self.inner.prompt_text(request)

    def truncate(self, text: str, n_tokens: int) -> str:
        return self.inner.truncate(text, n_tokens)

    def decode_ids(self, ids) -> str:
        return self.inner.decode_ids(ids)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "store": str(self.store.path)}

    def key(self, request: Request) -> str:
        return request_key(self.inner.kind, self.inner.model, request)

    async def aclose(self) -> None:
        """Close the inner engine's per-event-loop resources (the openai engine's HTTP session)."""
        await self.inner.aclose()

    # ---- generation ---------------------------------------------------------------------
    async def agenerate(self, request: Request) -> Result:
        key = self.key(request)
        cached = self.store.result(key)
        if cached is not None:
            self.hits += 1
            return cached
        await self._check_ready()  # before the in-flight lookup: no await between it and registering
        waiting = self._in_flight.get(key)
        if waiting is not None:  # the same request is already on its way: share its answer
            self.hits += 1
            return await asyncio.shield(waiting)
        fut = asyncio.get_running_loop().create_future()
        self._in_flight[key] = fut
        self.calls += 1
        try:
            result = await self.inner.agenerate(request)
        except Exception as e:
            self.store.put(key, request, Failure(error=f"{type(e).__name__}: {e}", request_id=request.id))
            fut.set_exception(e)
            fut.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            self._in_flight.pop(key, None)
        self.store.put(key, request, result)
        fut.set_result(result)
        return result

    async def _check_ready(self) -> None:
        """Before the first request that must really be sent, make sure a server answers at all.

        A wrong --base-url then stops the run at once with one clear error (an InputError),
        instead of every request failing after its retries; a run answered entirely from the
        store never needs the server.
        """
        if self._ready is None or self._ready.get_loop() is not asyncio.get_running_loop():
            self._ready = asyncio.ensure_future(self.inner.check_ready())
        await asyncio.shield(self._ready)

    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        keys = [self.key(r) for r in requests]
        todo: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            cached = self.store.result(k)
            if cached is not None:
                self.hits += 1
                yield i, cached
            else:
                todo.setdefault(k, []).append(i)
        order = list(todo)
        self.calls += len(order)
        for j, outcome in self.inner.iter_results([requests[todo[k][0]] for k in order]):
            k = order[j]
            self.store.put(k, requests[todo[k][0]], outcome)
            for i in todo[k]:
                yield i, outcome
