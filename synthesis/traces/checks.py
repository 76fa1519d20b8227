"""The acceptance rules of each trace method; each returns the first reason to reject, or None.

The answer checks take their verdicts from eval's grader (computed in one batch by the pipeline);
everything else is checked here on the text.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from reasoning.formats import get_format
from reasoning.formats.metrics import text_metrics
from reasoning.formats.trace import Block, FormatError

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_RESULT = re.compile(r"=\s*(-?\d+(?:\.\d+)?)")


def parallel_r1(reply: str | None, tokens: int, max_tokens: int, mode: str, correct: bool | None) -> str | None:
    """Cold-start rule: a valid format, within the length limit, right.

    `mode` is `parallel_r1.validate`'s: the pipeline's `format_mode`, "reference" by default (the
    authors' checker, as their cold-start data was kept), "strict" for parafuse's grammar.
    """
    if not reply:
        return "empty_reply"
    if get_format("parallel_r1").validate(reply, mode=mode, require_final_answer=False):
        return "format"
    if "<Parallel>" not in reply:
        return "no_parallel_block"
    if tokens > max_tokens:
        return "too_long"
    if correct is False:
        return "wrong_answer"
    if correct is None:
        return "no_gold"
    return None


def thread_numbers_are_1_to_k(block: Block) -> bool:
    """The reference data filter: threads numbered 1..k, one per outline, in order."""
    labels = [branch.label for branch in block.branches]
    return labels == [str(i) for i in range(1, len(labels) + 1)]


_LINE_START = re.compile(r"^[\s*]*(?:[A-Za-z][\w' ]{0,30}:\s*)?(-?\d+(?:\.\d+)?)", re.M)


def threads_depend_on_each_other(block: Block, context: str) -> bool:
    """Whether a thread starts a step from a number that a sibling thread computes and that neither
    the context (the question and the text before the block) nor the thread itself gave: then it
    could not have run at the same time as that sibling."""
    given = set(_NUMBER.findall(context))
    results = [set(_RESULT.findall(branch.text)) - given for branch in block.branches]
    for i, branch in enumerate(block.branches):
        own: set[str] = set()
        for line in branch.text.splitlines():
            start = _LINE_START.match(line)
            if start and start.group(1) not in given and start.group(1) not in own:
                if any(start.group(1) in computed for j, computed in enumerate(results) if j != i):
                    return True
            own |= set(_RESULT.findall(line))
    return False


def threadweaver(question: str, sequential: str | None, rewrite: str | None, count: Callable[[str], int],
                 stage1_correct: bool | None, unchanged: bool | None) -> str | None:
    """Two-stage rule: valid fork-join text, threads 1..k, independent, same answer, a shorter critical path."""
    if stage1_correct is False:
        return "stage1_wrong"
    if not rewrite:
        return "empty_reply"
    module = get_format("threadweaver")
    # Mode "strict" (the orchestrator's grammar) to build the tree; the reference data filter's extra
    # rules that matter here (threads numbered 1..k) are checked below, each with its own reason.
    try:
        trace = module.parse(rewrite)
    except FormatError:
        return "format"
    blocks = [s for s in trace.segments if isinstance(s, Block)]
    if not blocks:
        return "no_parallel_block"
    if not all(thread_numbers_are_1_to_k(b) for b in blocks):
        return "thread_numbers"
    context = question
    for segment in trace.segments:
        if isinstance(segment, Block):
            if threads_depend_on_each_other(segment, context):
                return "dependent_threads"
            context += " " + " ".join(b.text for b in segment.branches)
        else:
            context += " " + segment.text
    if unchanged is not True:
        return "answer_changed"
    metrics = text_metrics(rewrite, "threadweaver", count)
    if metrics.critical_path_tokens >= count(sequential or ""):
        return "no_speedup"
    return None


def parathinker(correct: bool | None) -> str | None:
    """ParaThinker rule: the summary's answer is right.

    No format check: no decoder is involved. The pipeline assembles the trace itself
    (`pipeline.trace_text`) from the P path requests' whole completions, each in `<think{k}>`
    (no First-Finish cut: every path runs to its own end), and the summary request's reply in
    `<summary>`: its layout comes from the pipeline, not from the model's text."""
    if correct is None:
        return "no_gold"
    return None if correct else "wrong_summary"
