"""Decontamination: flag generated texts that share a word n-gram with an evaluation benchmark problem.

Texts and benchmark problems are compared as lowercase word tokens (NFKC, then runs of ``a-z0-9``;
LaTeX commands such as ``\\frac`` become the word "frac", and all punctuation and spacing is
ignored). A text is contaminated when it contains any `n`-token window (default 8) of a reference
problem. Every reference n-gram lives in one hash table, so checking a text costs one lookup per
window of the text, whatever the number of references.

Problems shorter than `n` tokens (terse AIME/AMC statements) would have no n-gram at all, so one
with at least 4 tokens is matched whole: the text is flagged when it holds that exact token
sequence. Below 4 tokens a match says nothing ("find x") and the reference is ignored.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from eval.benchmarks import BENCHMARKS, load_benchmark
from reasoning.types import InputError

_WORD = re.compile(r"[a-z0-9]+")
MIN_SHORT_TOKENS = 4  # shorter references are ignored: a 3-word match is not evidence of a leak

Source = tuple[str, str]  # (benchmark, problem_id)
Window = tuple[str, ...]


@dataclass(frozen=True)
class Contamination:
    """One flagged text: the benchmark problem it overlaps and the first overlap found."""

    index: int  # which checked text (-1 from Decontaminator.check)
    benchmark: str
    problem_id: str  # id of the benchmark problem it overlaps
    ngram: str  # the first shared n-gram (or the whole short reference), space-joined tokens


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens of the text: NFKC, lowercase, then runs of a-z and 0-9."""
    if not isinstance(text, str):
        raise InputError(f"expected text, got {type(text).__name__}; pass each problem as a string")
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def _windows(tokens: list[str], size: int) -> Iterable[Window]:
    """Every contiguous `size`-token window, in order (built in C by zipping shifted views)."""
    return zip(*(tokens[k:] for k in range(size)))


def _first_hit(tokens: list[str], size: int, table: Mapping[Window, Source]) -> tuple[int, Window] | None:
    """(position, window) of the earliest window of the text found in the table, or None."""
    # The set test runs in C and almost every text is clean, so the ordered scan below only
    # runs for the rare text that does overlap.
    if table.keys().isdisjoint(_windows(tokens, size)):
        return None
    for pos, window in enumerate(_windows(tokens, size)):
        if window in table:
            return pos, window
    return None  # unreachable: isdisjoint said a window is in the table


class Decontaminator:
    """An index of benchmark problems to check generated texts against.

    `references` maps a benchmark name to its (problem_id, problem text) pairs. Every `n`-gram of
    every reference goes into one table (the first reference to contribute an n-gram owns it). A
    reference with fewer than `n` but at least 4 tokens is matched as a whole token sequence;
    one with fewer than 4 tokens is ignored.
    """

    def __init__(self, references: Mapping[str, Sequence[tuple[str, str]]], n: int = 8):
        if isinstance(n, bool) or not isinstance(n, int) or n < 3:
            raise InputError(f"decontamination n-gram size must be a whole number >= 3, got {n!r}; "
                             "8 is typical (13 is stricter, as in the GPT-3 report)")
        if not isinstance(references, Mapping):
            raise InputError(f"references must map a benchmark name to (problem_id, text) pairs, "
                             f"got {type(references).__name__}; use load_references()")
        self.n = n
        self._ngrams: dict[Window, Source] = {}
        # Short references by their length, so a text is checked with one window size per length.
        self._short: dict[int, dict[Window, Source]] = {}
        self._sizes: dict[str, int] = {}
        for benchmark, problems in references.items():
            self._sizes[benchmark] = len(problems)
            for pos, item in enumerate(problems):
                problem_id, text = _reference_pair(benchmark, pos, item)
                self._add(benchmark, problem_id, tokenize(text))

    def _add(self, benchmark: str, problem_id: str, tokens: list[str]) -> None:
        """Index one reference's n-grams, or the whole of it when it is short."""
        source = (benchmark, problem_id)
        if len(tokens) >= self.n:
            for gram in _windows(tokens, self.n):
                self._ngrams.setdefault(gram, source)
        elif len(tokens) >= MIN_SHORT_TOKENS:
            self._short.setdefault(len(tokens), {}).setdefault(tuple(tokens), source)

    @property
    def sizes(self) -> dict[str, int]:
        """Reference problems per benchmark, as given (references under 4 tokens included, though
        they can never match)."""
        return dict(self._sizes)

    def check(self, text: str) -> Contamination | None:
        """The overlap of one text with the references (index -1), or None when it is clean.

        When several references overlap, the one whose shared window starts earliest in the text
        is reported; at the same position the longer window (an n-gram before a short reference).
        """
        tokens = tokenize(text)
        best: tuple[int, int, Window, Source] | None = None  # (position, -length, window, source)
        tables = [(self.n, self._ngrams), *self._short.items()]
        for size, table in tables:
            if len(tokens) < size or not table:
                continue
            hit = _first_hit(tokens, size, table)
            if hit is not None:
                pos, window = hit
                candidate = (pos, -size, window, table[window])
                if best is None or candidate[:2] < best[:2]:
                    best = candidate
        if best is None:
            return None
        _, _, window, (benchmark, problem_id) = best
        return Contamination(index=-1, benchmark=benchmark, problem_id=problem_id, ngram=" ".join(window))

    def find(self, texts: Sequence[str]) -> list[Contamination]:
        """The contaminated texts among `texts`, in order, each with its position as `index`."""
        found = []
        for i, text in enumerate(texts):
            hit = self.check(text)
            if hit is not None:
                found.append(replace(hit, index=i))
        return found


def _reference_pair(benchmark: str, pos: int, item: object) -> tuple[str, str]:
    """(problem_id, text) of one reference entry, or InputError naming the bad entry."""
    if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], str)):
        raise InputError(f"reference {pos} of benchmark {benchmark!r} must be a (problem_id, text) pair, "
                         f"got {item!r:.80}; build references with load_references()")
    return str(item[0]), item[1]


def load_references(benchmarks: Sequence[str], data_dir: str | None) -> dict[str, list[tuple[str, str]]]:
    """{benchmark: [(problem_id, question), ...]} for each named benchmark, for `Decontaminator`.

    Reads `<data_dir>/<name>/test.jsonl` (the ../shared/data layout), or the Hugging Face Hub when
    data_dir is None. An unknown name raises the benchmark registry's own InputError (it lists the
    known ones); a missing file or an unreachable Hub raises an InputError that also says how to
    go on without it.
    """
    references: dict[str, list[tuple[str, str]]] = {}
    for name in benchmarks:
        try:
            problems = load_benchmark(name, data_dir=data_dir)
        except InputError as e:
            if str(name).strip().lower() not in BENCHMARKS:
                raise  # a typo: the registry's message lists the known names, and a data dir would not help
            raise InputError(f"decontamination needs the {name} test set: {e}. Pass --data-dir with a local "
                             "copy (e.g. ../shared/data) or --no-decontaminate") from None
        references[name] = [(p.id, p.question) for p in problems]
    return references


__all__ = ["Contamination", "Decontaminator", "load_references", "tokenize"]
