"""Scripted-engine policies shared by tests (`--engine scripted --model tests.policies:NAME` on the CLI)."""
from __future__ import annotations


def long_reply(request, index):
    """A model that never stops by itself: every request runs into its max_tokens."""
    return " ".join(f"word{i}" for i in range(1000)), "length"


def legacy_policy(request, index):
    """The scripted model of tests/data/legacy_eval: the same replies before and after the settings change."""
    if request.prompt is not None:  # raw continuations: the forced final answer, or a decoder's main request
        return ("7}" if request.prompt.endswith("\\boxed{") else "So the answer is \\boxed{7}."), "stop"
    if "candidate solutions" in request.messages[-1]["content"]:  # the fusor
        return "Combining them, the answer is \\boxed{7}.", "stop"
    if request.id and "/budget@" in request.id:  # thinking that runs out of its budget
        return "thinking " * (request.params.max_tokens - 1) + f"step{index}", "length"
    return ("So the total is \\boxed{7}." if index % 2 == 0 else "I get \\boxed{8}."), "stop"

