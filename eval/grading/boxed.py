"""Find the content of the last \\boxed{...} (or \\fbox{...}) with nested braces, in linear time."""
from __future__ import annotations

import re

_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BARE = re.compile(r"\\boxed\s+([^\s$]+)")  # `\boxed 5`, as some models write it


def _matching_braces(text: str) -> dict[int, int]:
    """Position of each '{' -> position of its '}' (one pass; escaped braces do not count)."""
    match, stack, i, n = {}, [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "{}":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            match[stack.pop()] = i
        i += 1
    return match


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...}; None when there is none.

    Braces are matched by counting, so `\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`; an
    unclosed box is skipped in favour of an earlier complete one. Linear in the text length,
    however deeply the braces nest.
    """
    starts = [m.end() for m in _OPEN.finditer(text)]
    if starts:
        match = _matching_braces(text)
        for start in reversed(starts):
            end = match.get(start - 1)
            if end is not None:
                return text[start:end].strip()
    bare = list(_BARE.finditer(text))
    return bare[-1].group(1).strip() if bare else None
