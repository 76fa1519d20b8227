"""The Engine contract: one interface that hf, vllm and openai implement.

An engine turns `Request`s into `Result`s (or `Failure`s). `iter_results` yields them in
completion order, which is what lets the generation store flush each one as soon as it is
done; `generate` is the ordered, blocking form; `agenerate` is the awaitable form that
decoders use to issue many dependent requests at once.
"""
from __future__ import annotations

import asyncio
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from reasoning.types import Failure, InputError, Request, Result


def looks_like_local_path(model: str) -> bool:
    """A Hub id is `name` or `org/name`; anything else is meant as a path."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model


def check_model(model: str) -> str:
    """Fail early, and clearly, on a model path that does not exist.

    Hub ids (`org/name`) pass through: users with the Hub load them as usual.
    """
    if not model:
        raise InputError("--model is required: a local model directory or a Hub id like Qwen/Qwen3-0.6B")
    p = Path(model).expanduser()
    if p.exists():
        if p.is_dir() and not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise InputError(f"model directory {model} has no config.json (nor a PEFT adapter_config.json); is it "
                             "a saved transformers model?")
        return str(p)
    if looks_like_local_path(model):
        raise InputError(
            f"model path {model} does not exist; pass a local model directory "
            "(e.g. one made by `parafuse model tiny DIR`) or a Hub id like Qwen/Qwen3-0.6B"
        )
    return model


class Engine(ABC):
    """Base class of all engines. Subclasses implement `iter_results` (and `describe`)."""

    kind: str = "base"

    def __init__(self, model: str, tokenizer: str | None = None):
        self.model = model
        self.tokenizer_name = tokenizer or model
        self._tokenizer = None
        self._alock = threading.Lock()

    # ---- tokenizer and chat rendering -------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
            except OSError as e:
                raise InputError(
                    f"cannot load a tokenizer from {self.tokenizer_name!r}: {e}. "
                    "Pass --tokenizer with a local tokenizer directory or Hub id."
                ) from None
        return self._tokenizer

    def render_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The text the model sees for `messages` (its chat template).

        To continue a partly written assistant turn, append the partial text to
        `render_chat(history)` and send it as a raw-text `prompt`.
        """
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def prompt_text(self, request: Request) -> str:
        return request.prompt if request.prompt is not None else self.render_chat(request.messages)

    # ---- generation ---------------------------------------------------------------------
    @abstractmethod
    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        """Yield (index into `requests`, Result or Failure) as each request finishes."""

    @staticmethod
    def one_at_a_time(requests: Sequence[Request], answer) -> Iterator[tuple[int, Result | Failure]]:
        """`iter_results` for an engine that answers requests one by one with `answer(request)`: an
        exception is that request's recorded Failure (never dropped); an InputError stops the run."""
        for i, request in enumerate(requests):
            try:
                yield i, answer(request)
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - recorded as a failure, never dropped
                yield i, Failure(error=f"{type(e).__name__}: {e}", request_id=request.id)

    def generate(self, requests: Sequence[Request]) -> list[Result | Failure]:
        out: list[Result | Failure | None] = [None] * len(requests)
        for i, r in self.iter_results(requests):
            out[i] = r
        return out  # type: ignore[return-value]

    def generate_one(self, request: Request) -> Result:
        r = self.generate([request])[0]
        if isinstance(r, Failure):
            raise RuntimeError(f"{self.kind} engine failed on request {request.id!r}: {r.error}")
        return r

    async def agenerate(self, request: Request) -> Result:
        """Awaitable generation of one request.

        In-process engines run one call at a time in a worker thread; the openai engine
        overrides this with true concurrency.
        """
        def run():
            with self._alock:
                return self.generate_one(request)

        return await asyncio.to_thread(run)

    def describe(self) -> dict[str, Any]:
        """Engine settings for provenance. Never includes secrets."""
        return {"engine": self.kind, "model": self.model}

    async def check_ready(self) -> None:  # noqa: B027 - in-process engines are ready once built
        """Fail fast, with a clear error, when the engine cannot answer (the openai engine asks its servers)."""

    async def aclose(self) -> None:  # noqa: B027 - engines without per-event-loop resources need not override it
        """Release what belongs to the running event loop (the openai engine's HTTP session)."""

    def close(self) -> None:  # noqa: B027 - engines without resources need not override it
        """Release the model, worker processes or HTTP sessions."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
