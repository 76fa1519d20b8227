"""Parallel-R1's reference verifier, rule for rule: grade a response as the paper's evaluation did.

Parallel-R1 (arXiv 2509.07980) scores a response with the DAPO/Minerva math verifier of its
released training code, on the decode with special tokens skipped, so:

1. the text is stripped of the tags (`<Parallel>`, `<Path>`, `<Summary>` and their closes are
   special tokens of its tokenizer, as are chat markers like `<|im_end|>`), and only its last
   300 characters are read;
2. the answer is the last `Final Answer: X` there (case-insensitive, X up to the end of the
   line); with none the prediction is the string `[INVALID]`, which matches no gold;
3. prediction and gold go through Minerva's `normalize_final_answer` (below) and are compared as
   strings: no symbolic or numeric equivalence, so `0.5` and `\\frac{1}{2}` differ;
4. a `\\boxed{}` answer without a `Final Answer:` line scores wrong (`Final Answer: \\boxed{5}`
   is right: the normalisation unwraps the box).

This is not parafuse's grader (`eval.grading.equivalence`: `\\boxed{}` first, the tags kept, math
equivalence): it exists to reproduce the paper's numbers, and `eval run --grader
parallel_r1_reference` or `--reference-grading` reports it beside parafuse's verdict. A gold given
as several answers is compared as their comma-joined string (the reference has one gold string).

    from eval.grading.reference_parallel_r1 import grade
    grade("12", "<Parallel><Path>...</Path></Parallel>\\n<Summary>...</Summary>\\nFinal Answer: 12")
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from eval.records import Grade
from reasoning.formats.tags import PARALLEL_R1

NAME = "parallel_r1_reference"
VERSION = 1
WINDOW = 300  # characters from the end of the tag-stripped text the verifier reads
INVALID = "[INVALID]"  # the prediction when no `Final Answer:` is found

_ANSWER = re.compile(r"(?i)Final Answer\s*:\s*([^\n]+)")
# What skip_special_tokens removes from a Parallel-R1 decode: its six tags and the chat template's markers.
_SPECIAL = re.compile("|".join(re.escape(t) for t in PARALLEL_R1) + r"|<\|[^<>|\s]+\|>")

# Minerva's normalisation (Lewkowycz et al. 2022, "Solving Quantitative Reasoning Problems with Language
# Models", appendix), in the order the verifier applies it.
# Literal replacements first; note that they act anywhere in the string ("a " and "an " go even inside a
# word's end, "pizza area" -> "pizzarea"), which is part of what the reference scores.
_REPLACE = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)
# Then units, words and LaTeX noise deleted outright, in this order (order matters: "\\text{}" goes after
# "\\text{}^2" so the latter is removed whole).
_DELETE = (
    "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue", "points",
    "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges", "students",
    "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3",
    "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots",
)
# Then regex rewrites, in order: keep the first $...$ span; unwrap \text{}, \textbf{}, \overline{} (each
# up to its first closing brace) and \boxed{} (up to the last one); spell out \fracab and \sqrta.
_REWRITE = (
    (re.compile(r"(.*?)(\$)(.*?)(\$)(.*)"), r"$\3$"),
    (re.compile(r"(\\text\{)(.*?)(\})"), r"\2"),
    (re.compile(r"(\\textbf\{)(.*?)(\})"), r"\2"),
    (re.compile(r"(\\overline\{)(.*?)(\})"), r"\2"),
    (re.compile(r"(\\boxed\{)(.*)(\})"), r"\2"),
    (re.compile(r"(frac)([^{])(.)"), r"frac{\2}{\3}"),
    (re.compile(r"(sqrt)([^{])"), r"sqrt{\2}"),
)


def strip_tags(text: str) -> str:
    """The text as the reference decodes it: the Parallel-R1 tags and chat markers removed, nothing else."""
    return _SPECIAL.sub("", text)


def normalize_final_answer(answer: str) -> str:
    """Minerva's normalisation of a final answer, as the verifier applies it to prediction and gold."""
    s = answer.split("=")[-1]
    for old, new in _REPLACE:
        s = s.replace(old, new)
    for junk in _DELETE:
        s = s.replace(junk, "")
    for pattern, repl in _REWRITE:
        s = pattern.sub(repl, s)
    s = s.replace("$", "")
    if s.replace(",", "").isdigit():  # 1,000 -> 1000
        s = s.replace(",", "")
    return s.strip()


def extract(text: str) -> str | None:
    """The raw `Final Answer:` text the verifier reads (the last one in the window), or None."""
    found = _ANSWER.findall(strip_tags(text)[-WINDOW:])
    return found[-1] if found else None


def gold_string(gold: Any) -> str | None:
    if gold is None:
        return None
    if isinstance(gold, (list, tuple)):
        return ",".join(str(g) for g in gold)
    return str(gold)


def grade(gold: Any, text: str) -> Grade:
    """The reference verdict on one response. `answer` is the normalised prediction (what it compares)."""
    raw = extract(text if isinstance(text, str) else "")
    if raw is None:
        return Grade(False, None, "none", "no_answer")
    pred = normalize_final_answer(raw)
    g = gold_string(gold)
    if g is None:
        return Grade(False, pred, "final_answer_reference", "unparseable_gold")
    same = pred == normalize_final_answer(g)
    return Grade(same, pred, "final_answer_reference", "reference_equal" if same else "reference_differs")


class ReferenceGrader:
    """`grade` behind the interface of `eval.grading.Grader` (grade_many, describe, close), so a run can
    score with it: no worker processes, no time limits needed (string operations only)."""

    name = f"{NAME}/{VERSION}"

    def grade(self, gold: Any, text: str) -> Grade:
        return grade(gold, text)

    def grade_many(self, pairs: Sequence[tuple[Any, str]], progress: bool = False) -> list[Grade]:
        return [grade(gold, text) for gold, text in pairs]

    def describe(self) -> dict[str, Any]:
        return {"grader": self.name, "grader_version": VERSION,
                "rules": f"Final Answer: in the last {WINDOW} characters of the tag-stripped text (the last one); "
                         "Minerva normalisation of prediction and gold; string equality; a lone \\boxed{} is wrong",
                "stripped": list(PARALLEL_R1) + ["<|...|> chat markers"]}

    def start(self) -> ReferenceGrader:
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> ReferenceGrader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
