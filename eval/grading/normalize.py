"""Light normalisation of LaTeX answers and golds: math delimiters, \\left/\\right, spacing commands,
whole-answer wrappers (``\\text{...}``), ``\\dfrac``/``\\tfrac``, a trailing period."""
from __future__ import annotations

import re

from eval.grading.boxed import match_close

_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|bigg|Bigg)(?![A-Za-z])")
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|\\q?quad(?![A-Za-z])|~")
_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mbox|boxed)\s*\{")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

def strip_delims(s: str) -> str:
    s = s.strip()
    changed = True
    while changed:
        changed = False
        for open_, close in _DELIMS:
            if len(s) > len(open_) + len(close) - 1 and s.startswith(open_) and s.endswith(close):
                s = s[len(open_):-len(close)].strip()
                changed = True
                break
    return s


def unwrap(s: str) -> str:
    """`\\text{(B)}` -> `(B)` when the wrapper spans the whole string (repeatedly)."""
    while True:
        m = _WRAPPERS.match(s)
        if not m or match_close(s, m.end() - 1) != len(s) - 1:
            return s
        s = s[m.end():-1].strip()


def light_normalize(s: str) -> str:
    """Normalise LaTeX noise but keep the spaces (the numeric parser needs them for mixed numbers)."""
    s = CONTROL_CHARS.sub("", s).replace("\u2212", "-").replace("\u00a0", " ").strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1]
    s = strip_delims(s)
    s = _LEFT_RIGHT.sub("", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = s.replace("\\displaystyle", "").replace("\\varnothing", "\\emptyset")
    s = _SPACING.sub(" ", s)
    s = unwrap(s.strip())
    s = s.strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    return s


def normalize(s: str) -> str:
    """The string the ``exact`` fast path compares."""
    return re.sub(r"\s+", "", light_normalize(s))

