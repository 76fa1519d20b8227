"""Is a model's answer equivalent to the gold? Fast paths first, then math-verify under a hard time limit.

    with Grader(timeout_s=5) as grader:
        g = grader.grade("\\frac{1}{2}", "... so the answer is \\boxed{0.5}.")   # Grade(correct=True, ...)
        grades = grader.grade_many([(gold, text), ...], progress=True)          # order preserved

For each (gold, text):

1. extraction (`extract.extract_answer`): nothing found -> wrong, reason ``no_answer``;
2. a cheap pre-check of the answer: more than `MAX_ANSWER_CHARS` characters -> ``too_long``;
   integer power towers / huge powers or factorials that SymPy would try to evaluate
   (``9^{9^{9^{9}}}``, ``2^{100000}``, ``10000!``) or absurd brace nesting -> ``unsafe_expression``;
3. fast paths, no SymPy:
   - ``exact``: equal strings after light normalisation (``$``/``\\(``, ``\\left``/``\\right``,
     ``\\!``/``\\,``, a whole-answer ``\\text{}`` wrapper, ``\\dfrac``/``\\tfrac`` -> ``\\frac``,
     whitespace, one trailing period);
   - ``choice``: when the gold is a multiple-choice letter A-J (``B``, ``(B)``, ``\\text{(B)}``), the
     answer must be such a letter too (``(b)``, ``B)``, ``(B) 12``, ``option B``); final either way;
   - ``numeric``: when both sides are values SymPy is not needed for, compared exactly:
     plain numbers (integers, ``1,234`` / ``1{,}234`` / ``1\\,234`` thousands separators, decimals,
     ``a/b``, ``\\frac{a}{b}``, ``\\frac12``, mixed numbers ``3\\frac12`` and ``3 1/2``, small
     integer powers ``2^{10}``, a leading ``\\$``, trailing units ``\\text{ cm}`` / ``cm`` /
     ``apples`` / ``^\\circ``), surds ``a\\sqrt{m}/b`` (``\\sqrt{12}`` == ``2\\sqrt3``), multiples
     of pi ``a\\pi/b``, +-infinity, and tuples / intervals / sets / matrices whose entries are all
     such values (interval ends must match: ``(1,2]`` != ``(1,2)``; sets ignore order).
     One tolerance: a decimal against a fraction with no finite decimal expansion matches within a
     relative `REL_TOL` (1e-6), or when it is that fraction correctly rounded to 6+ significant
     digits or 6+ decimal places (``0.130435`` for 3/23, ``0.033333`` for 1/30; ``0.33`` is wrong).
     Decimal vs decimal and integers are exact. Percent: a side written with ``%`` matches the
     other side's value as the same number or divided by 100 (gold ``50\\%`` accepts ``50`` and
     ``0.5``; gold ``12.5`` accepts ``12.5\\%``); two bare numbers never get a x100 leniency. A
     variable prefix on the answer (``x = 3``) is dropped when the gold has no ``=``. A numeric
     "not equal" is final. Values of different kinds (a surd against a decimal) go to math-verify.
   - ``text``: a gold ``\\text{word(s)}`` against an answer made of letters only: same words,
     ignoring case and spaces; final.
   - ``structure``: a set ``\\{..\\}`` against a bracketed tuple/interval is wrong (math-verify
     0.9.0 says ``\\{1,2\\}`` == ``(1,2)``).
4. otherwise math-verify ``verify(parse(gold), parse(answer))``, gold first, both wrapped as LaTeX
   (``\\boxed{...}``), its own SIGALRM timeouts off, run by `pool.JudgePool` in worker processes
   with a hard per-item limit -> ``math_verify`` | ``timeout`` | ``unparseable_gold`` | ``error:...``.

A gold that contains ``\\boxed{}`` is reduced to its last boxed content (a whole MATH solution works).
Identical (gold, answer) pairs within one `grade_many` call go to math-verify once (maj@k pools
repeat answers a lot). `Grade.answer` is cut to `ANSWER_RECORD_CHARS` for ``too_long`` answers.
"""
from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from importlib import metadata

from eval.grading.boxed import last_boxed
from eval.grading.extract import extract_answer
from eval.records import Grade

GRADER_NAME = "parafuse-grader"
GRADER_VERSION = 1
MAX_ANSWER_CHARS = 1000  # longer "answers" are not answers (MATH's longest golds are ~200 chars)
MAX_BRACE_DEPTH = 50
MAX_POWER_EXPONENT = 10_000  # a^b with b above this is refused before SymPy evaluates it
MAX_POWER_DIGITS = 100_000  # ... as is any integer power with more digits than this
MAX_FACTORIAL = 5_000
REL_TOL = 1e-6
_REL_TOL = Fraction(str(REL_TOL))  # exact, so 0.333333 vs 1/3 (relative error exactly 1e-6) is in
MAX_NUMBER_DIGITS = 400  # plain numbers longer than this are left to the other checks
ANSWER_RECORD_CHARS = 300  # Grade.answer is cut to this for too_long answers


# ------------------------------------------------------------------ normalisation

_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|bigg|Bigg)(?![A-Za-z])")
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|\\q?quad(?![A-Za-z])|~")
_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mbox|boxed)\s*\{")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _match_close(s: str, open_pos: int) -> int:
    """Index of the '}' that closes the '{' at open_pos; -1 if none."""
    depth = 0
    i = open_pos
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _strip_delims(s: str) -> str:
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


def _unwrap(s: str) -> str:
    """`\\text{(B)}` -> `(B)` when the wrapper spans the whole string (repeatedly)."""
    while True:
        m = _WRAPPERS.match(s)
        if not m or _match_close(s, m.end() - 1) != len(s) - 1:
            return s
        s = s[m.end():-1].strip()


def light_normalize(s: str) -> str:
    """Normalise LaTeX noise but keep the spaces (the numeric parser needs them for mixed numbers)."""
    s = _CONTROL.sub("", s).replace("\u2212", "-").replace("\u00a0", " ").strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1]
    s = _strip_delims(s)
    s = _LEFT_RIGHT.sub("", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = s.replace("\\displaystyle", "").replace("\\varnothing", "\\emptyset")
    s = _SPACING.sub(" ", s)
    s = _unwrap(s.strip())
    s = s.strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    return s


def normalize(s: str) -> str:
    """The string the ``exact`` fast path compares."""
    return re.sub(r"\s+", "", light_normalize(s))


# ------------------------------------------------------------------ plain numbers


@dataclass(frozen=True)
class Number:
    value: Fraction
    kind: str  # int | dec | frac
    percent: bool = False
    places: int = 0  # digits written after the decimal point (dec)
    sig: int = 0  # significant digits written (dec)


@dataclass(frozen=True)
class Term:
    """coef * sqrt(radicand) (radicand square-free, > 1) or coef * pi."""

    family: str  # sqrt | pi
    coef: Fraction
    radicand: int = 1


@dataclass(frozen=True)
class Infinity:
    sign: int


Value = Number | Term | Infinity


_UNIT_WORD_BLOCK = frozenset(
    "pi sqrt sin cos tan cot sec csc log ln exp lim inf infty infinity and or to if not mod pmod cdot times "
    "div frac dfrac tfrac le ge lt gt ne neq approx in cup cap".split())
_TEXT_UNIT = re.compile(r"\\(?:text|textrm|mathrm|mbox|rm|operatorname)\s*\{\s*([A-Za-z][A-Za-z .]*|\\%)\s*\}"
                        r"(?:\s*\^\s*\{?\s*[23]\s*\}?)?\s*$")
_DEGREE = re.compile(r"(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree)\s*$")
_PERCENT = re.compile(r"\\?%\s*$")
_WORD_UNIT = re.compile(r"(?<=[\d\s}.])(\s*)([A-Za-z]{2,}(?:\s+[A-Za-z]{2,}){0,3})\s*$")
# Unit words written right after the number ("5cm") or two letters long: only these. Anything else
# must be a separate word of 3+ letters ("5 apples"), so "2xy" or "2 ab" stay expressions.
_SHORT_UNITS = frozenset("cm mm km kg mg ml ft yd oz lb lbs mi hr hrs min sec ms mph kph sq cc".split())
_DOLLAR = re.compile(r"^(?:\\\$|\$|\\text\{\s*\\\$\s*\}|USD)\s*")
_INT = re.compile(r"[+-]?\d+")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DEC = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")
_SLASH = re.compile(r"([+-]?)(\d+)/(\d+)")
_FRAC_ARG = r"(?:\{\s*([+-]?\d+)\s*\}|(\d))"
_LATEX_FRAC = re.compile(r"([+-]?)\\frac\s*" + _FRAC_ARG + r"\s*" + _FRAC_ARG)
_MIXED_SLASH = re.compile(r"([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)")
_MIXED_LATEX = re.compile(r"([+-]?)(\d+)\s*\\frac\s*(?:\{\s*(\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))")
_POWER = re.compile(r"([+-]?)(\d+)\^\{?([+-]?\d+)\}?")
_VAR_PREFIX = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?=\S)")


def _strip_units(t: str) -> tuple[str, bool]:
    """Remove trailing units, degree signs and percent; report whether a percent was seen."""
    percent = False
    for _ in range(4):
        before = t
        m = _TEXT_UNIT.search(t)
        if m:
            word = m.group(1).strip().lower()
            if word in ("\\%", "percent"):
                percent = True
            if word in _UNIT_WORD_BLOCK:
                return t, percent
            t = t[:m.start()].rstrip()
        t2 = _DEGREE.sub("", t).rstrip()
        if t2 != t:
            t = t2
        m = _PERCENT.search(t)
        if m:
            percent = True
            t = t[:m.start()].rstrip()
        m = _WORD_UNIT.search(t)
        if m and t[:m.start()].strip():
            words = m.group(2).lower().split()
            attached = not m.group(1) and t[m.start() - 1].isdigit()
            plausible = all(w in _SHORT_UNITS or (len(w) >= 3 and not attached) for w in words)
            if plausible and not any(w in _UNIT_WORD_BLOCK for w in words):
                if "percent" in words:
                    percent = True
                t = t[:m.start()].rstrip()
        if t == before:
            break
    return t.strip(), percent


def _frac_args(m: re.Match, first: int) -> tuple[int, int]:
    num = m.group(first) if m.group(first) is not None else m.group(first + 1)
    den = m.group(first + 2) if m.group(first + 2) is not None else m.group(first + 3)
    return int(num), int(den)


def parse_number(s: str) -> Number | None:
    """The value of a plain number written in any of the usual ways; None for anything else."""
    t = light_normalize(s)
    if not t or len(t) > MAX_NUMBER_DIGITS or not any(c.isdigit() for c in t):
        return None
    t = _DOLLAR.sub("", t).replace("{,}", ",")
    t, percent = _strip_units(t)
    t = _DOLLAR.sub("", t).strip()
    if not t:
        return None
    try:
        m = _MIXED_LATEX.fullmatch(t)
        if m:
            whole = int(m.group(2))
            num, den = _frac_args(m, 3)
            if den == 0 or num >= den:
                return None
            v = whole + Fraction(num, den)
            return Number(-v if m.group(1) == "-" else v, "frac", percent)
        m = _MIXED_SLASH.fullmatch(t)
        if m:
            whole, num, den = int(m.group(2)), int(m.group(3)), int(m.group(4))
            if den == 0 or num >= den:
                return None
            v = whole + Fraction(num, den)
            return Number(-v if m.group(1) == "-" else v, "frac", percent)
        if _THOUSANDS.fullmatch(t):  # before the spaces go: "1, 234" is a list, not 1234
            t = t.replace(",", "")
        t = re.sub(r"\s+", "", t)
        if _INT.fullmatch(t):
            return Number(Fraction(int(t)), "int", percent)
        if _DEC.fullmatch(t):
            digits = t.lstrip("+-").replace(".", "").lstrip("0")
            places = len(t.split(".", 1)[1])
            return Number(Fraction(t), "dec", percent, places=places, sig=len(digits))
        m = _POWER.fullmatch(t)
        if m:
            base, exp = int(m.group(2)), int(m.group(3))
            if abs(exp) > MAX_POWER_EXPONENT or (base > 1 and abs(exp) * math.log10(base) > 1000):
                return None
            if base == 0 and exp < 0:
                return None
            v = Fraction(base) ** exp
            v = -v if m.group(1) == "-" else v
            return Number(v, "int" if v.denominator == 1 else "frac", percent)
        m = _SLASH.fullmatch(t)
        if m:
            if int(m.group(3)) == 0:
                return None
            v = Fraction(int(m.group(2)), int(m.group(3)))
            return Number(-v if m.group(1) == "-" else v, "frac", percent)
        m = _LATEX_FRAC.fullmatch(t)
        if m:
            num, den = _frac_args(m, 2)
            if den == 0:
                return None
            v = Fraction(num, den)
            return Number(-v if m.group(1) == "-" else v, "frac", percent)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def _close(a: Fraction, b: Fraction) -> bool:
    return abs(a - b) <= _REL_TOL * max(abs(a), abs(b))


def _repeating(v: Fraction) -> bool:
    """True when v has no finite decimal expansion (its denominator has a prime factor besides 2, 5)."""
    d = v.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d != 1


def _candidates(n: Number, other_percent: bool) -> list[tuple[Fraction, int]]:
    """(value, decimal places) readings of n: a percent also reads as value/100 against a bare number."""
    out = [(n.value, n.places)]
    if n.percent and not other_percent:
        out.append((n.value / 100, n.places + 2))
    return out


def numbers_equal(gold: Number, pred: Number) -> bool:
    """Exact rational equality, with one tolerance: a decimal against a fraction that has no finite
    decimal expansion (1/3, 3/23) matches when it is within REL_TOL of it, or is the fraction
    correctly rounded to the written places, with 6+ significant digits or 6+ places (and 4+
    significant digits): 0.130435 for 3/23, 0.033333 for 1/30, not 0.000033 for 1/30000.
    Percent either way (module doc)."""
    kinds = {gold.kind, pred.kind}
    for a, places_a in _candidates(gold, pred.percent):
        for b, places_b in _candidates(pred, gold.percent):
            if a == b:
                return True
            if kinds == {"dec", "frac"}:
                if gold.kind == "frac":
                    r, d, places, sig = a, b, places_b, pred.sig
                else:
                    r, d, places, sig = b, a, places_a, gold.sig
                rounded = (sig >= 6 or places >= 6) and sig >= 4 and abs(r - d) * 2 * 10 ** places <= 1
                if _repeating(r) and (_close(r, d) or rounded):
                    return True
    return False


# ------------------------------------------------------------------ surds, multiples of pi, infinity

_SQRT_DIGIT = re.compile(r"\\sqrt(\d)")
_FRAC_DIGITS = re.compile(r"\\frac(\d)(\d)")
_ARG = r"\{(\d+)\}"
_TERM_PATTERNS = (
    # (family, regex, how to read coef numerator / denominator / radicand from the groups)
    ("sqrt", re.compile(r"(-?)(\d*)\\sqrt" + _ARG), lambda g: (g[1] or "1", "1", g[2])),
    ("sqrt", re.compile(r"(-?)\\frac\{(\d*)\\sqrt" + _ARG + r"\}" + _ARG), lambda g: (g[1] or "1", g[3], g[2])),
    ("sqrt", re.compile(r"(-?)\\frac" + _ARG + _ARG + r"\\sqrt" + _ARG), lambda g: (g[1], g[2], g[3])),
    ("sqrt", re.compile(r"(-?)(\d*)\\sqrt" + _ARG + r"/(\d+)"), lambda g: (g[1] or "1", g[3], g[2])),
    ("pi", re.compile(r"(-?)(\d*)\\pi"), lambda g: (g[1] or "1", "1", "1")),
    ("pi", re.compile(r"(-?)\\frac\{(\d*)\\pi\}" + _ARG), lambda g: (g[1] or "1", g[2], "1")),
    ("pi", re.compile(r"(-?)\\frac" + _ARG + _ARG + r"\\pi"), lambda g: (g[1], g[2], "1")),
    ("pi", re.compile(r"(-?)(\d*)\\pi/(\d+)"), lambda g: (g[1] or "1", g[2], "1")),
)
_INFINITY = {"\\infty": 1, "+\\infty": 1, "-\\infty": -1, "\\infinity": 1, "-\\infinity": -1, "infty": 1,
             "-infty": -1, "inf": 1, "-inf": -1, "\\inf": 1, "-\\inf": -1}
MAX_RADICAND = 10**8


def _square_free(m: int) -> tuple[int, int]:
    """m = s*s*r with r square-free: (s, r)."""
    s, r, p = 1, m, 2
    while p * p <= r:
        while r % (p * p) == 0:
            r //= p * p
            s *= p
        p += 1
    return s, r


def parse_term(s: str) -> Value | None:
    """A surd a*sqrt(m)/b, a multiple of pi a*pi/b, or +-infinity; a surd of a perfect square is a Number."""
    t = _SQRT_DIGIT.sub(r"\\sqrt{\1}", normalize(s))
    t = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", t)
    if t in _INFINITY:
        return Infinity(_INFINITY[t])
    if "\\sqrt" not in t and "\\pi" not in t:
        return None
    for family, pat, read in _TERM_PATTERNS:
        m = pat.fullmatch(t)
        if not m:
            continue
        num, den, rad = (int(x) for x in read(m.groups()))
        if den == 0 or rad > MAX_RADICAND:
            return None
        coef = Fraction(num, den) * (-1 if m.group(1) == "-" else 1)
        if family == "pi":
            return Term("pi", coef)
        root, rad = _square_free(rad)
        coef *= root
        if rad == 1 or coef == 0:
            return Number(coef, "int" if coef.denominator == 1 else "frac")
        return Term("sqrt", coef, rad)
    return None


def parse_value(s: str) -> Value | None:
    """A plain number, a surd, a multiple of pi or an infinity; None for anything else."""
    v = parse_number(s)
    return v if v is not None else parse_term(s)


def values_equal(a: Value, b: Value) -> bool | None:
    """Equal, not equal, or None when the two kinds cannot be compared without SymPy."""
    if isinstance(a, Number) and isinstance(b, Number):
        return numbers_equal(a, b)
    if type(a) is not type(b):
        return None
    return a == b  # Term: same family, coefficient and square-free radicand; Infinity: same sign


# ------------------------------------------------------------------ tuples, intervals, sets, matrices

_MATRIX = re.compile(r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}")


def _split_top(t: str, sep: str = ",") -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(t):
        ch = t[i]
        if ch == "\\" and i + 1 < len(t) and t[i + 1] in "{}":
            depth += 1 if t[i + 1] == "{" else -1
            i += 2
            continue
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif depth == 0 and t.startswith(sep, i):
            parts.append(t[start:i])
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    parts.append(t[start:])
    return parts


def _values(parts: list[str]) -> tuple | None:
    out = []
    for p in parts:
        if not p:
            return None
        v = parse_value(p)
        if v is None:
            return None
        out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class Struct:
    kind: str  # seq (tuple or interval: brackets matter for 2 elements) | set | matrix
    items: tuple
    brackets: str = ""


def parse_struct(s: str) -> Struct | None:
    """A tuple/interval, set or matrix whose entries are all values (parse_value); else None."""
    t = normalize(s)
    if "," not in t and "&" not in t and "\\\\" not in t:
        return None
    m = _MATRIX.fullmatch(t)
    if m:
        rows = [r for r in m.group(2).split("\\\\") if r]
        cells = [_values(r.split("&")) for r in rows]
        if not cells or any(c is None for c in cells) or len({len(c) for c in cells}) != 1:
            return None
        return Struct("matrix", tuple(cells))
    if t.startswith("\\{") and t.endswith("\\}"):
        items = _values(_split_top(t[2:-2]))
        return Struct("set", items) if items else None
    if len(t) >= 2 and t[0] in "([" and t[-1] in ")]" and _match_bracket(t) == len(t) - 1:
        parts = _split_top(t[1:-1])
        if len(parts) >= 2:
            items = _values(parts)
            return Struct("seq", items, t[0] + t[-1]) if items else None
        return None
    parts = _split_top(t)
    if len(parts) >= 2:
        items = _values(parts)
        return Struct("set", items) if items else None
    return None


def _match_bracket(t: str) -> int:
    """Index of the bracket closing t[0] (either kind closes either: intervals mix them)."""
    depth = 0
    for i, ch in enumerate(t):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                return i
    return -1


def structs_equal(a: Struct, b: Struct) -> bool | None:
    if a.kind != b.kind:
        return None
    if a.kind == "set":
        verdicts = [[values_equal(x, y) for y in b.items] for x in a.items]
        if any(v is None for row in verdicts for v in row):
            return None
        return all(any(row) for row in verdicts) and all(any(col) for col in zip(*verdicts))
    if len(a.items) != len(b.items):
        return False
    if a.kind == "seq" and len(a.items) == 2 and a.brackets != b.brackets:
        return False  # open vs closed ends of an interval
    rows_a = a.items if a.kind == "matrix" else (a.items,)
    rows_b = b.items if b.kind == "matrix" else (b.items,)
    result = True
    for ra, rb in zip(rows_a, rows_b):
        if len(ra) != len(rb):
            return False
        for x, y in zip(ra, rb):
            v = values_equal(x, y)
            if v is None:
                return None
            result = result and v
    return result


# ------------------------------------------------------------------ multiple choice

_CHOICE_GOLD = re.compile(r"\(?([A-J])\)?")
_CHOICE_PRED = (
    re.compile(r"\(?([A-Ja-j])\)?[.:]?"),  # B, (b), B., B:
    re.compile(r"\(([A-Ja-j])\).*"),  # (B) 12
    re.compile(r"([A-J])[.:)].+"),  # B) 12, B. 12
    re.compile(r"(?:option|choice|answer)\(?([A-Ja-j])\)?[.:]?", re.IGNORECASE),  # option B
)


def choice_letter(s: str, gold: bool = False) -> str | None:
    """The letter of a multiple-choice answer ("(B)", "\\text{B}", "B) 12"), upper case; else None."""
    t = normalize(s)
    t = _unwrap(t)
    if gold:
        m = _CHOICE_GOLD.fullmatch(t)
        return m.group(1) if m else None
    for pat in _CHOICE_PRED:
        m = pat.fullmatch(t)
        if m:
            return m.group(1).upper()
    return None


# ------------------------------------------------------------------ safety pre-check

_POWER_CHAIN = re.compile(r"\d+(?:\s*\^\s*[{(]?\s*\d+)+")
_FACTORIAL = re.compile(r"(\d+)\s*!")


def _power_chain_unsafe(chain: str) -> bool:
    nums = [int(x) for x in re.findall(r"\d+", chain)]
    val = nums[-1]
    for base in reversed(nums[:-1]):
        if base in (0, 1):
            val = base
            continue
        if val > MAX_POWER_EXPONENT or val * math.log10(base) > MAX_POWER_DIGITS:
            return True
        val = base ** val
    return False


def precheck(answer: str) -> str | None:
    """A reason to refuse the answer before SymPy sees it (``too_long`` / ``unsafe_expression``), or None."""
    if len(answer) > MAX_ANSWER_CHARS:
        return "too_long"
    depth = peak = 0
    for ch in answer:
        if ch == "{":
            depth += 1
            peak = max(peak, depth)
        elif ch == "}":
            depth -= 1
    if peak > MAX_BRACE_DEPTH:
        return "unsafe_expression"
    if "^" in answer:
        for m in _POWER_CHAIN.finditer(answer):
            if _power_chain_unsafe(m.group(0)):
                return "unsafe_expression"
    if "!" in answer:
        for m in _FACTORIAL.finditer(answer):
            if len(m.group(1)) > 6 or int(m.group(1)) > MAX_FACTORIAL:
                return "unsafe_expression"
    return None


# ------------------------------------------------------------------ structure guard


def _shape(t: str) -> str | None:
    """Outer bracket shape of a normalised answer: set | seq (tuple/interval) | None."""
    if t.startswith("\\{") and t.endswith("\\}"):
        return "set"
    if len(t) >= 2 and t[0] in "([" and t[-1] in ")]" and "," in t:
        return "seq"
    return None


# ------------------------------------------------------------------ gold analysis


@dataclass(frozen=True)
class Gold:
    raw: str  # what math-verify gets (delimiters stripped)
    norm: str
    value: Value | None
    struct: Struct | None
    choice: str | None
    has_eq: bool
    shape: str | None
    text: str | None  # the words of a \text{...} gold, lower case, spaces removed


@functools.lru_cache(maxsize=65536)
def analyze_gold(gold: str) -> Gold | None:
    """Everything the fast paths need about one gold (cached); None when the gold is empty."""
    if "\\boxed" in gold or "\\fbox" in gold:
        gold = last_boxed(gold) or ""
    raw = _strip_delims(_CONTROL.sub("", gold)).strip()
    if raw.endswith(".") and not raw.endswith(".."):
        raw = raw[:-1].rstrip()
    if not raw:
        return None
    norm = normalize(raw)
    value = parse_value(raw)
    return Gold(raw=raw.replace("\\varnothing", "\\emptyset"), norm=norm, value=value,
                struct=parse_struct(raw) if value is None else None, choice=choice_letter(raw, gold=True),
                has_eq="=" in norm, shape=_shape(norm), text=_text_words(raw))


_TEXT_GOLD = re.compile(r"\\text(?:bf|rm)?\s*\{\s*([A-Za-z][A-Za-z ]*)\s*\}")


def _text_words(raw: str) -> str | None:
    m = _TEXT_GOLD.fullmatch(raw.strip())
    return m.group(1).replace(" ", "").lower() if m else None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(8, n))


class Grader:
    """Grades model outputs against golds; see the module docstring for the rules.

    Args:
        timeout_s: hard limit per math-verify item (the worker is killed and replaced past it).
        workers: math-verify worker processes (default: usable CPUs, at most 8). They start on
            the first item that needs math-verify, or with `start()`.
        allow_last_number: let extraction fall back to the last number in the text.
        memory_limit_mb: address-space limit of each worker (None: no limit).

    Safe to share between threads (calls are serialised). Close it, or use it as a context manager.
    """

    def __init__(self, timeout_s: float = 5.0, workers: int | None = None, allow_last_number: bool = False,
                 memory_limit_mb: int | None = 4096) -> None:
        from eval.grading.pool import JudgePool

        self.timeout_s = float(timeout_s)
        self.workers = int(workers) if workers else _default_workers()
        self.allow_last_number = bool(allow_last_number)
        self.memory_limit_mb = memory_limit_mb
        self._pool = JudgePool(self.workers, self.timeout_s, memory_limit_mb=memory_limit_mb)
        self.stats = {"pairs": 0, "exact": 0, "numeric": 0, "choice": 0, "text": 0, "structure": 0,
                      "math_verify_items": 0, "deduplicated": 0}

    # -- identity

    @property
    def name(self) -> str:
        return f"{GRADER_NAME}/{GRADER_VERSION} + math-verify {_version('math-verify')}"

    def describe(self) -> dict:
        """What a results file should record about the grader."""
        return {
            "grader": self.name,
            "grader_version": GRADER_VERSION,
            "math_verify": _version("math-verify"),
            "latex2sympy2_extended": _version("latex2sympy2_extended"),
            "sympy": _version("sympy"),
            "timeout_s": self.timeout_s,
            "workers": self.workers,
            "start_method": self._pool.start_method,
            "allow_last_number": self.allow_last_number,
            "fast_paths": "exact, choice, numeric (numbers, surds, multiples of pi, tuples/intervals/sets/"
                          "matrices of them), text, structure",
            "numeric_rel_tol": REL_TOL,
            "percent": "a % side matches the other value as is or /100",
            "max_answer_chars": MAX_ANSWER_CHARS,
            "math_verify_call": "verify(parse(wrap(gold)), parse(wrap(answer))), gold first, default configs, "
                                "float_rounding=6, own timeouts off",
        }

    # -- life cycle

    def start(self) -> Grader:
        """Start the math-verify workers now (they otherwise start on first use)."""
        self._pool.start()
        return self

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- grading

    def grade(self, gold: str, text: str) -> Grade:
        return self.grade_many([(gold, text)])[0]

    def _prejudge(self, gold, text) -> Grade | tuple[str, str, str | None, str]:
        """A final Grade from extraction and the fast paths, or (mv_gold, mv_answer, answer, extractor)."""
        ans, extractor = extract_answer(text if isinstance(text, str) else "", self.allow_last_number)
        if ans is None:
            return Grade(False, None, extractor, "no_answer")
        g = analyze_gold(str(gold)) if gold is not None else None
        if g is None:
            return Grade(False, ans, extractor, "unparseable_gold")
        bad = precheck(ans)
        if bad:
            shown = ans if len(ans) <= ANSWER_RECORD_CHARS else ans[:ANSWER_RECORD_CHARS] + "..."
            return Grade(False, shown, extractor, bad)
        norm = normalize(ans)
        if norm and norm == g.norm:
            self.stats["exact"] += 1
            return Grade(True, ans, extractor, "exact")
        if g.choice:
            self.stats["choice"] += 1
            return Grade(choice_letter(ans) == g.choice, ans, extractor, "choice")
        if g.value is not None or g.struct is not None:
            target = ans
            if not g.has_eq:  # "x = 3" against a gold without "="
                m = _VAR_PREFIX.match(light_normalize(ans))
                if m:
                    target = light_normalize(ans)[m.end():]
            verdict = None
            if g.value is not None:
                v = parse_value(target)
                verdict = values_equal(g.value, v) if v is not None else None
            else:
                st = parse_struct(target)
                verdict = structs_equal(g.struct, st) if st is not None else None
            if verdict is not None:
                self.stats["numeric"] += 1
                return Grade(verdict, ans, extractor, "numeric")
        if g.text is not None:
            words = normalize(ans).lower()
            if re.fullmatch(r"[a-z]+", words):
                self.stats["text"] += 1
                return Grade(words == g.text, ans, extractor, "text")
        if g.shape and _shape(norm) and g.shape != _shape(norm):
            self.stats["structure"] += 1
            return Grade(False, ans, extractor, "structure")
        mv_ans = _CONTROL.sub("", ans).replace("\\varnothing", "\\emptyset")
        return g.raw, mv_ans, ans, extractor

    def grade_many(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> list[Grade]:
        """Grade (gold, text) pairs; the result list is in the same order."""
        n = len(pairs)
        results: list[Grade | None] = [None] * n
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="grading", unit="pair", file=sys.stderr)
        pending: list[tuple[int, str, str]] = []
        meta: dict[int, tuple[str | None, str]] = {}
        first: dict[tuple[str, str], int] = {}
        dups: dict[int, list[int]] = {}
        for i, (gold, text) in enumerate(pairs):
            r = self._prejudge(gold, text)
            if isinstance(r, Grade):
                results[i] = r
                if bar is not None:
                    bar.update(1)
                continue
            mv_gold, mv_ans, ans, extractor = r
            meta[i] = (ans, extractor)
            key = (mv_gold, mv_ans)
            if key in first:  # same gold and answer in this batch (common in maj@k): judge once
                dups.setdefault(first[key], []).append(i)
                self.stats["deduplicated"] += 1
                continue
            first[key] = i
            pending.append((i, mv_gold, mv_ans))
        self.stats["pairs"] += n
        self.stats["math_verify_items"] += len(pending)

        def on_result(i: int, correct: bool, reason: str) -> None:
            for j in (i, *dups.get(i, ())):
                ans, extractor = meta[j]
                results[j] = Grade(bool(correct), ans, extractor, reason)
                if bar is not None:
                    bar.update(1)

        try:
            if pending:
                self._pool.run(pending, on_result)
        finally:
            if bar is not None:
                bar.close()
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # should not happen; never return a hole
            for i in missing:
                ans, extractor = meta.get(i, (None, "none"))
                results[i] = Grade(False, ans, extractor, "error:lost")
        return results  # type: ignore[return-value]

    @property
    def pool_stats(self) -> dict:
        return dict(self._pool.stats)
