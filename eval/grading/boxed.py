"""Find the content of the last \\boxed{...} (or \\fbox{...}) with nested braces, in linear time."""
from __future__ import annotations

import re
from collections.abc import Iterator

_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BARE = re.compile(r"\\boxed\s+([^\s$]+)")  # `\boxed 5`, as some models write it


def brace_positions(text: str, start: int = 0, *, escape_any: bool = False) -> Iterator[tuple[int, str]]:
    """(position, '{' or '}') of each brace in text[start:] that a backslash does not escape, in order.

    A backslash escapes the character after it and both are skipped; with escape_any=False only a
    following '{' or '}' is skipped with it (so in `\\\\{` the brace is escaped), with escape_any=True
    any following character is (so `\\\\` is one pair and the brace in `\\\\{` counts).
    """
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if escape_any or (i + 1 < n and text[i + 1] in "{}"):
                i += 2
                continue
        elif ch == "{" or ch == "}":
            yield i, ch
        i += 1


def _matching_braces(text: str) -> dict[int, int]:
    """Position of each '{' -> position of its '}' (one pass; escaped braces do not count)."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for i, ch in brace_positions(text):
        if ch == "{":
            stack.append(i)
        elif stack:
            match[stack.pop()] = i
    return match


def match_close(s: str, open_pos: int) -> int:
    """Index of the '}' that closes the '{' at open_pos; -1 if none (a backslash escapes any character)."""
    depth = 0
    for i, ch in brace_positions(s, open_pos, escape_any=True):
        if ch == "{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return i
    return -1


def braces_balanced(s: str) -> bool:
    """Every '}' closes an earlier '{' and none is left open (a backslash escapes any character)."""
    depth = 0
    for _, ch in brace_positions(s, escape_any=True):
        depth += 1 if ch == "{" else -1
        if depth < 0:
            return False
    return depth == 0


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


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every complete \\boxed{...} in `text`, in order (nested boxes: the outer)."""
    match = _matching_braces(text) if "box" in text else {}
    out: list[tuple[int, int, str]] = []
    for m in _OPEN.finditer(text):
        end = match.get(m.end() - 1)
        if end is None or (out and m.start() < out[-1][1]):  # unclosed, or inside the previous box
            continue
        out.append((m.start(), end + 1, text[m.end():end].strip()))
    return out
