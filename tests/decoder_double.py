"""The scripted engine the decoder tests drive, and the helpers they share.

`Script(policy)` is `reasoning.engines.scripted.ScriptedEngine`: it answers with what the test's
`policy(request) -> (text, "stop" | "length")` says and honours stop strings and max_tokens the way
real engines do (a "token" is a whitespace word, plus one for a stop string or EOS).
"""
from __future__ import annotations

from reasoning.decoders import DecodeResult, run_decodes
from reasoning.engines.scripted import ScriptedEngine
from reasoning.types import Request

CHAT = ({"role": "user", "content": "What is 3 + 4?"},)
BASE = "<user>What is 3 + 4?</user><assistant>"


class Script(ScriptedEngine):
    """The product's scripted engine with a short delay, so the branches of a block overlap in time."""

    def __init__(self, policy, delay: float = 0.005):
        super().__init__("script-model", policy=policy, delay=delay)


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


def check_usage(res: DecodeResult, engine=None) -> None:
    assert res.total_tokens == sum(r["completion_tokens"] for r in res.requests)
    assert res.generated_critical_path_tokens == critical(res)
    if engine is not None and res.token_counter != "requests":  # the one critical-path definition
        from reasoning.formats.metrics import trace_metrics

        m = trace_metrics(parse(res.format, res.text), engine.count_tokens)
        assert (res.critical_path_tokens, res.response_tokens) == (m.critical_path_tokens, m.total_tokens)
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
