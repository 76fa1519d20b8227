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
from importlib import metadata

from eval.grading.boxed import last_boxed
from eval.grading.extract import extract_answer, extract_parts
from eval.grading.fast_paths import (  # noqa: F401  (re-exported: tests and callers import these from here)
    FLOAT_GOLD_REL_TOL,
    VAR_PREFIX,
    MAX_NUMBER_DIGITS,
    MAX_POWER_EXPONENT,
    REL_TOL,
    Infinity,
    Number,
    Struct,
    Term,
    Value,
    answer_shape,
    choice_letter,
    choice_with_value,
    parse_clock,
    split_top_level,
    numbers_equal,
    parse_number,
    parse_struct,
    parse_term,
    parse_value,
    structs_equal,
    values_equal,
)
from eval.grading.normalize import CONTROL_CHARS, light_normalize, normalize, strip_delims, unwrap
from eval.records import Grade

GRADER_NAME = "parafuse-grader"
GRADER_VERSION = 1
MAX_ANSWER_CHARS = 1000  # longer "answers" are not answers (MATH's longest golds are ~200 chars)
MAX_BRACE_DEPTH = 50
MAX_POWER_DIGITS = 100_000  # integer powers with more digits than this are refused too (see fast_paths)
MAX_FACTORIAL = 5_000
MAX_PARTS = 8  # a gold with more parts than this is compared as one comma-separated answer
ANSWER_RECORD_CHARS = 300  # Grade.answer is cut to this for too_long answers


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
    text: str | None  # the words of a \text{...} or plain-word gold, lower case, spaces removed
    clock: tuple[int, int, int] | None = None  # a clock-time gold: (hour 0-23, minute, second)
    choice_value: str | None = None  # the choice's own text, for a gold written "(D) 42"


@functools.lru_cache(maxsize=65536)
def analyze_gold(gold: str) -> Gold | None:
    """Everything the fast paths need about one gold (cached); None when the gold is empty."""
    if "\\boxed" in gold or "\\fbox" in gold:
        gold = last_boxed(gold) or ""
    raw = strip_delims(CONTROL_CHARS.sub("", gold)).strip()
    if raw.endswith(".") and not raw.endswith(".."):
        raw = raw[:-1].rstrip()
    if not raw:
        return None
    norm = normalize(raw)
    value = parse_value(raw)
    choice = choice_letter(raw, gold=True)
    lettered = None if choice else choice_with_value(raw)
    if lettered:
        choice, choice_value = lettered
    else:
        choice_value = None
    return Gold(raw=raw.replace("\\varnothing", "\\emptyset"), norm=norm, value=value,
                struct=parse_struct(raw) if value is None else None, choice=choice,
                has_eq="=" in norm, shape=answer_shape(norm), text=_text_words(raw), clock=parse_clock(raw),
                choice_value=choice_value)


_TEXT_GOLD = re.compile(r"\\text(?:bf|rm)?\s*\{\s*([A-Za-z][A-Za-z '-]*)\s*\}")
# A gold of plain words (a name, yes/no, a month, a colour): two or more letters, at most four words.
_WORD_GOLD = re.compile(r"[A-Za-z][A-Za-z'-]+(?:\s+[A-Za-z][A-Za-z'-]*){0,3}")
_ARTICLES = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)


def _text_words(raw: str) -> str | None:
    raw = raw.strip()
    m = _TEXT_GOLD.fullmatch(raw)
    if m:
        raw = m.group(1)
    elif not _WORD_GOLD.fullmatch(raw):
        return None
    return words_key(raw)


def unwrap_text(answer: str) -> str:
    """An answer without its math delimiters and a whole-answer \\text{} wrapper."""
    return unwrap(light_normalize(answer))


def words_key(text: str) -> str:
    """Text compared as words: lower case, no leading article, no spaces, quotes or hyphens."""
    return re.sub(r"[\s'-]+", "", _ARTICLES.sub("", text.strip())).lower()


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
        strict_extraction: no fallback extraction tiers (answer_label, last_math, last_line) for
            outputs without an anchor: only boxed, Final Answer, #### and "the answer is".
        float_tol: relative tolerance for a decimal gold written out as a float (10+ significant
            digits, e.g. "0.6666666667"); other golds compare exactly.

    Safe to share between threads (calls are serialised). Close it, or use it as a context manager.
    """

    def __init__(self, timeout_s: float = 5.0, workers: int | None = None, allow_last_number: bool = False,
                 memory_limit_mb: int | None = 4096, strict_extraction: bool = False,
                 float_tol: float = FLOAT_GOLD_REL_TOL) -> None:
        from eval.grading.pool import JudgePool

        self.timeout_s = float(timeout_s)
        self.workers = int(workers) if workers else _default_workers()
        self.allow_last_number = bool(allow_last_number)
        self.strict_extraction = bool(strict_extraction)
        self.float_tol = float(float_tol)
        self.memory_limit_mb = memory_limit_mb
        self._pool = JudgePool(self.workers, self.timeout_s, memory_limit_mb=memory_limit_mb)
        self.stats = {"pairs": 0, "exact": 0, "numeric": 0, "choice": 0, "text": 0, "clock": 0, "structure": 0,
                      "parts": 0, "math_verify_items": 0, "deduplicated": 0}

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
            "strict_extraction": self.strict_extraction,
            "extraction_tiers": "boxed, final_answer, hashes, answer_is" + (
                "" if self.strict_extraction else ", answer_label, last_math, last_line") + (
                ", last_number" if self.allow_last_number else ""),
            "float_gold_rel_tol": self.float_tol,
            "fast_paths": "exact, choice, numeric (numbers, surds, multiples of pi, tuples/intervals/sets/"
                          "matrices of them), clock, text, structure; several answers matched part by part",
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
        ans, extractor = extract_answer(text if isinstance(text, str) else "", self.allow_last_number,
                                        self.strict_extraction)
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
        if g.choice and g.choice_value is None:
            self.stats["choice"] += 1
            return Grade(choice_letter(ans) == g.choice, ans, extractor, "choice")
        if g.choice_value is not None:  # "(D) 42": the letter, or the choice's own value
            letter = choice_letter(ans)
            if letter is not None:
                self.stats["choice"] += 1
                return Grade(letter == g.choice, ans, extractor, "choice")
            g = analyze_gold(g.choice_value) or g
        if g.clock is not None:
            clock = parse_clock(ans)
            if clock is not None:
                self.stats["clock"] += 1
                return Grade(clock == g.clock, ans, extractor, "clock")
        if g.value is not None or g.struct is not None:
            target = ans
            if not g.has_eq:  # "x = 3" against a gold without "="
                m = VAR_PREFIX.match(light_normalize(ans))
                if m:
                    target = light_normalize(ans)[m.end():]
            verdict = None
            if g.value is not None:
                v = parse_value(target)
                verdict = values_equal(g.value, v, self.float_tol) if v is not None else None
            else:
                struct = parse_struct(target)
                verdict = structs_equal(g.struct, struct, self.float_tol) if struct is not None else None
            if verdict is not None:
                self.stats["numeric"] += 1
                return Grade(verdict, ans, extractor, "numeric")
        if g.text is not None:
            words = words_key(unwrap_text(ans))
            if re.fullmatch(r"[a-z]+", words):
                self.stats["text"] += 1
                return Grade(words == g.text, ans, extractor, "text")
        if g.shape and answer_shape(norm) and g.shape != answer_shape(norm):
            self.stats["structure"] += 1
            return Grade(False, ans, extractor, "structure")
        mv_ans = CONTROL_CHARS.sub("", ans).replace("\\varnothing", "\\emptyset")
        return g.raw, mv_ans, ans, extractor

    # -- several answers

    def _parts(self, gold, text) -> tuple[list[str], list[str], str] | None:
        """(gold parts, predicted parts, extractor) when the pair is graded part by part, else None.

        A gold has several parts when it is a list, holds several \\boxed{}, or (when the output
        ends with a run of boxes) its top-level comma-separated items match their number.
        """
        if isinstance(gold, (list, tuple)):
            gold_parts = list_parts(gold)
        elif isinstance(gold, str) and gold.count("\\boxed") + gold.count("\\fbox") >= 2:
            from eval.grading.boxed import boxed_spans

            gold_parts = [content for _, _, content in boxed_spans(gold)]
        else:
            gold_parts = []
        boxes = extract_parts(text) if isinstance(text, str) else []
        if len(gold_parts) < 2 and len(boxes) >= 2 and isinstance(gold, str) and parse_value(gold) is None:
            split = [p.strip() for p in split_top_level(strip_delims(gold.strip())) if p.strip()]
            gold_parts = split if len(split) == len(boxes) else []
        if not 2 <= len(gold_parts) <= MAX_PARTS:
            return None
        if len(boxes) >= 2:  # the closing run of boxes is the answer: every box counts, extra ones too
            return gold_parts, boxes, "boxed+parts"
        ans, extractor = extract_answer(text if isinstance(text, str) else "", self.allow_last_number,
                                        self.strict_extraction)
        if ans is None:
            return gold_parts, [], extractor
        pred = [p.strip() for p in split_top_level(strip_delims(ans)) if p.strip()]
        return gold_parts, pred, extractor + "+parts"

    def _grade_parts(self, items: list[tuple[int, list[str], list[str], str]], results: list) -> None:
        """Grade each multi-part item: correct when its parts pair up one to one, each pair equivalent."""
        sub, where = [], []
        for k, (_, gold_parts, pred_parts, _) in enumerate(items):
            if len(pred_parts) == len(gold_parts):
                for gi, gp in enumerate(gold_parts):
                    for pi, pp in enumerate(pred_parts):
                        sub.append((gp, "\\boxed{" + pp + "}"))
                        where.append((k, gi, pi))
        verdicts = self.grade_many(sub) if sub else []
        ok: dict[int, set[tuple[int, int]]] = {}
        for (k, gi, pi), grade in zip(where, verdicts):
            if grade.correct:
                ok.setdefault(k, set()).add((gi, pi))
        for k, (i, gold_parts, pred_parts, extractor) in enumerate(items):
            answer = ", ".join(pred_parts) if pred_parts else None
            if not pred_parts:
                results[i] = Grade(False, None, extractor, "no_answer")
            elif len(pred_parts) != len(gold_parts):
                results[i] = Grade(False, answer, extractor, "parts_count")
            else:
                matched = _perfect_matching(len(gold_parts), ok.get(k, set()))
                results[i] = Grade(matched, answer, extractor, "parts" if matched else "parts_mismatch")
            self.stats["parts"] += 1

    def grade_many(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> list[Grade]:
        """Grade (gold, text) pairs; the result list is in the same order.

        A gold may be a list of answers (graded as a set: every part matched by one predicted part).
        """
        n = len(pairs)
        results: list[Grade | None] = [None] * n
        multi = []
        for i, (gold, text) in enumerate(pairs):
            parts = self._parts(gold, text)
            if parts is not None:
                multi.append((i, *parts))
        if multi:
            self._grade_parts(multi, results)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="grading", unit="pair", file=sys.stderr)
        pending: list[tuple[int, str, str]] = []
        meta: dict[int, tuple[str | None, str]] = {}
        first: dict[tuple[str, str], int] = {}
        dups: dict[int, list[int]] = {}
        for i, (gold, text) in enumerate(pairs):
            if results[i] is not None:  # graded part by part above
                if bar is not None:
                    bar.update(1)
                continue
            if isinstance(gold, (list, tuple)):  # one part is that part; too many are one answer
                parts = list_parts(gold)
                gold = parts[0] if len(parts) == 1 else ", ".join(parts) if parts else None
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


def _perfect_matching(size: int, edges: set[tuple[int, int]]) -> bool:
    """Whether gold parts 0..size-1 and predicted parts 0..size-1 pair up one to one along `edges`."""
    partner: dict[int, int] = {}  # predicted part -> gold part

    def place(gold: int, seen: set[int]) -> bool:
        for pred in range(size):
            if (gold, pred) in edges and pred not in seen:
                seen.add(pred)
                if pred not in partner or place(partner[pred], seen):
                    partner[pred] = gold
                    return True
        return False

    return all(place(gold, set()) for gold in range(size))


def list_parts(gold: Sequence) -> list[str]:
    """The non-blank parts of a list gold, as text."""
    return [str(g) for g in gold if str(g).strip()]
