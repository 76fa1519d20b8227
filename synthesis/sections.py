"""Parse a fusion reply made of named sections and pull out the new problem it ends with.

The MathFusion prompts (`prompts/templates/mathfusion/*.jinja`) ask the teacher for exactly three
sections, each under a `### Name` heading, the last one holding the new problem. Models follow
that only loosely: they bold the name, number it, put the problem on the heading's own line,
restate the plan, or append a solution. `parse_sections` accepts the common variants, keeps the
last section (the only thing fusion keeps) and rejects replies that hold no usable problem,
with a short machine-friendly `reason` so that a pipeline can count why replies were dropped.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# Section names per MathFusion strategy, in the order the prompt asks for them; the last one
# is the new problem.
STRATEGY_SECTIONS: dict[str, tuple[str, str, str]] = {
    "sequential": ("Elements Identified", "Plan", "Combined Problem"),
    "parallel": ("Core Elements", "Synthesis Method", "New Problem"),
    "conditional": ("Analysis", "New Question", "New Problem"),
}

REASONS = ("missing_section", "empty_problem", "copied_input", "too_short", "contains_solution", "truncated")

# A reply that copies an input wholesale and adds only a few words around it is not a fusion.
COPY_SHARE = 0.9


@dataclass(frozen=True)
class Sections:
    """The sections found in one reply.

    `sections` maps each canonical section name that was present to its stripped text (the
    problem section's raw text included); `problem` is the cleaned text of the last section.
    """

    sections: dict[str, str]
    problem: str


class SectionError(ValueError):
    """A reply that does not hold a usable new problem; `reason` is a short machine-friendly code, str(e) explains."""

    def __init__(self, reason: str, message: str = ""):
        if reason not in REASONS:
            raise ValueError(f"unknown SectionError reason {reason!r}; known: {', '.join(REASONS)}")
        super().__init__(message or reason)
        self.reason = reason


# -- header recognition -------------------------------------------------------------------------

# "1." / "3)" / "Step 3:" / "Step 3 -": numbering a model puts before a section name. The
# separator after "Step N" is required so that plain prose such as "Step 3 Plan" is not a header.
_NUMBER = r"(?:step\s*\d+\s*[:.)\-]|\d+\s*[.)])"
_EMPHASIS = r"(?P<em>\*\*|__)"


def _name_pattern(name: str) -> str:
    """A regex for `name` with any run of whitespace between its words."""
    return r"\s+".join(re.escape(word) for word in name.split())


def _canonical_key(text: str) -> str:
    return " ".join(text.split()).casefold()


@lru_cache(maxsize=32)
def _header_regex(names: tuple[str, ...]) -> re.Pattern[str]:
    """One regex matching a stripped line that is a header for any of `names`.

    Two shapes: an emphasised name (`**Name**`, `__Name:__`, `**Name**:`), which may be followed
    by content after a space or colon; and a plain name, optionally wrapped in hashes, which takes
    same-line content only after a colon (so that an ordinary sentence is never a header).
    Markdown heading marks and numbering may precede either.
    """
    # Longest first, so that a name that is a prefix of another never wins the alternation.
    alt = "|".join(_name_pattern(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(
        rf"""^
        (?:\#{{1,6}}\s*)?                     # markdown heading, or the opening '#' of '#Name#'
        (?:{_NUMBER}\s*)?
        (?:
            {_EMPHASIS}\s*(?:{_NUMBER}\s*)?(?P<n1>{alt})\s*:?\s*(?P=em)
            (?:\s*:?\s*|(?:\s*:\s*|\s+)(?P<r1>\S.*))   # content needs a colon or a space first
          |
            (?P<n2>{alt})\s*\#*\s*(?::\s*(?P<r2>.*))?
        )
        $""",
        re.IGNORECASE | re.VERBOSE,
    )


@dataclass(frozen=True)
class _Header:
    line: int  # index of the header line
    name: str  # canonical section name
    rest: str  # content on the header's own line, if any


def _find_headers(lines: list[str], names: Sequence[str]) -> list[_Header]:
    """Every header line for `names`, in reply order."""
    regex = _header_regex(tuple(names))
    canonical = {_canonical_key(n): n for n in names}
    found = []
    for i, line in enumerate(lines):
        # Only the indent goes: trailing spaces of same-line content belong to the problem text.
        m = regex.match(line.lstrip())
        if m:
            name = canonical[_canonical_key(m.group("n1") or m.group("n2"))]
            found.append(_Header(i, name, (m.group("r1") or m.group("r2") or "").lstrip()))
    return found


def _section_text(lines: list[str], header: _Header, end: int) -> str:
    """The text of a section: the rest of its header line, then its lines up to `end`."""
    return "\n".join([header.rest, *lines[header.line + 1 : end]]).strip()


# -- cleaning the problem -----------------------------------------------------------------------

_SOLUTION_WORDS = r"(?:solution|(?:final\s+)?answer|notes?|explanation)"
# A line that opens a solution/answer/note block. With a colon the word must stand alone
# ("Solution:", "**Answer**:"), because a problem line may well start "Solution A is ...";
# as a heading or in bold it may carry more words ("### Solution to the problem").
_SOLUTION_LINE = re.compile(
    rf"""^\s*(?:
        (?:\#{{1,6}}\s*)?(?:\*\*|__)?\s*{_SOLUTION_WORDS}\s*(?:\*\*|__)?\s*:
      | \#{{1,6}}\s*(?:\*\*|__)?\s*{_SOLUTION_WORDS}\b[^\n]*
      | (?:\*\*|__)\s*{_SOLUTION_WORDS}\b[^\n]*?(?:\*\*|__)\s*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_RULE_LINE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
_FENCE_LINE = re.compile(r"^\s*```")
_LABEL = re.compile(
    r"^(?:\*\*|__)?\s*(?:(?:new|combined|fused|final)\s+)?problem(?:\s+statement)?\s*"
    r"(?::\s*(?:\*\*|__)?|(?:\*\*|__)\s*:)\s*",
    re.IGNORECASE,
)
_QUOTES = (('"""', '"""'), ('"', '"'), ("'", "'"), ("\u201c", "\u201d"))


def _strip_wrappers(text: str) -> str:
    """Strip what models put around a problem: fences, leading rules, quotes, a "Problem:" label.

    Repeated until nothing changes, because these come nested in any order.
    """
    while True:
        before = text
        lines = text.strip().splitlines()
        while lines and (_FENCE_LINE.match(lines[0]) or _RULE_LINE.match(lines[0]) or not lines[0].strip()):
            lines.pop(0)
        while lines and (_FENCE_LINE.match(lines[-1]) or not lines[-1].strip()):
            lines.pop()
        text = "\n".join(lines).strip()
        for left, right in _QUOTES:
            if len(text) > len(left) + len(right) and text.startswith(left) and text.endswith(right):
                text = text[len(left) : -len(right)].strip()
                break
        text = _LABEL.sub("", text, count=1).strip()
        if text == before:
            return text


def _cut_at(lines: list[str], pattern: re.Pattern[str]) -> tuple[list[str], bool]:
    """The lines before the first line matching `pattern`, and whether one matched."""
    for i, line in enumerate(lines):
        if pattern.match(line):
            return lines[:i], True
    return lines, False


def _clean_problem(text: str) -> tuple[str, bool]:
    """The bare problem statement, and whether a solution/answer/note block was cut off it."""
    lines = _strip_wrappers(text).splitlines()
    lines, had_solution = _cut_at(lines, _SOLUTION_LINE)
    # A rule after the problem usually separates it from commentary; the leading ones are gone.
    lines, _ = _cut_at(lines, _RULE_LINE)
    return _strip_wrappers("\n".join(lines)), had_solution


def _copied_input(problem: str, inputs: Sequence[str]) -> int | None:
    """The 1-based index of an input that `problem` merely repeats, if any."""
    mine = _canonical_key(problem)
    for i, source in enumerate(inputs, start=1):
        theirs = _canonical_key(source or "")
        if theirs and (mine == theirs or (theirs in mine and len(theirs) >= COPY_SHARE * len(mine))):
            return i
    return None


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


# -- the entry point ----------------------------------------------------------------------------


def parse_sections(
    reply: str,
    names: Sequence[str],
    *,
    inputs: Sequence[str] = (),
    finish_reason: str | None = None,
    min_problem_chars: int = 20,
) -> Sections:
    """Split `reply` into the sections `names` (in prompt order) and return the cleaned last one.

    The last occurrence of the last section's header starts the problem, which runs to the end of
    the reply (minus any solution block or trailing rule); the other sections are optional and
    each takes the text up to the next recognised header. Raises SectionError when the reply was
    cut by the token limit, has no problem section, or its problem is empty, only a solution,
    shorter than `min_problem_chars`, or a copy of one of `inputs`.
    """
    names = tuple(names)
    if not names:
        raise ValueError("parse_sections needs at least one section name")
    last = names[-1]
    expected = f"expected sections: {', '.join(names)}"
    # A reply cut by the token limit may end mid-problem, and a cut problem looks complete.
    if finish_reason == "length":
        raise SectionError(
            "truncated",
            f"the reply hit the token limit (finish_reason='length'), so its '{last}' section may be cut off",
        )
    lines = (reply or "").splitlines()
    headers = _find_headers(lines, names)
    problem_headers = [h for h in headers if h.name == last]
    if not problem_headers:
        raise SectionError(
            "missing_section", f"no '### {last}' section found ({expected}); the reply starts {_snippet(reply or '')}"
        )
    start = problem_headers[-1]
    sections = _earlier_sections(lines, headers, start)
    sections[last] = _section_text(lines, start, len(lines))
    problem, had_solution = _clean_problem(sections[last])
    _check_problem(problem, had_solution, last, inputs, min_problem_chars)
    return Sections(sections=sections, problem=problem)


def _earlier_sections(lines: list[str], headers: list[_Header], start: _Header) -> dict[str, str]:
    """The text of each other section, from its last header before the problem section."""
    before = [h for h in headers if h.line < start.line]
    sections: dict[str, str] = {}
    for k, header in enumerate(before):
        end = before[k + 1].line if k + 1 < len(before) else start.line
        sections[header.name] = _section_text(lines, header, end)  # a later restatement wins
    return sections


def _check_problem(problem: str, had_solution: bool, last: str, inputs: Sequence[str], min_chars: int) -> None:
    """Raise SectionError when the cleaned problem is not a usable new problem."""
    if not problem:
        if had_solution:
            raise SectionError(
                "contains_solution",
                f"the '{last}' section holds only a solution, answer or note (expected the new problem alone)",
            )
        raise SectionError("empty_problem", f"the '{last}' section is empty (expected the new problem statement)")
    if len(problem) < min_chars:
        raise SectionError(
            "too_short",
            f"the new problem has {len(problem)} characters, fewer than min_problem_chars={min_chars}: "
            f"{_snippet(problem)}",
        )
    copied = _copied_input(problem, inputs)
    if copied is not None:
        raise SectionError(
            "copied_input", f"the new problem repeats input {copied} instead of fusing the inputs: {_snippet(problem)}"
        )
