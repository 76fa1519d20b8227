"""`scripted` engine: no model; every answer comes from a policy (tests, benches, symbolic teachers).

A policy is `policy(request, sample_index) -> (text, finish_reason)` (or `policy(request)`): what
a model would write with no limits, and "stop" (it ended with EOS) or "length". The engine then
behaves as a real one does: the earliest stop string ends the text (kept only with
`include_stop_str_in_output`), `max_tokens` cuts it, and tokens are counted the same way for
every request, a "token" being a whitespace-separated word, plus one for the stop string or EOS
that ended it. Prompt tokens are the words of the prompt text.

On the command line the model names the policy, `--engine scripted --model package.module:function`;
in code, pass `policy=`. `calls` keeps every request the engine answered, in order, which is
what pipeline tests count and inspect.
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from reasoning.engines.base import Engine
from reasoning.types import Completion, Failure, InputError, Request, Result, SamplingParams

Policy = Callable[..., tuple[str, str]]
WORD = re.compile(r"\S+")


def load_policy(spec: str) -> Policy:
    """`package.module:function` -> that function (the command line's way to name a policy)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise InputError(f"--engine scripted needs --model MODULE:FUNCTION naming a policy, got {spec!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise InputError(f"cannot load the scripted policy {spec!r}: {e}") from None


def cut(text: str, finish: str, params: SamplingParams) -> Completion:
    """The completion a real engine would return for `text` under `params` (stop strings, max_tokens)."""
    at, stop = len(text), None
    for s in params.stop:
        i = text.find(s)
        if 0 <= i < at:
            at, stop = i, s
    words = list(WORD.finditer(text[:at]))
    if len(words) > params.max_tokens:
        return Completion(text[: words[params.max_tokens - 1].end()], params.max_tokens, "length")
    if stop is not None:
        body = text[: at + len(stop)] if params.include_stop_str_in_output else text[:at]
        return Completion(body, len(words) + 1, "stop", stop)
    return Completion(text, len(words) + (finish == "stop"), finish)


def truncate_words(text: str, n_tokens: int) -> str:
    """The prefix of `text` that holds its first `n_tokens` scripted tokens (whitespace-separated words)."""
    if n_tokens <= 0:
        return ""
    words = list(WORD.finditer(text))
    return text if n_tokens >= len(words) else text[: words[n_tokens - 1].end()]


class ScriptedEngine(Engine):
    """An engine that answers from a policy (see the module docstring)."""

    kind = "scripted"

    def __init__(self, model: str | Policy = "scripted", policy: Policy | None = None, delay: float = 0.0,
                 tokenizer: str | None = None, **_: Any):
        if callable(model):  # ScriptedEngine(policy): the policy is the model
            model, policy = "scripted", model
        super().__init__(model, tokenizer)
        self.policy = policy if policy is not None else load_policy(model)
        try:
            self._arity = len([p for p in inspect.signature(self.policy).parameters.values()
                               if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
        except (TypeError, ValueError):
            self._arity = 2
        self.delay = delay
        self.calls: list[Request] = []
        self.in_flight = 0
        self.peak = 0  # most requests in flight at once through `agenerate`

    @property
    def requests(self) -> list[Request]:
        return self.calls

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str:
        """A fixed, readable chat rendering (no tokenizer needed): `<role>content</role>...<assistant>`."""
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def truncate(self, text: str, n_tokens: int) -> str:
        """Cut to `n_tokens` words, the scripted engine's token (its completions carry no token ids)."""
        return truncate_words(text, n_tokens)

    def decode_ids(self, ids) -> str:
        raise TypeError("the scripted engine has no token ids to decode; use truncate(text, n_tokens)")

    def count_tokens(self, text: str) -> int:
        """Words, as this engine counts a completion's tokens (without the stop string or EOS)."""
        return len(WORD.findall(text))

    def answer(self, request: Request) -> Result:
        """Answer one request now (all its n samples)."""
        self.calls.append(request)
        completions = []
        for index in range(request.params.n):
            reply = self.policy(request, index) if self._arity >= 2 else self.policy(request)
            text, finish = (reply, "stop") if isinstance(reply, str) else reply
            completions.append(cut(text, finish, request.params))
        return Result(completions, prompt_tokens=len(WORD.findall(self.prompt_text(request))),
                      latency_s=self.delay, engine=self.kind, model=self.model, request_id=request.id)

    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        return self.one_at_a_time(requests, self.answer)  # a policy that raises: that request's failure

    async def agenerate(self, request: Request) -> Result:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)  # lets the other branches of a block start first
        finally:
            self.in_flight -= 1
        return self.answer(request)


def question_of(request: Request) -> str:
    """The problem text in a rendered math prompt (`Problem: ...`), else the whole user message."""
    text = request.prompt if request.prompt is not None else request.messages[-1]["content"]
    found = re.search(r"Problem: (.*)", text)
    return found.group(1).strip() if found else text
