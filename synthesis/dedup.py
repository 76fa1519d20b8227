"""Exact and near-duplicate detection for generated problems (MinHash LSH, verified by true Jaccard).

Two texts are *exact* duplicates when their normalized forms (`normalize_text`) are equal, so
changes of case, spacing, punctuation or `$...$` math delimiters do not hide a copy. They are
*near* duplicates when the Jaccard similarity of their word-shingle sets (`shingles`) is at least
the threshold. MinHash LSH only proposes candidates; every candidate is checked with the exact
Jaccard of the two shingle sets, so an LSH false positive never drops a row.

`find_duplicates` keeps the first occurrence and compares each later text only against texts it
has kept: in a chain A ~ B ~ C where C is not similar enough to A, B is dropped and C is kept.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from typing import TYPE_CHECKING

from reasoning.types import InputError

if TYPE_CHECKING:  # importing datasketch pulls in scipy.integrate (~0.8 s): only when first needed
    from datasketch import MinHash

# Everything that is not a letter, a digit or a symbol with math meaning is punctuation here.
# `_` is inside \w, so it is named separately: it only appears in LaTeX markup such as x_1.
# A period is kept only as a decimal point (followed by a digit); a sentence-ending period is
# noise that would stop "Find x." from matching "Find x".
_PUNCT = re.compile(r"[^\w+\-*/=^<>().%]|_|\.(?!\d)")
# "1,000" and "1000" are the same number; the comma would otherwise become a token boundary.
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TOKEN = re.compile(r"[^\W_]+|[+\-*/=^<>().%]")

# The recall the LSH banding must reach at exactly the threshold Jaccard (see `_lsh_params`).
_LSH_RECALL = 0.995


def normalize_text(text: str) -> str:
    """The text as compared for exact duplicates.

    NFKC (so full-width digits and ligatures match their plain forms), lowercase, thousands commas
    inside numbers removed, punctuation replaced by a space except characters that carry math
    meaning (letters, digits, ``+ - * / = ^ < > ( ) %`` and a decimal point), whitespace runs
    collapsed to one space, ends stripped. LaTeX markup loses its backslashes, braces and dollar
    signs, so ``$\\frac{1}{2}$`` and ``\\frac{1}{2}`` normalize alike.
    """
    if not isinstance(text, str):
        raise InputError(f"expected text, got {type(text).__name__}; pass each problem as a string")
    s = unicodedata.normalize("NFKC", text).lower()
    s = _THOUSANDS_COMMA.sub("", s)
    # Replacing with a space (not deleting) keeps "a,b" two words and "\frac{a}{b}" three.
    s = _PUNCT.sub(" ", s)
    return " ".join(s.split())


def _tokens(normalized: str) -> list[str]:
    """Runs of letters/digits and single math symbols of an already normalized text."""
    return _TOKEN.findall(normalized)


def _shingles_of_tokens(tokens: list[str], size: int) -> set[str]:
    """Space-joined `size`-grams of the tokens; one shingle of them all when there are fewer."""
    if not tokens:
        return set()
    if len(tokens) < size:
        # A very short text still needs a fingerprint, or it could never be a near duplicate.
        return {" ".join(tokens)}
    # zip over shifted views builds the n-grams in C instead of slicing once per position.
    return {" ".join(gram) for gram in zip(*(tokens[k:] for k in range(size)))}


def shingles(text: str, size: int = 3) -> set[str]:
    """The word `size`-grams of the normalized text, each joined by single spaces.

    Tokens are runs of letters/digits and single math symbols of `normalize_text(text)`. A text
    with fewer than `size` tokens gives one shingle of all its tokens; an empty one gives an empty set.
    """
    _check_shingle_size(size)
    return _shingles_of_tokens(_tokens(normalize_text(text)), size)


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b|; two empty sets count as identical (1.0)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class Duplicate:
    """One dropped text: which earlier kept text it duplicates, how, and how similar they are."""

    index: int  # the dropped item
    kept_index: int  # the earlier, kept item it duplicates
    kind: str  # "exact" (same normalized text) or "near" (shingle Jaccard >= threshold)
    similarity: float  # Jaccard of the two shingle sets (1.0 for exact)


def _check_shingle_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputError(f"shingle size must be a whole number >= 1, got {size!r}; 3 (word trigrams) is typical")


def _check_params(threshold: float, num_perm: int, shingle_size: int, seed: int) -> None:
    """Raise InputError naming the bad dedup parameter and a sensible value."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise InputError(f"dedup threshold must be a number in (0, 1], got {threshold!r}; "
                         "0.8 is typical (1.0 drops only identical shingle sets)")
    if isinstance(num_perm, bool) or not isinstance(num_perm, int) or num_perm < 16:
        raise InputError(f"num_perm must be a whole number >= 16, got {num_perm!r}; "
                         "128 is typical (more is slower but estimates similarity better)")
    _check_shingle_size(shingle_size)
    # numpy's RandomState, which draws the MinHash permutations, takes seeds in [0, 2**32).
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise InputError(f"dedup seed must be a whole number in [0, 2**32), got {seed!r}; the default is 1")


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for the LSH index so that a pair at exactly `threshold` is proposed with
    probability >= _LSH_RECALL.

    datasketch's own choice balances false positives against false negatives and puts the middle
    of its S-curve at the threshold: at threshold 0.8 and 128 permutations a pair with Jaccard 0.85
    is proposed only ~70% of the time. False positives cost us only a set intersection (every
    candidate is verified), so we take the sharpest banding (most rows per band) that still
    reaches the recall target. At least two bands, as datasketch requires.
    """
    best = (num_perm, 1)  # one row per band: the highest recall the permutations allow
    for rows in range(1, num_perm // 2 + 1):
        bands = num_perm // rows
        recall = 1.0 - (1.0 - threshold ** rows) ** bands
        if recall >= _LSH_RECALL:
            best = (bands, rows)
    return best


def _best_kept(candidates: list[int], shingle_set: set[str], kept_shingles: dict[int, set[str]]) -> tuple[int, float]:
    """The candidate with the highest true Jaccard (ties: lowest index) and that Jaccard."""
    best_index, best_sim = -1, -1.0
    for k in sorted(candidates):
        sim = jaccard(shingle_set, kept_shingles[k])
        if sim > best_sim:  # strict: on a tie the lower index, seen first, stays
            best_index, best_sim = k, sim
    return best_index, best_sim


@dataclass(frozen=True)
class Fingerprint:
    """What dedup needs of one text, computable ahead of time (e.g. while a pipeline waits on a server)."""

    normalized: str
    shingles: frozenset[str]
    minhash: MinHash | None  # None when the text has no shingles
    num_perm: int
    seed: int
    shingle_size: int


@lru_cache(maxsize=8)
def _template(num_perm: int, seed: int) -> MinHash:
    # Drawing the permutations is the slow part of building a MinHash: draw them once per setting.
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=seed)


def fingerprint(text: str, num_perm: int = 128, shingle_size: int = 3, seed: int = 1) -> Fingerprint:
    norm = normalize_text(text)
    shingle_set = frozenset(_shingles_of_tokens(_tokens(norm), shingle_size))
    minhash = None
    if shingle_set:
        minhash = _template(num_perm, seed).copy()
        # A MinHash is a minimum over its inputs, so their (hash-seeded) set order does not matter.
        minhash.update_batch([s.encode("utf-8") for s in shingle_set])
    return Fingerprint(norm, shingle_set, minhash, num_perm, seed, shingle_size)


def find_duplicates(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 3,
                    seed: int = 1, fingerprints: Sequence[Fingerprint | None] | None = None) -> list[Duplicate]:
    """The texts to drop as duplicates of earlier kept texts, sorted by index.

    Texts are scanned in order and the first occurrence is kept. A later text is an "exact"
    duplicate when its normalized text equals a kept text's; otherwise a "near" duplicate when a
    kept text's shingle set has true Jaccard >= `threshold` with its own (MinHash LSH, built with
    `num_perm` permutations and `seed`, finds the candidates; the Jaccard verifies them). Among
    several kept matches the most similar wins, ties to the lowest index. Dropped texts never
    become targets, so a chain of small edits does not drag far-apart texts together.
    Texts that normalize to nothing can only be exact duplicates of each other.
    `fingerprints[i]`, when given and made with the same settings, saves recomputing text i's.
    """
    _check_params(threshold, num_perm, shingle_size, seed)
    if not texts:
        return []
    if fingerprints is not None and len(fingerprints) != len(texts):
        raise ValueError(f"{len(fingerprints)} fingerprints for {len(texts)} texts")
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=_lsh_params(threshold, num_perm))
    kept_by_text: dict[str, int] = {}
    kept_shingles: dict[int, frozenset[str]] = {}
    duplicates: list[Duplicate] = []
    for i, text in enumerate(texts):
        fp = fingerprints[i] if fingerprints is not None else None
        if fp is None or (fp.num_perm, fp.seed, fp.shingle_size) != (num_perm, seed, shingle_size):
            fp = fingerprint(text, num_perm, shingle_size, seed)
        norm, shingle_set, minhash = fp.normalized, fp.shingles, fp.minhash
        if norm in kept_by_text:
            duplicates.append(Duplicate(index=i, kept_index=kept_by_text[norm], kind="exact", similarity=1.0))
            continue
        if minhash is not None:
            candidates = lsh.query(minhash)
            if candidates:
                kept_index, sim = _best_kept(candidates, shingle_set, kept_shingles)
                if sim >= threshold:
                    duplicates.append(Duplicate(index=i, kept_index=kept_index, kind="near", similarity=sim))
                    continue
            lsh.insert(i, minhash, check_duplication=False)  # keys are unique positions
        kept_by_text[norm] = i
        kept_shingles[i] = shingle_set
    return duplicates


__all__ = ["Duplicate", "Fingerprint", "find_duplicates", "fingerprint", "jaccard", "normalize_text", "shingles"]
