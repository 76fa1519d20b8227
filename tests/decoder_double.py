"""`Script`, the async engine double the decoder tests drive, and the helpers they share.

`Script(policy)` answers with what the test's `policy(request) -> (text, "stop" | "length")` says
and honours stop strings and max_tokens the way real engines do (a "token" is a whitespace word,
plus one for a stop string or EOS).
"""
from __future__ import annotations

import asyncio
import re

from reasoning.decoders import DecodeResult, run_decodes
from reasoning.engines.base import Engine
from reasoning.types import Completion, Request, Result

CHAT = ({"role": "user", "content": "What is 3 + 4?"},)
BASE = "<user>What is 3 + 4?</user><assistant>"


class Script(Engine):
    """An async engine double: `policy(request) -> (text, "stop" | "length")` says what the model
    would write with no limits; the double cuts it at the earliest stop string or max_tokens."""

    kind = "script"

    def __init__(self, policy, delay: float = 0.005):
        super().__init__("script-model")
        self.policy = policy
        self.delay = delay
        self.requests: list[Request] = []
        self.in_flight = 0
        self.peak = 0

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    def _complete(self, req: Request) -> Result:
        self.requests.append(req)
        comps = [self._cut(*self.policy(req), req.params) for _ in range(req.params.n)]
        prompt = self.prompt_text(req)
        return Result(comps, prompt_tokens=len(prompt.split()), latency_s=self.delay, engine=self.kind,
                      model=self.model, request_id=req.id)

    @staticmethod
    def _cut(text: str, finish: str, p) -> Completion:
        at, stop = len(text), None
        for s in p.stop:
            i = text.find(s)
            if 0 <= i < at:
                at, stop = i, s
        words = list(re.finditer(r"\S+", text[:at]))
        if len(words) > p.max_tokens:
            return Completion(text[: words[p.max_tokens - 1].end()], p.max_tokens, "length")
        if stop is not None:
            body = text[: at + len(stop)] if p.include_stop_str_in_output else text[:at]
            return Completion(body, len(words) + 1, "stop", stop)
        return Completion(text, len(words) + (finish == "stop"), finish)

    async def agenerate(self, req: Request) -> Result:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)  # lets the other branches of a block start
        finally:
            self.in_flight -= 1
        return self._complete(req)

    def iter_results(self, requests):
        for i, r in enumerate(requests):
            yield i, self._complete(r)


def decode(method: str, engine, cfg, source=CHAT, key: str = "q") -> DecodeResult:
    [res] = run_decodes(engine, method, [(key, source, cfg)])
    if isinstance(res, BaseException):
        raise res
    return res


def suffix(req: Request) -> str:
    return req.prompt[len(BASE):]


def critical(res: DecodeResult) -> int:
    """Sequential requests plus the longest branch of each block, from the usage rows."""
    seq = sum(r["completion_tokens"] for r in res.requests if r["role"] not in ("path", "thread"))
    blocks: dict[int, int] = {}
    for r in res.requests:
        if r["role"] in ("path", "thread"):
            blocks[r["block"]] = max(blocks.get(r["block"], 0), r["completion_tokens"])
    return seq + sum(blocks.values())


def check_usage(res: DecodeResult) -> None:
    assert res.total_tokens == sum(r["completion_tokens"] for r in res.requests)
    assert res.critical_path_tokens == critical(res)
    assert res.wall_s > 0


def parse(fmt: str, text: str):
    """The format's parse tree, checking structure only (a random model writes no final answer)."""
    from reasoning.formats import get_format

    module = get_format(fmt)
    return module.parse(text, **getattr(module, "STRUCTURE_ONLY", {}))



# ---- a ThreadWeaver script (the decoder tests and the resume tests use it) ------------------------

OUTLINES = "Plan.\n<Parallel>\n<Outlines>\n<Outline>1: add</Outline>\n<Outline>2.1: check</Outline>\n</Outlines> never"


def tw_policy(thread_2="\nseven holds\n</Thread> never", finish="stop"):
    def policy(req):
        s = suffix(req)
        if s.endswith("\n<Thread>\n1:"):
            return " 3 + 4 = 7\n</Thread> never", "stop"
        if s.endswith("\n<Thread>\n2.1:"):
            return thread_2, finish
        if "</Thread>" in s:
            return "</Parallel>\nSo the answer is \\boxed{7}.", "stop"
        return OUTLINES, "stop"
    return policy
