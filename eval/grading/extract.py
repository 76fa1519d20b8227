"""Answer extraction: find the final answer in a model output, and the gold in a dataset field.

`extract_answer` tries these rules in order and reports which one fired:

1. ``boxed``        the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces counted);
2. ``final_answer`` a ``Final Answer: X`` line within the last 300 characters (Parallel-R1's
   convention; its verifier also looks only at the tail) -> the rest of that line, ``$`` and a
   trailing period stripped;
3. ``hashes``       ``#### X`` (GSM8K's convention) -> the rest of the line after the last ``####``;
4. ``answer_is``    "... the answer is X" / "final answer is $X$. I hope it is correct"
   (Minerva) -> X up to the end of its sentence or math span;
5. ``answer_label`` the last line reads ``A: X`` / ``Answer: X`` (a label, no sentence) -> X;
6. ``last_math``    the last math span (``$X$``, ``\\(X\\)``, ``\\[X\\]``, ``$$X$$``) when nothing but
   punctuation and at most one word follows it: an output that ends on its result, as
   math-verify's extraction reads it (a sentence cut off after a span is not an ending);
7. ``last_line``    the last line, when it is nothing but a number, a plain expression of numbers
   or a choice letter (``17``, ``3/4``, ``(C)``, ``C) 42``);
8. ``last_number``  only with ``allow_last_number=True``: the last number in the text, or the last
   LaTeX expression when one comes after it (``\\frac{1+\\sqrt{5}}{2}`` is taken whole, never its
   ``2``), thousands commas removed (Qwen2.5-Math's ``use_last_number``; it can reward unformatted
   outputs, so it is off by default);
9. otherwise ``(None, "none")``.

Tiers 5-7 are the fallback for outputs with no anchor; they are on by default and
``strict=True`` turns them off (the extraction of parafuse before them). Every grade records the
tier that produced its answer (``extractor``), so a report can show the share graded by fallback.

A ``Final Answer:`` line that holds a sentence ("Final Answer: The smallest such $n$ is 12.")
gives the answer after its last "is"/"="/"be" (or the number before it: "42 is the count"), else
its last math span or number, else the sentence itself (a text answer: "Both I and II").
`extract_parts` finds several answers: the run of ``\\boxed{}`` that ends the output
(``\\boxed{(1,2)} and \\boxed{(3,4)}``).

Work is bounded on huge inputs: ``\\boxed`` is searched in the last 300k characters, the phrase
rules in the last 20k, so a 1 MB string costs a few milliseconds.
"""
from __future__ import annotations

import re

from eval.grading.boxed import boxed_spans, last_boxed, match_close

BOXED_WINDOW = 300_000  # characters from the end searched for \boxed
PHRASE_WINDOW = 20_000  # characters from the end searched for "####", "answer is" and numbers
FINAL_ANSWER_WINDOW = 300  # Parallel-R1's verifier looks at the last 300 characters only

_FINAL_ANSWER = re.compile(r"final\s+answer\s*\**\s*[:：]\s*\**[ \t]*([^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"answer\s+is\s*[:：]?[ \t]*", re.IGNORECASE)
_HOPE = re.compile(r"\.?\s*I hope it is correct.*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?=\s|$)|(?<=[^\s\\])[;!?](?=\s|$)")
# A number: thousands-grouped, plain, decimal or a plain fraction a/b; a leading minus is part of it.
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:/\d+)?|\.\d+)")
FALLBACK_TIERS = ("answer_label", "last_math", "last_line", "last_number")  # tiers without an anchor
MATH_WINDOW = 2_000  # characters from the end searched for the fallback tiers
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\$)(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_LATEX_EXPR = re.compile(r"\\(?:d|t)?frac\s*\{|\\sqrt\s*\{")
_ANSWER_LABEL = re.compile(r"^[\s*#>_-]*(?:final\s+)?(?:a|ans|answer)\s*\**\s*[:：]\s*\**\s*(.+?)\s*$", re.IGNORECASE)
_LAST_LINE_CHOICE = re.compile(r"\(?[A-J]\)(?:\s*\S.{0,40})?|[A-J][.)](?:\s*\S.{0,40})?|\([A-J]\)")
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_IS_CLAUSE = re.compile(r"\s(?:is|are|be|equals)\s+|=", re.IGNORECASE)
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
    if len(_PROSE_WORD.findall(_MATH_SPAN.sub(" ", rest))) >= 3:  # a sentence, not an answer
        return _answer_in_sentence(rest)
    ans = _strip_answer(rest.replace("$", ""))
    return ans or None


def _answer_in_sentence(sentence: str) -> str | None:
    """The answer a sentence states: after its last "is"/"="/"be", else its last math span or number."""
    clauses = list(_IS_CLAUSE.finditer(sentence))
    spans = list(_MATH_SPAN.finditer(sentence))
    if spans and (not clauses or spans[-1].end() > clauses[-1].start()):  # "... need $x = \frac12$ ..."
        return _span_text(spans[-1]) or None
    if clauses:
        after = _answer_after_phrase(sentence[clauses[-1].end():])
        if after and any(c.isdigit() for c in after):
            return after
        before = list(_NUMBER.finditer(sentence[:clauses[-1].start()]))  # "42 is the number of apples"
        if before:
            return before[-1].group(0).replace(",", "")
        if after:
            return after
    numbers = list(_NUMBER.finditer(sentence))
    if numbers:
        return numbers[-1].group(0).replace(",", "")
    return _strip_answer(sentence) or None  # a text answer ("Both I and II"): the sentence itself


def _span_text(m: re.Match) -> str:
    return next(g for g in m.groups() if g is not None).strip()


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


def _latex_expressions(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """(start, end, text) of each \\frac{..}{..} / \\sqrt{..} outside the `taken` spans."""
    out = []
    for m in _LATEX_EXPR.finditer(text):
        if any(a <= m.start() < b for a, b in taken) or (out and m.start() < out[-1][1]):
            continue
        end = match_close(text, m.end() - 1)
        if end < 0:
            continue
        if "frac" in m.group(0):  # the denominator's group
            nxt = re.match(r"\s*\{", text[end + 1:])
            if nxt:
                close = match_close(text, end + 1 + nxt.end() - 1)
                end = close if close >= 0 else end
        start = m.start()
        while start > 0 and (text[start - 1].isdigit() or text[start - 1] in "+-"):  # "1+\sqrt{5}"
            start -= 1
        out.append((start, end + 1, text[start:end + 1]))
    return out


def _last_number(tail: str) -> str | None:
    spans = [(m.start(), m.end(), _span_text(m)) for m in _MATH_SPAN.finditer(tail)
             if any(c.isdigit() for c in _span_text(m))]  # "$S$" is not a number
    taken = [(a, b) for a, b, _ in spans]
    exprs = _latex_expressions(tail, taken)
    taken += [(a, b) for a, b, _ in exprs]
    numbers = [(m.start(), m.end(), m.group(0)) for m in _NUMBER.finditer(tail)
               if not any(a <= m.start() < b for a, b in taken)]
    # The candidate that ends last: a number, or a whole expression (never a digit run inside one).
    best = max(spans + exprs + numbers, key=lambda c: c[1], default=None)
    if best is None:
        return None
    if (best[0], best[1]) in taken:
        return best[2] or None
    ans = best[2].replace(",", "")
    if ans.startswith("-."):
        ans = "-0" + ans[1:]
    elif ans.startswith("."):
        ans = "0" + ans
    return ans


def _answer_label(last_line: str) -> str | None:
    m = _ANSWER_LABEL.match(last_line)
    if not m:
        return None
    body = m.group(1)
    if len(_PROSE_WORD.findall(_MATH_SPAN.sub(" ", body))) >= 3:
        return _answer_in_sentence(body)
    return _strip_answer(body) or None


def _last_math(tail: str) -> str | None:
    spans = [m for m in _MATH_SPAN.finditer(tail) if any(c.isdigit() for c in _span_text(m))]
    if not spans:
        return None
    after = tail[spans[-1].end():]
    # Only an ending: punctuation and at most one word after the span (not a sentence cut short).
    if len(_PROSE_WORD.findall(after)) > 1 or any(c.isdigit() for c in after):
        return None
    return _strip_answer(_span_text(spans[-1])) or None


def _last_line(tail: str) -> str | None:
    from eval.grading.fast_paths import parse_value

    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return None
    line = _strip_answer(lines[-1].replace("**", ""))
    if not line or len(line) > 60:
        return None
    if _LAST_LINE_CHOICE.fullmatch(line) or parse_value(line) is not None:
        return line
    return None


def extract_answer(text: str, allow_last_number: bool = False, strict: bool = False) -> tuple[str | None, str]:
    """(answer, extractor) for a model output; extractor is boxed | final_answer | hashes |
    answer_is | answer_label | last_math | last_line | last_number | none (answer None).

    `strict`: no fallback tiers (answer_label, last_math, last_line) for outputs without an anchor.
    """
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
    if not strict:
        end = text[-MATH_WINDOW:].rstrip()
        last_line = end.rsplit("\n", 1)[-1]
        fallbacks = (("answer_label", lambda: _answer_label(last_line)), ("last_math", lambda: _last_math(end)),
                     ("last_line", lambda: _last_line(end)))
        for extractor, find in fallbacks:
            ans = find()
            if ans:
                return ans, extractor
    if allow_last_number:
        ans = _last_number(tail)
        if ans:
            return ans, "last_number"
    return None, "none"


def extract_parts(text: str, gap: int = 80) -> list[str]:
    """The answers of a multi-part output: the run of \\boxed{} contents that ends it (boxes at most
    `gap` characters apart), in order; one item or none for an output with one box or none."""
    if not isinstance(text, str) or "box" not in text:
        return []
    spans = boxed_spans(text[-BOXED_WINDOW:])
    run: list[str] = []
    for i in range(len(spans) - 1, -1, -1):
        if run and spans[i + 1][0] - spans[i][1] > gap:
            break
        run.insert(0, spans[i][2])
    return run
