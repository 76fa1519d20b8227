"""An engine that is built on its first generation request, so a fully cached rerun loads no model.

`eval run` cannot list its requests up front (decoders and budget forcing decide what to ask as
they go), so instead of checking the store first as `reason generate` does, it hands the run a
`DeferredEngine`: chat rendering needs only the tokenizer, and the store answers every request
it holds, so the model is loaded only if something is missing.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from reasoning.engines.base import Engine
from reasoning.types import Failure, Request, Result


class DeferredEngine(Engine):
    """Stands for the engine `build()` makes, under the (kind, model) identity it will have."""

    def __init__(self, build: Callable[[], Engine], kind: str, model: str, tokenizer: str | None = None,
                 on_start: Callable[[], None] | None = None):
        super().__init__(model, tokenizer)
        self.kind = kind
        self._build, self._on_start = build, on_start
        self._inner: Engine | None = None
        self._start_lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._inner is not None

    def inner(self) -> Engine:
        with self._start_lock:
            if self._inner is None:
                if self._on_start is not None:
                    self._on_start()
                self._inner = self._build()
            return self._inner

    def truncate(self, text: str, n_tokens: int) -> str:
        """Cut as the engine will: its tokenizer, which needs no model. Only hf and vllm engines are
        deferred (eval.cli.deferred builds model-free ones at once), so both cut with the tokenizer."""
        if self._inner is not None:
            return self._inner.truncate(text, n_tokens)
        return super().truncate(text, n_tokens)

    def decode_ids(self, ids) -> str:
        return self._inner.decode_ids(ids) if self._inner is not None else super().decode_ids(ids)

    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        if not requests:
            return iter(())
        return self.inner().iter_results(requests)

    async def agenerate(self, request: Request) -> Result:
        return await self.inner().agenerate(request)

    def count_tokens(self, text: str) -> int:
        # a started engine counts as it generated; before that, the tokenizer alone (no model load)
        return self._inner.count_tokens(text) if self._inner is not None else super().count_tokens(text)

    def describe(self) -> dict[str, Any]:
        if self._inner is not None:
            return self._inner.describe()
        return {"engine": self.kind, "model": self.model, "started": False,
                "note": "not started: every request was answered from the store"}

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
