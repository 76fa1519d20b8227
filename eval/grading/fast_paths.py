"""The fast paths that need no SymPy: plain numbers, surds, multiples of pi, infinity, tuples /
intervals / sets / matrices of those, multiple-choice letters, and the set-vs-tuple shape guard.

See `eval.grading.equivalence` for the rules they implement."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from eval.grading.normalize import unwrap, light_normalize, normalize

MAX_POWER_EXPONENT = 10_000  # a^b with b above this is refused before SymPy evaluates it
REL_TOL = 1e-6
_REL_TOL = Fraction(str(REL_TOL))  # exact, so 0.333333 vs 1/3 (relative error exactly 1e-6) is in
MAX_NUMBER_DIGITS = 400  # plain numbers longer than this are left to the other checks
# A decimal gold with this many significant digits was stored as a float ("1234.0999999996",
# "0.6666666667"): it matches within FLOAT_GOLD_REL_TOL. Shorter decimals and integers stay exact,
# so "0.333" is not 1/3 and "145.0" is exactly 145.
FLOAT_NOISE_DIGITS = 10
FLOAT_GOLD_REL_TOL = 1e-6
MAX_SCI_EXPONENT = 400


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
# Scientific notation, the whole value only (never a "2e" inside an expression): 6.0e23, 6.0\times10^{23}.
_SCI_E = re.compile(r"([+-]?\d+(?:\.\d+)?)[eE]([+-]?\d{1,3})")
_SCI_TIMES = re.compile(r"([+-]?\d+(?:\.\d+)?)(?:\\times|\\cdot|×|\*)10\^\{?([+-]?\d{1,3})\}?")
_PAREN_UNIT = re.compile(r"(?<=[\d}])\s*\(\s*[A-Za-z][A-Za-z .]*\)\s*$")  # "7 (marbles)"
_THIN_THOUSANDS = re.compile(r"(?<=\d)(?:\\,|\\ |\\thinspace\s*|\u2009|\u202f)(?=\d{3}(?!\d))")
VAR_PREFIX = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?=\S)")


def _strip_units(t: str) -> tuple[str, bool]:
    """Remove trailing units, degree signs and percent; report whether a percent was seen."""
    percent = False
    for _ in range(4):
        before = t
        t = _PAREN_UNIT.sub("", t)
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
    t = light_normalize(_THIN_THOUSANDS.sub("", s))  # "10\,000": a thin space between thousands
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
        m = _SCI_E.fullmatch(t) or _SCI_TIMES.fullmatch(t)
        if m:
            mantissa, exp = m.group(1), int(m.group(2))
            if abs(exp) > MAX_SCI_EXPONENT:
                return None
            digits = mantissa.lstrip("+-").replace(".", "").lstrip("0")
            return Number(Fraction(mantissa) * Fraction(10) ** exp, "dec", percent, sig=len(digits))
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


def numbers_equal(gold: Number, pred: Number, float_tol: float = FLOAT_GOLD_REL_TOL) -> bool:
    """Exact rational equality, with one tolerance: a decimal against a fraction that has no finite
    decimal expansion (1/3, 3/23) matches when it is within REL_TOL of it, or is the fraction
    correctly rounded to the written places, with 6+ significant digits or 6+ places (and 4+
    significant digits): 0.130435 for 3/23, 0.033333 for 1/30, not 0.000033 for 1/30000.
    Percent either way (module doc)."""
    kinds = {gold.kind, pred.kind}
    noisy = gold.kind == "dec" and gold.sig >= FLOAT_NOISE_DIGITS  # a float written out in full
    tol = Fraction(str(float_tol))
    for a, places_a in _candidates(gold, pred.percent):
        for b, places_b in _candidates(pred, gold.percent):
            if a == b:
                return True
            if noisy and abs(a - b) <= tol * max(abs(a), abs(b)):
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


def values_equal(a: Value, b: Value, float_tol: float = FLOAT_GOLD_REL_TOL) -> bool | None:
    """Equal, not equal, or None when the two kinds cannot be compared without SymPy."""
    if isinstance(a, Number) and isinstance(b, Number):
        return numbers_equal(a, b, float_tol)
    if type(a) is not type(b):
        return None
    return a == b  # Term: same family, coefficient and square-free radicand; Infinity: same sign


# ------------------------------------------------------------------ tuples, intervals, sets, matrices

_MATRIX = re.compile(r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}")


def split_top_level(t: str, sep: str = ",") -> list[str]:
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
        items = _values(split_top_level(t[2:-2]))
        return Struct("set", items) if items else None
    if len(t) >= 2 and t[0] in "([" and t[-1] in ")]" and _match_bracket(t) == len(t) - 1:
        parts = split_top_level(t[1:-1])
        if len(parts) >= 2:
            items = _values(parts)
            return Struct("seq", items, t[0] + t[-1]) if items else None
        return None
    parts = split_top_level(t)
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


def structs_equal(a: Struct, b: Struct, float_tol: float = FLOAT_GOLD_REL_TOL) -> bool | None:
    if a.kind != b.kind:
        return None
    if a.kind == "set":
        verdicts = [[values_equal(x, y, float_tol) for y in b.items] for x in a.items]
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
            v = values_equal(x, y, float_tol)
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


_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:\\text\s*\{\s*)?(?:\\,|\\ |~)?\s*([AaPp])\.?\s*[Mm]\.?\s*\}?")
_CLOCK_24 = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def parse_clock(s: str) -> tuple[int, int, int] | None:
    """(hour 0-23, minute, second) of a clock time ("3:15 p.m.", "3:15 \\text{ pm}", "15:15"); else None."""
    t = unwrap(light_normalize(s)).strip()
    m = _CLOCK.fullmatch(t)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if not 1 <= hour <= 12 or minute > 59:
            return None
        hour = hour % 12 + (12 if m.group(4).lower() == "p" else 0)
        return hour, minute, int(m.group(3) or 0)
    m = _CLOCK_24.fullmatch(t)
    if m and int(m.group(1)) <= 23 and int(m.group(2)) <= 59:
        return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    return None


_CHOICE_WITH_VALUE = re.compile(r"\(?([A-J])[).:]\s*(.+)|\(([A-J])\)\s*(.+)")


def choice_with_value(gold: str) -> tuple[str, str] | None:
    """(letter, the choice's own text) of a gold written as "(D) 42" or "D) 42"; else None."""
    m = _CHOICE_WITH_VALUE.fullmatch(unwrap(light_normalize(gold)))
    if not m:
        return None
    letter, value = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return letter, value.strip()


def choice_letter(s: str, gold: bool = False) -> str | None:
    """The letter of a multiple-choice answer ("(B)", "\\text{B}", "B) 12"), upper case; else None."""
    t = normalize(s)
    t = unwrap(t)
    if gold:
        m = _CHOICE_GOLD.fullmatch(t)
        return m.group(1) if m else None
    for pat in _CHOICE_PRED:
        m = pat.fullmatch(t)
        if m:
            return m.group(1).upper()
    return None


# ------------------------------------------------------------------ structure guard


def answer_shape(t: str) -> str | None:
    """Outer bracket shape of a normalised answer: set | seq (tuple/interval) | None."""
    if t.startswith("\\{") and t.endswith("\\}"):
        return "set"
    if len(t) >= 2 and t[0] in "([" and t[-1] in ")]" and "," in t:
        return "seq"
    return None
