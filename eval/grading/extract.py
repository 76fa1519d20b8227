"""Answer extraction: find the final answer in a model output, and the gold in a dataset field.

`extract_answer` tries these rules in order and reports which one fired:

1. ``boxed``        the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces counted);
2. ``final_answer`` a ``Final Answer: X`` line within the last 300 characters (Parallel-R1's
   convention; its verifier also looks only at the tail) -> the rest of that line, ``$`` and a
   trailing period stripped;
3. ``hashes``       ``#### X`` (GSM8K's convention) -> the rest of the line after the last ``####``;
4. ``answer_is``    "... the answer is X" / "final answer is $X$. I hope it is correct"
   (Minerva) -> X up to the end of its sentence or math span;
5. ``last_number``  only with ``allow_last_number=True``: the last number in the text, thousands
   commas removed (Qwen2.5-Math's ``use_last_number``; it can reward unformatted outputs, so it
   is off by default);
6. otherwise ``(None, "none")``.

Work is bounded on huge inputs: ``\\boxed`` is searched in the last 300k characters, the phrase
rules in the last 20k, so a 1 MB string costs a few milliseconds.
"""
from __future__ import annotations

import re

from eval.grading.boxed import last_boxed

BOXED_WINDOW = 300_000  # characters from the end searched for \boxed
PHRASE_WINDOW = 20_000  # characters from the end searched for "####", "answer is" and numbers
FINAL_ANSWER_WINDOW = 300  # Parallel-R1's verifier looks at the last 300 characters only

_FINAL_ANSWER = re.compile(r"final\s+answer\s*\**\s*[:：]\s*\**[ \t]*([^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"answer\s+is\s*[:：]?[ \t]*", re.IGNORECASE)
_HOPE = re.compile(r"\.?\s*I hope it is correct.*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?=\s|$)|(?<=[^\s\\])[;!?](?=\s|$)")
# A number: thousands-grouped, plain or decimal; a leading minus is part of it.
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
_PLAIN_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def _strip_answer(ans: str) -> str:
    """Trim the decorations around an answer taken from prose: markdown bold, $, a trailing period."""
    ans = ans.strip()
    for _ in range(3):  # a few layers: "**$5$**."
        before = ans
        ans = ans.strip().strip("*").strip()
        if ans.endswith(".") and not ans.endswith(".."):
            ans = ans[:-1].rstrip()
        if ans.startswith("$$") and ans.endswith("$$") and len(ans) >= 4:
            ans = ans[2:-2]
        elif ans.startswith("$") and ans.endswith("$") and len(ans) >= 2:
            ans = ans[1:-1]
        elif ans.startswith("\\(") and ans.endswith("\\)"):
            ans = ans[2:-2]
        elif ans.startswith("\\[") and ans.endswith("\\]"):
            ans = ans[2:-2]
        if ans == before:
            break
    return ans.strip()


def _math_span(rest: str) -> str | None:
    """If `rest` opens with a math delimiter, the content up to its closing one."""
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            if end > len(open_):
                return rest[len(open_):end]
            return None
    return None


def _answer_after_phrase(rest: str) -> str | None:
    """The answer that follows "answer is": a math span, or text up to the end of the sentence."""
    rest = rest.split("\n", 1)[0].strip().lstrip("*").strip()
    rest = _HOPE.sub("", rest)
    span = _math_span(rest)
    if span is not None:
        ans = span
    else:
        m = _SENTENCE_END.search(rest)
        ans = rest[: m.start()] if m else rest
    ans = _strip_answer(ans)
    return ans or None


def _final_answer(text: str) -> str | None:
    tail = text[-FINAL_ANSWER_WINDOW:]
    matches = list(_FINAL_ANSWER.finditer(tail))
    if not matches:
        return None
    m = matches[-1]
    rest = m.group(1)
    if not rest.strip().strip("*$").strip():  # "Final Answer:" with the answer on the next line
        after = tail[m.end():].lstrip("\n")
        rest = next((line for line in after.split("\n") if line.strip()), "")
    inner = _ANSWER_IS.search(rest)  # "Final Answer: The final answer is $5$. I hope it is correct."
    if inner:
        return _answer_after_phrase(rest[inner.end():])
    rest = _HOPE.sub("", rest)
    ans = _strip_answer(rest.replace("$", ""))
    return ans or None


def _hashes(tail: str) -> str | None:
    matches = list(_HASHES.finditer(tail))
    for m in reversed(matches):
        ans = _strip_answer(m.group(1).replace("$", ""))
        if ans:
            if _PLAIN_NUMBER.fullmatch(ans):
                ans = ans.replace(",", "")
            return ans
    return None


def _answer_is(tail: str) -> str | None:
    for m in reversed(list(_ANSWER_IS.finditer(tail))):
        ans = _answer_after_phrase(tail[m.end():])
        if ans:
            return ans
    return None


def _last_number(tail: str) -> str | None:
    last = None
    for last in _NUMBER.finditer(tail):  # noqa: B007 - we want the final match
        pass
    if last is None:
        return None
    ans = last.group(0).replace(",", "")
    if ans.startswith("-."):
        ans = "-0" + ans[1:]
    elif ans.startswith("."):
        ans = "0" + ans
    return ans


def extract_answer(text: str, allow_last_number: bool = False) -> tuple[str | None, str]:
    """(answer, extractor) for a model output; extractor is boxed | final_answer | hashes |
    answer_is | last_number | none (answer None)."""
    if not isinstance(text, str) or not text:
        return None, "none"
    boxed = last_boxed(text[-BOXED_WINDOW:]) if "box" in text[-BOXED_WINDOW:] else None
    if boxed:
        return boxed, "boxed"
    ans = _final_answer(text)
    if ans:
        return ans, "final_answer"
    tail = text[-PHRASE_WINDOW:]
    if "####" in tail:
        ans = _hashes(tail)
        if ans:
            return ans, "hashes"
    ans = _answer_is(tail)
    if ans:
        return ans, "answer_is"
    if allow_last_number:
        ans = _last_number(tail)
        if ans:
            return ans, "last_number"
    return None, "none"


def gold_from_gsm8k(answer_field: str) -> str:
    """GSM8K gold: the text after the last ``####``, thousands commas removed ("1,234" -> "1234")."""
    tail = answer_field.rsplit("####", 1)[-1]
    return tail.strip().replace(",", "").rstrip(".").strip()


def gold_from_math(solution: str) -> str | None:
    """MATH gold: the content of the reference solution's last ``\\boxed{}`` (None when there is none)."""
    return last_boxed(solution)


def normalize_aime(x: str | int) -> str:
    """AIME answers are integers 0-999, sometimes zero-padded: "007" -> "7", "000" -> "0".
    Anything that is not a plain integer is returned stripped and otherwise unchanged."""
    s = str(x).strip()
    if s.isdigit():
        return str(int(s))
    return s
