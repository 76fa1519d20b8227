"""A scripted teacher for tests and benches: well-formed synthesis replies with no model behind them.

Plug it into the fault server (`--responder reasoning.testing.teacher:scripted_teacher`) or wrap it in a
test engine. It answers MathFusion fusion prompts with the three requested sections (and, for
a seeded share of attempts, with a malformed reply, so retries and failure records get
exercised), solve prompts with a boxed number on which most samples agree, and Fusion-of-N
fusor prompts with the most common boxed answer among the candidates. Everything is a pure
function of (prompt, seed, sample index): a rerun gets byte-identical replies.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any

MALFORMED_SHARE = 0.2  # share of fusion attempts answered without the problem section
_HEADING = re.compile(r"^### (.+)$", re.M)
_PROBLEM = re.compile(r"Problem (\d):\n(.*?)(?:\n\n|$)", re.S)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def _h(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts, default=str).encode()).digest()[:8], "little")


def scripted_teacher(text: str, seed: Any, index: int, max_tokens: int) -> tuple[str, str]:
    """(reply, finish_reason) for one sample of one prompt (the fault server's responder signature)."""
    headings = _HEADING.findall(text)
    if len(headings) >= 3:
        return fusion_reply(text, headings[-3:], seed, index), "stop"
    if "Candidate 1" in text:
        return fusor_reply(text), "stop"
    return solve_reply(text, seed, index), "stop"


def fusion_reply(text: str, names: list[str], seed: Any, index: int) -> str:
    if _h(text, seed, index, "malformed") % 1000 < MALFORMED_SHARE * 1000:
        return f"### {names[0]}\nI will think about the two problems first.\n"  # no problem section
    problems = dict(_PROBLEM.findall(text))
    first = problems.get("1", "the first problem").strip().split("?")[0]
    second = problems.get("2", "the second problem").strip().split("?")[0]
    k = _h(text, seed) % 97 + 3
    if names[0].lower().startswith("element"):  # sequential: one result feeds the other
        problem = (f"{first}. Call that result R. Then {second.lower()}, where every amount is R times {k} larger. "
                   "What is the final amount?")
    elif names[0].lower().startswith("core"):  # parallel: both at once
        problem = f"On the same day, {first.lower()} while {second.lower()}. With {k} extra items, what is the total?"
    else:  # conditional: choose between the two results
        problem = (f"Consider two situations. In one, {first.lower()}. In the other, {second.lower()}. "
                   f"Which gives the larger result (counting {k} as a bonus), and how large is it?")
    return (f"### {names[0]}\nBoth problems count quantities.\n\n### {names[1]}\nUse the first result as an input."
            f"\n\n### {names[2]}\n{problem}")


def solve_reply(text: str, seed: Any, index: int) -> str:
    answer = _h(text) % 500
    if _h(text, seed, index, "disagree") % 4 == 0:  # a quarter of samples disagree with the rest
        answer += 1 + index
    return f"Work through the steps: the total comes to {answer}.\nThe answer is \\boxed{{{answer}}}."


def fusor_reply(text: str) -> str:
    votes = Counter(_BOXED.findall(text))
    answer = votes.most_common(1)[0][0] if votes else "0"
    return f"Checking the candidates against each other, the consistent result is {answer}.\n\\boxed{{{answer}}}"


def arith_teacher(text: str, seed: Any, index: int, max_tokens: int) -> tuple[str, str]:
    """The symbolic arith teacher (`reasoning.engines.symbolic`) as a fault-server responder."""
    from reasoning.engines.symbolic import ArithTeacher
    from reasoning.types import Request, SamplingParams

    request = Request(messages=({"role": "user", "content": text},), params=SamplingParams(seed=seed))
    return ArithTeacher()(request, index)
