"""How fast is parafuse's Grader against plain math-verify, and how often do they agree?

Generates (gold, model output) pairs: integers, fractions, decimals, percentages, LaTeX expressions
(roots, pi, polynomials, powers), sets, intervals, tuples, multiple-choice letters, `x = v` answers,
text answers, outputs with no final answer at all, and the real-world formats: unanchored endings,
several answers, `Final Answer:` sentences, golds with units, thousands separators, clock times,
scientific notation, plain words and float noise, and lettered choices; about 40 % of them wrong. Each output is a
few sentences of reasoning with inline math and numbers, then the answer in one of the usual
forms (`\\boxed{}`, `Final Answer:`, `#### N`, "the answer is ...").

Both graders see the same pairs in one run:

- parafuse: `Grader(...).grade_many(pairs)` (fast paths, then math-verify in worker processes with
  a hard per-item time limit). Its start-up (workers, warm-up) is timed separately.
- math-verify: `verify(parse("$" + gold + "$"), parse(output))` per pair in the main thread with
  default settings (its own SIGALRM timeouts on). The gold is put in `$...$` because math-verify
  reads LaTeX only inside math delimiters; a bare `\\frac{1}{2}` gold would not parse. It is
  warmed up on a few pairs first, so neither side pays first-call costs in the timed part.

Every disagreement is listed on stderr as (gold, output tail, parafuse verdict and reason,
math-verify verdict). The generator also knows the verdict it meant for each pair (right or
wrong on purpose; a truncated output is wrong), so both graders are scored against that too.
Then exactly one JSON line goes to stdout:
`ratio` = parafuse pairs/s over math-verify pairs/s; `target` = the ratio we aim for.

    .venv/bin/python benches/grading.py                 # 2400 pairs
    .venv/bin/python benches/grading.py --pairs 500     # quick check
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import Counter
from fractions import Fraction

from benchlib.common import emit, log, parser  # log: progress and the disagreement list go to stderr


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(
        "Throughput and agreement of parafuse's Grader against plain math-verify "
                    "(parse + verify per pair in the main thread) on generated (gold, model output) pairs. "
                    "Lists every disagreement on stderr; ends with one JSON line on stdout: "
                    "ratio = parafuse pairs/s / math-verify pairs/s.")
    p.add_argument("--pairs", type=int, default=2400, help="number of generated (gold, output) pairs")
    p.add_argument("--seed", type=int, default=0, help="generator seed (same seed, same pairs)")
    p.add_argument("--workers", type=int, default=None,
                   help="parafuse math-verify worker processes (default: usable CPUs, at most 8)")
    p.add_argument("--timeout", type=float, default=5.0, help="parafuse's hard per-item time limit, seconds")
    p.add_argument("--target", type=float, default=3.0, help="the speed-up over plain math-verify we aim for")
    p.add_argument("--max-listed", type=int, default=0,
                   help="list at most this many disagreements on stderr (0: all of them)")
    return p.parse_args(argv)


# ------------------------------------------------------------------ pair generator

NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana")
THINGS = ("apples", "marbles", "tickets", "books", "coins", "stickers")


def reasoning(rng: random.Random) -> str:
    """A few sentences of plausible working with inline math and stray numbers."""
    a, b, c = rng.randint(2, 60), rng.randint(2, 60), rng.randint(2, 9)
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    pool = [
        f"{name} starts with {a} {thing} and buys {b} more, so there are {a + b} {thing} in total.",
        f"Let $x$ be the unknown. Then $x^2 - {a + b}x + {a * b} = 0$, which factors as $(x-{a})(x-{b})=0$.",
        f"We compute $\\frac{{{a}}}{{{c}}} \\cdot {c} = {a}$ and substitute back.",
        f"By the Pythagorean theorem, $d = \\sqrt{{{a}^2 + {b}^2}} = \\sqrt{{{a * a + b * b}}}$.",
        f"Multiplying both sides by {c} gives ${c}y = {c * a}$, hence $y = {a}$.",
        f"The sum of the first {c} terms is $S_{{{c}}} = \\frac{{{c}({c}+1)}}{{2}} = {c * (c + 1) // 2}$.",
        f"Note that ${a} \\times {b} = {a * b}$ and ${a * b} - {c} = {a * b - c}$.",
        "Wait, let me double-check this step.",
        f"Since the angle is ${c * 10}^\\circ$, its supplement is ${180 - c * 10}^\\circ$.",
        f"So the probability is $\\frac{{{c}}}{{{c + a}}}$ for one draw.",
        "Let me reconsider the constraints before finishing.",
        f"Taking the derivative, $f'(x) = {c}x^{{{c - 1}}}$, which vanishes only at $x = 0$.",
    ]
    k = rng.randint(2, 7)
    return " ".join(rng.choice(pool) for _ in range(k))


def wrap(rng: random.Random, answer: str, plain: str | None = None) -> str:
    """A model output that ends with `answer` in one of the usual forms."""
    body = reasoning(rng)
    style = rng.random()
    if style < 0.45:
        end = rng.choice([f"Therefore, the final answer is $\\boxed{{{answer}}}$.",
                          f"So the answer is $\\boxed{{{answer}}}$.",
                          f"\\[\n\\boxed{{{answer}}}\n\\]",
                          f"</think>\nThe result is $\\boxed{{{answer}}}$."])
    elif style < 0.65:
        end = rng.choice([f"\nFinal Answer: {plain or answer}", f"\n**Final Answer:** ${answer}$"])
    elif style < 0.8:
        end = f"The final answer is ${answer}$. I hope it is correct."
    elif style < 0.9 and plain is not None:
        end = f"\n#### {plain}"
    else:
        end = f"So the answer is ${answer}$."
    return body + " " + end


def gen_pair(rng: random.Random) -> tuple[str, str, str, bool]:  # noqa: C901 - one table of cases
    """(kind, gold, output, intended verdict)."""
    kind = rng.choices(
        ["int", "frac", "decimal", "percent", "sqrt", "pi", "poly", "power", "set", "interval", "tuple",
         "choice", "assign", "text", "none", "matrix", "expr", *NEW_KINDS],
        weights=[22, 12, 8, 4, 6, 4, 5, 3, 4, 5, 3, 6, 4, 2, 4, 2, 8] + [3] * len(NEW_KINDS))[0]
    wrong = rng.random() < 0.4
    if kind in NEW_KINDS:
        return (kind, *NEW_KINDS[kind](rng, wrong))
    if kind == "int":
        g = rng.choice([rng.randint(0, 99), rng.randint(100, 9999), rng.randint(10_000, 2_000_000)])
        p = g + rng.choice([-10, -1, 1, 2, 100]) if wrong else g
        shown = f"{p:,}" if p >= 1000 and rng.random() < 0.5 else str(p)
        if p >= 1000 and rng.random() < 0.2:
            shown = shown.replace(",", "{,}")
        return kind, str(g), wrap(rng, shown, plain=shown), not wrong
    if kind == "frac":
        b = rng.randint(2, 30)
        a = rng.randint(1, 3 * b)
        g = Fraction(a, b)
        gold = f"\\frac{{{g.numerator}}}{{{g.denominator}}}" if g.denominator > 1 else str(g.numerator)
        v = g + Fraction(1, rng.randint(2, 9)) if wrong else g
        k = rng.randint(1, 4)
        form = rng.random()
        if v.denominator == 1:
            shown = str(v.numerator)
        elif form < 0.4:
            shown = f"\\frac{{{v.numerator}}}{{{v.denominator}}}"
        elif form < 0.55:
            shown = f"\\dfrac{{{v.numerator * k}}}{{{v.denominator * k}}}"
        elif form < 0.7:
            shown = f"{v.numerator}/{v.denominator}"
        elif form < 0.85:
            shown = f"{float(v):.6f}".rstrip("0")
        else:
            shown = f"{float(v):.2f}"  # a rounded decimal: wrong unless it is exact
        # intended verdict: the 2-place decimal is right only when exact; the 6-place one is v
        # correctly rounded (right); the other forms are exact
        right = not wrong and (form < 0.85 or v.denominator == 1 or Fraction(shown) == v)
        return kind, gold, wrap(rng, shown, plain=shown), right
    if kind == "decimal":
        g = round(rng.uniform(0, 500), rng.choice([1, 2]))
        p = round(g + rng.choice([-0.5, 0.1, 1.0]), 2) if wrong else g
        shown = rng.choice([f"{p}", f"{p:.2f}", f"{p}0"]) if not wrong else f"{p}"
        return kind, f"{g}", wrap(rng, shown, plain=shown), not wrong
    if kind == "percent":
        g = rng.randint(1, 99)
        p = g + rng.choice([-5, 5, 10]) if wrong else g
        shown = rng.choice([f"{p}\\%", f"{p}", f"{p}\\%"])
        return kind, f"{g}\\%", wrap(rng, shown, plain=f"{p}%"), not wrong
    if kind == "sqrt":
        k, m = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7, 10])
        gold = f"{k}\\sqrt{{{m}}}"
        if wrong:
            shown = rng.choice([f"{k + 1}\\sqrt{{{m}}}", f"\\sqrt{{{k * k * m + 1}}}", f"{k}\\sqrt{{{m + 1}}}"])
        else:
            shown = rng.choice([gold, f"\\sqrt{{{k * k * m}}}", f"{k}\\sqrt{m}" if m < 10 else gold])
        return kind, gold, wrap(rng, shown), not wrong
    if kind == "pi":
        a, b = rng.randint(1, 12), rng.choice([1, 2, 3, 4, 6])
        gold = f"\\frac{{{a}\\pi}}{{{b}}}" if b > 1 else f"{a}\\pi"
        if wrong:
            shown = f"\\frac{{{a + 1}\\pi}}{{{b}}}" if b > 1 else f"{a + 1}\\pi"
        else:
            shown = rng.choice([gold, f"\\frac{{{a}}}{{{b}}}\\pi" if b > 1 else f"\\pi \\cdot {a}"])
        return kind, gold, wrap(rng, shown), not wrong
    if kind == "poly":
        r, s = rng.randint(-6, 6), rng.randint(-6, 6)
        gold = f"x^2{-(r + s):+d}x{r * s:+d}".replace("+0x", "").replace("+0", "").replace("-0", "")
        factored = f"(x{-r:+d})(x{-s:+d})"
        shown = f"(x{-r:+d})(x{-s - 1:+d})" if wrong else rng.choice([factored, gold])
        return kind, gold, wrap(rng, shown), not wrong
    if kind == "power":
        b, e = rng.randint(2, 5), rng.randint(2, 12)
        gold = str(b ** e)
        shown = f"{b}^{{{e + 1 if wrong else e}}}"
        return kind, gold, wrap(rng, shown), not wrong
    if kind == "set":
        items = sorted(rng.sample(range(-9, 10), rng.randint(2, 4)))
        gold = ", ".join(map(str, items))
        p = list(items)
        if wrong:
            p[rng.randrange(len(p))] += 20
        rng.shuffle(p)
        shown = rng.choice([", ".join(map(str, p)), "\\{" + ",".join(map(str, p)) + "\\}"])
        return kind, gold, wrap(rng, shown), not wrong
    if kind == "interval":
        a, b = sorted(rng.sample(range(-9, 10), 2))
        lo, hi = rng.choice("(["), rng.choice(")]")
        left = "-\\infty" if rng.random() < 0.2 else str(a)
        lo = "(" if left == "-\\infty" else lo
        gold = f"{lo}{left},{b}{hi}"
        if wrong:
            hi2 = ")" if hi == "]" else "]"
            shown = f"{lo}{left}, {b}{hi2}"
        else:
            shown = rng.choice([f"{lo}{left}, {b}{hi}", f"\\left{lo}{left}, {b}\\right{hi}"])
        return kind, gold, wrap(rng, shown), not wrong
    if kind == "tuple":
        x, y = rng.randint(-9, 9), rng.randint(-9, 9)
        gold = f"({x},{y})"
        shown = f"({y}, {x})" if wrong and x != y else (f"({x}, {y + 1})" if wrong else f"({x}, {y})")
        return kind, gold, wrap(rng, shown), not wrong
    if kind == "choice":
        g = rng.choice("ABCDE")
        p = rng.choice([c for c in "ABCDE" if c != g]) if wrong else g
        shown = rng.choice([p, f"({p})", f"\\text{{({p})}}", f"\\textbf{{({p})}}"])
        body = reasoning(rng)
        style = rng.random()
        if style < 0.5:
            return kind, g, f"{body} Therefore the answer is $\\boxed{{{shown}}}$.", not wrong
        if style < 0.75:
            return kind, g, f"{body}\nFinal Answer: {p}", not wrong
        return kind, g, f"{body} Comparing the options, the answer is ({p}).", not wrong
    if kind == "assign":
        v = rng.randint(-20, 20)
        p = v + 3 if wrong else v
        var = rng.choice("xyk")
        return kind, str(v), wrap(rng, f"{var} = {p}", plain=f"{var} = {p}"), not wrong
    if kind == "text":
        g = rng.choice(["Monday", "Tuesday", "odd", "even", "north"])
        p = rng.choice(["Friday", "south", "prime"]) if wrong else g
        return kind, f"\\text{{{g}}}", wrap(rng, f"\\text{{{p}}}"), not wrong
    if kind == "matrix":
        a, b, c, d = (rng.randint(-5, 9) for _ in range(4))
        gold = f"\\begin{{pmatrix}} {a} & {b} \\\\ {c} & {d} \\end{{pmatrix}}"
        shown = f"\\begin{{pmatrix}}{a}&{b}\\\\{c}&{d + (1 if wrong else 0)}\\end{{pmatrix}}"
        return kind, gold, wrap(rng, shown), not wrong
    if kind == "expr":  # symbolic answers only SymPy can compare
        a, b, c = rng.randint(1, 9), rng.choice([2, 3, 5, 6, 7]), rng.randint(2, 9)
        form = rng.randrange(4)
        if form == 0:
            gold, right, bad = f"{a}+\\sqrt{{{b}}}", f"\\sqrt{{{b}}}+{a}", f"{a}-\\sqrt{{{b}}}"
        elif form == 1:
            gold = f"\\frac{{{a}+\\sqrt{{{b}}}}}{{{c}}}"
            right, bad = f"\\frac{{\\sqrt{{{b}}}+{a}}}{{{c}}}", f"\\frac{{{a}+\\sqrt{{{b}}}}}{{{c + 1}}}"
        elif form == 2:
            gold = f"\\frac{{x+{a}}}{{x-{c}}}"
            right, bad = f"\\frac{{{a}+x}}{{x-{c}}}", f"\\frac{{x-{a}}}{{x-{c}}}"
        else:
            gold, right, bad = f"\\log_{{2}} {c + 1}", f"\\frac{{\\ln {c + 1}}}{{\\ln 2}}", f"\\log_{{2}} {c + 2}"
        return kind, gold, wrap(rng, bad if wrong else right), not wrong
    # none: the generation was cut off before any final answer
    g = rng.randint(1, 200)
    text = reasoning(rng)
    return kind, str(g), text[: rng.randint(len(text) // 2, len(text))], False


# ---- the real-world formats: each (rng, wrong) -> (gold, output, intended verdict) ----------------

def _unanchored(rng, wrong):
    g = rng.randint(2, 99)
    p = g + 1 if wrong else g
    end = rng.choice([f"\n${p}$", f"\nA: {p}", f"\n**Answer:** {p}", f"\n\n{p}",
                      f"\nSo we get $\\frac{{{2 * p}}}{{2}}$."])
    return str(g), reasoning(rng) + end, not wrong


def _multi(rng, wrong):
    a, b = rng.sample(range(-9, 10), 2)
    pa, pb = (a, b + 20) if wrong else (a, b)
    if rng.random() < 0.5:
        gold = [f"x={a}", f"x={b}"] if rng.random() < 0.5 else [str(a), str(b)]
        shown = f"\\boxed{{{pb}}} and \\boxed{{{pa}}}"
    else:
        gold = f"({a},{b}),({b},{a})"
        shown = f"\\boxed{{({pb},{pa})}} and \\boxed{{({pa},{pb})}}"
    return gold, reasoning(rng) + " The solutions are " + shown + ".", not wrong


def _sentence(rng, wrong):
    g = rng.randint(2, 500)
    p = g + 3 if wrong else g
    end = rng.choice([f"\nFinal Answer: The smallest such $n$ is {p}.",
                      f"\nFinal Answer: It takes {p} minutes in total.",
                      f"\nFinal Answer: We need $x = {p}$ for the balance."])
    return str(g), reasoning(rng) + end, not wrong


def _units(rng, wrong):
    g = rng.randint(2, 900)
    p = g + 1 if wrong else g
    unit = rng.choice(["marbles", "km", "cm", "apples"])
    gold = rng.choice([f"{g} ({unit})", f"{g} {unit}", f"{g} \\text{{ {unit}}}"])
    return gold, wrap(rng, str(p), plain=str(p)), not wrong


def _thousands(rng, wrong):
    g = rng.randint(1_000, 999_999)
    p = g + 10 if wrong else g
    gold = rng.choice([f"{g:,}", f"{g:,}".replace(",", "{,}"), f"{g:,}".replace(",", "\\,"), str(g)])
    return gold, wrap(rng, rng.choice([str(p), f"{p:,}"])), not wrong


def _clock(rng, wrong):
    h, m = rng.randint(1, 12), rng.choice([0, 15, 30, 45])
    half = rng.choice(["a.m.", "p.m."])
    gold = f"\\text{{{h}:{m:02d} {half}}}"
    same, other = ("am", "pm") if half == "a.m." else ("pm", "am")
    return gold, wrap(rng, f"{h}:{m:02d} \\text{{ {other if wrong else same}}}"), not wrong


def _scientific(rng, wrong):
    mantissa, exp = rng.randint(11, 99) / 10, rng.randint(3, 30)
    p_exp = exp + 1 if wrong else exp
    if rng.random() < 0.5:
        return f"{mantissa}e{exp}", wrap(rng, f"{mantissa} \\times 10^{{{p_exp}}}"), not wrong
    return f"{mantissa} \\times 10^{{{exp}}}", wrap(rng, f"{mantissa}e{p_exp}"), not wrong


def _word_gold(rng, wrong):
    g = rng.choice(["yes", "no", "March", "blue", "Alice"])
    p = rng.choice([w for w in ("yes", "no", "March", "blue", "Alice") if w != g]) if wrong else g
    shown = rng.choice([p, p.capitalize(), f"\\text{{{p}}}"])
    return g, reasoning(rng) + f" So the answer is {shown}.", not wrong


def _float_gold(rng, wrong):
    value = Fraction(rng.randint(1, 999), rng.choice([3, 7, 9, 11]))
    gold = f"{float(value):.10f}"
    shown = f"{float(value + (Fraction(1, 100) if wrong else 0)):.6f}"
    return gold, wrap(rng, shown, plain=shown), not wrong


def _lettered_choice(rng, wrong):
    letter, value = rng.choice("ABCD"), rng.randint(10, 99)
    gold = f"({letter}) {value}"
    if rng.random() < 0.5:
        said = rng.choice([c for c in "ABCD" if c != letter]) if wrong else letter
        return gold, reasoning(rng) + f" So the answer is ({said}).", not wrong
    return gold, wrap(rng, str(value + 1 if wrong else value)), not wrong


NEW_KINDS = {"unanchored": _unanchored, "multi": _multi, "sentence": _sentence, "units": _units,
             "thousands": _thousands, "clock": _clock, "scientific": _scientific, "word_gold": _word_gold,
             "float_gold": _float_gold, "lettered": _lettered_choice}


def generate(n: int, seed: int) -> list[tuple[str, str, str, bool]]:
    rng = random.Random(seed)
    return [gen_pair(rng) for _ in range(n)]


# ------------------------------------------------------------------ the run


def run_math_verify(pairs: list[tuple[str, str]]) -> tuple[list[bool], float]:
    from math_verify import parse, verify

    def as_latex(gold) -> str:  # a list gold: its parts as one comma-separated answer
        return "$" + (", ".join(gold) if isinstance(gold, list) else gold) + "$"

    for gold, text in pairs[:5]:  # warm-up: regex compilation and SymPy caches
        verify(parse(as_latex(gold)), parse(text))
    t0 = time.perf_counter()
    verdicts = [bool(verify(parse(as_latex(gold)), parse(text))) for gold, text in pairs]
    return verdicts, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.disable(logging.WARNING)  # math-verify warns on every unparsable output
    from eval.grading.equivalence import Grader

    data = generate(args.pairs, args.seed)
    pairs = [(g, t) for _, g, t, _ in data]
    intended = [want for *_, want in data]
    kinds = Counter(k for k, *_ in data)
    log(f"{len(pairs)} pairs: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))

    t0 = time.perf_counter()
    grader = Grader(timeout_s=args.timeout, workers=args.workers)
    grader.start()
    startup = time.perf_counter() - t0
    log(f"parafuse: {grader.name}, {grader.workers} workers ({grader.describe()['start_method']}), "
        f"start-up {startup:.2f} s")
    t0 = time.perf_counter()
    grades = grader.grade_many(pairs)
    pf_s = time.perf_counter() - t0
    stats, pool_stats = dict(grader.stats), grader.pool_stats
    grader.close()
    log(f"parafuse: {len(pairs) / pf_s:.0f} pairs/s ({pf_s:.2f} s); reasons "
        + json.dumps(Counter(g.reason for g in grades)) + f"; pool {json.dumps(pool_stats)}")

    mv, mv_s = run_math_verify(pairs)
    log(f"math-verify: {len(pairs) / mv_s:.0f} pairs/s ({mv_s:.2f} s)")

    disagreements = [(i, k) for i, ((k, *_), g, m) in enumerate(zip(data, grades, mv)) if g.correct != m]
    shown = disagreements if not args.max_listed else disagreements[: args.max_listed]
    log(f"\n{len(disagreements)} disagreements (gold | output tail | parafuse | math-verify):")
    for i, kind in shown:
        gold, text = pairs[i]
        g = grades[i]
        tail = text[-70:].replace("\n", "\\n")
        log(f"  [{i}] {kind:9} gold={gold!r} | ...{tail!r} | parafuse={g.correct} ({g.reason}, "
            f"{g.extractor}: {g.answer!r}) | math-verify={mv[i]}")
    by_kind = Counter(k for _, k in disagreements)
    log("disagreements by kind: " + json.dumps(dict(by_kind.most_common())))
    pf_vs = sum(g.correct == w for g, w in zip(grades, intended)) / len(pairs)
    mv_vs = sum(m == w for m, w in zip(mv, intended)) / len(pairs)
    pf_off = Counter(k for (k, *_), g, w in zip(data, grades, intended) if g.correct != w)
    mv_off = Counter(k for (k, *_), m, w in zip(data, mv, intended) if m != w)
    log(f"agreement with the generator's intended verdicts: parafuse {pf_vs:.4f} (misses by kind "
        f"{json.dumps(dict(pf_off))}), math-verify {mv_vs:.4f} (misses by kind {json.dumps(dict(mv_off))})")

    pf_rate, mv_rate = len(pairs) / pf_s, len(pairs) / mv_s
    result = {
        "bench": "grading",
        "ratio": round(pf_rate / mv_rate, 2),
        "target": args.target,
        "pairs": len(pairs),
        "parafuse_seconds": round(pf_s, 3),
        "parafuse_pairs_per_s": round(pf_rate, 1),
        "parafuse_startup_s": round(startup, 3),
        "parafuse_pairs_per_s_incl_startup": round(len(pairs) / (pf_s + startup), 1),
        "math_verify_seconds": round(mv_s, 3),
        "math_verify_pairs_per_s": round(mv_rate, 1),
        "agreement": round(1 - len(disagreements) / len(pairs), 4),
        "disagreements": len(disagreements),
        "parafuse_vs_intended": round(pf_vs, 4),
        "math_verify_vs_intended": round(mv_vs, 4),
        "parafuse_false_positives": sum(g.correct and not w for g, w in zip(grades, intended)),
        "math_verify_false_positives": sum(m and not w for m, w in zip(mv, intended)),
        "parafuse_by_extractor": dict(Counter(g.extractor for g in grades).most_common()),
        "parafuse_correct": sum(g.correct for g in grades),
        "math_verify_correct": sum(mv),
        "math_verify_items": stats["math_verify_items"],
        "workers": args.workers or grader.workers,
        "grader": grader.name,
        "seed": args.seed,
    }
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
