"""A scripted Engine for pipeline tests: answers are decided by the test, calls are counted.

Pipelines also run against the real tiny model elsewhere; this double exists so a test can
control which samples are right and check the arithmetic built on them.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence

from reasoning.engines.base import Engine
from reasoning.types import Completion, Failure, Request, Result

# policy(request, sample_index) -> (text, finish_reason)
Policy = Callable[[Request, int], tuple[str, str]]


class ScriptedEngine(Engine):
    kind = "scripted"

    def __init__(self, policy: Policy, model: str = "scripted"):
        super().__init__(model)
        self.policy = policy
        self.calls: list[Request] = []

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        for i, req in enumerate(requests):
            self.calls.append(req)
            comps = []
            for j in range(req.params.n):
                text, finish = self.policy(req, j)
                comps.append(Completion(text=text, tokens=max(1, len(text.split())), finish_reason=finish))
            yield i, Result(comps, prompt_tokens=10, latency_s=0.001 + time.perf_counter() * 0,
                            engine=self.kind, model=self.model, request_id=req.id)


def question_of(req: Request) -> str:
    text = req.prompt if req.prompt is not None else req.messages[-1]["content"]
    m = re.search(r"Problem: (.*)", text)
    return m.group(1).strip() if m else text
