"""Dedup (exact + MinHash near-duplicates) and benchmark decontamination, on small hand-built data.

Near-duplicate tests compute the shingle Jaccard themselves from `shingles` and check their own
premises first (e.g. "B is above the threshold vs A, C is below it"), so a change in
normalization shows up as a failed premise rather than a silently different test.
"""
from __future__ import annotations

import json
import math
import random
import re

import pytest

from reasoning.types import InputError
from synthesis.decontam import Contamination, Decontaminator, load_references
from synthesis.dedup import Duplicate, find_duplicates, normalize_text, shingles

# 40 plain words (no punctuation), so word i of the text is token i of the normalized text.
BASE_WORDS = (
    "a farmer keeps 12 red apples and 7 green pears inside one wooden basket near the old barn "
    "door each monday he gives 3 apples to his kind neighbor then sells every remaining fruit at "
    "the busy weekend village market"
).split()
UNRELATED = ("A train leaves the station at 9 am traveling 60 miles per hour toward a city 240 miles "
             "away while a second train leaves the city at 10 am heading back at 80 miles per hour")
FEW_SHARED = ("A baker keeps 12 red cherries in one glass jar on a shelf and every friday she bakes "
              "two pies that need 5 cherries each how many cherries remain after three weeks of baking")


def jaccard_of(a: str, b: str, size: int = 3) -> float:
    """Shingle Jaccard computed here, independently of find_duplicates."""
    sa, sb = shingles(a, size), shingles(b, size)
    return len(sa & sb) / len(sa | sb)


def with_word(words: list[str], position: int, new: str) -> list[str]:
    out = list(words)
    out[position] = new
    return out


BASE = " ".join(BASE_WORDS)
B_TEXT = " ".join(with_word(BASE_WORDS, 10, "clay"))  # one word changed: 3 of 38 shingles differ
C_TEXT = " ".join(with_word(with_word(BASE_WORDS, 10, "clay"), 28, "buys"))  # B with a second change


def test_base_problem_has_forty_tokens():
    # The Jaccard figures in the other tests assume exactly 40 tokens, one per word.
    assert len(BASE_WORDS) == 40
    assert len(shingles(BASE)) == 38


# --------------------------------------------------------------------------- normalize / shingles

def test_normalize_ignores_case_spacing_punctuation_and_latex_delimiters():
    assert normalize_text("  What is   $\\frac{1}{2}$ of 1,000?\n") == "what is frac 1 2 of 1000"
    assert normalize_text("WHAT IS \\frac{1}{2} of 1000") == "what is frac 1 2 of 1000"


def test_normalize_keeps_math_symbols_and_decimal_points_but_drops_sentence_periods():
    assert normalize_text("Find x. If 2x+1=3.5, x^2 < 50%!") == "find x if 2x+1=3.5 x^2 < 50%"
    assert normalize_text("It costs 3.5 dollars") != normalize_text("It costs 35 dollars")


def test_normalize_applies_nfkc():
    assert normalize_text("Ｆｉｎｄ ４８") == "find 48"  # full-width letters and digits


def test_shingles_are_word_trigrams_with_math_symbols_as_tokens():
    assert shingles("What is 2+2?") == {"what is 2", "is 2 +", "2 + 2"}


def test_shingles_of_short_text_is_one_shingle_and_empty_text_gives_none():
    assert shingles("Hi there", size=3) == {"hi there"}
    assert shingles(" ?! ") == set()
    assert shingles("a b c d", size=1) == {"a", "b", "c", "d"}


def test_shingle_size_below_one_is_rejected():
    with pytest.raises(InputError, match="shingle size"):
        shingles("a b c", size=0)


# --------------------------------------------------------------------------- exact duplicates

def test_exact_duplicates_after_case_space_and_punctuation_changes_keep_first_occurrence():
    texts = [
        BASE,
        UNRELATED,
        "  " + BASE.upper().replace(" 12 ", ",   12 ") + "?!",
        UNRELATED.lower() + ".",
        BASE + "...",
    ]
    dups = find_duplicates(texts)
    assert dups == [
        Duplicate(index=2, kept_index=0, kind="exact", similarity=1.0),
        Duplicate(index=3, kept_index=1, kind="exact", similarity=1.0),
        Duplicate(index=4, kept_index=0, kind="exact", similarity=1.0),
    ]


def test_texts_with_no_words_are_exact_duplicates_of_each_other_only():
    dups = find_duplicates(["", BASE, " ?? ", "!"])
    assert [(d.index, d.kept_index, d.kind) for d in dups] == [(2, 0, "exact"), (3, 0, "exact")]


def test_empty_input_gives_no_duplicates():
    assert find_duplicates([]) == []


# --------------------------------------------------------------------------- near duplicates

def test_one_word_change_is_a_near_duplicate_with_its_true_jaccard():
    expected = jaccard_of(BASE, B_TEXT)
    assert expected == pytest.approx(35 / 41)  # premise: 3 of 38 shingles replaced
    dups = find_duplicates([BASE, UNRELATED, B_TEXT])
    assert dups == [Duplicate(index=2, kept_index=0, kind="near", similarity=expected)]
    assert dups[0].similarity >= 0.8


def test_unrelated_text_and_text_sharing_a_few_words_are_not_duplicates():
    assert jaccard_of(BASE, FEW_SHARED) > 0  # premise: some shingles are shared ("keeps 12 red")
    assert jaccard_of(BASE, FEW_SHARED) < 0.2
    assert find_duplicates([BASE, UNRELATED, FEW_SHARED]) == []


def test_text_below_threshold_is_kept_even_though_lsh_proposes_it():
    # With 16 permutations the LSH bands are wide and propose most of these pairs; only the
    # exact Jaccard check keeps them. Each pair is below the threshold of 0.8.
    rng = random.Random(7)
    texts = []
    for k in range(10):
        words = [f"w{k}x{j}" for j in range(40)]
        texts.append(" ".join(words))
        for pos in rng.sample(range(2, 38, 4), 3):  # three separated changes: 9 of 38 shingles differ
            words[pos] = f"changed{pos}"
        texts.append(" ".join(words))
    pair_sims = [jaccard_of(texts[i], texts[i + 1]) for i in range(0, 20, 2)]
    assert all(0.5 < s < 0.8 for s in pair_sims)  # premise
    assert find_duplicates(texts, threshold=0.8, num_perm=16) == []
    dropped = find_duplicates(texts, threshold=0.5, num_perm=16)
    assert [(d.index, d.kept_index) for d in dropped] == [(i + 1, i) for i in range(0, 20, 2)]


def test_chain_compares_only_against_kept_texts():
    # Premises: B is near A, C is near B, but C is below the threshold against A.
    assert jaccard_of(BASE, B_TEXT) >= 0.8
    assert jaccard_of(B_TEXT, C_TEXT) >= 0.8
    assert jaccard_of(BASE, C_TEXT) < 0.8
    dups = find_duplicates([BASE, B_TEXT, C_TEXT], threshold=0.8)
    assert [(d.index, d.kept_index, d.kind) for d in dups] == [(1, 0, "near")]


def test_most_similar_kept_text_wins_and_ties_go_to_the_lowest_index():
    # A and C are both kept at threshold 0.75 (their Jaccard is ~0.73). B sits exactly between
    # them (tie); D is C with its last word changed, so it is closer to C than to A.
    d_text = " ".join(with_word(C_TEXT.split(), 39, "bazaar"))
    assert jaccard_of(BASE, C_TEXT) < 0.75
    assert jaccard_of(B_TEXT, BASE) == jaccard_of(B_TEXT, C_TEXT) >= 0.75
    assert jaccard_of(d_text, C_TEXT) > jaccard_of(d_text, BASE)
    assert jaccard_of(d_text, C_TEXT) >= 0.75
    dups = find_duplicates([BASE, C_TEXT, B_TEXT, d_text], threshold=0.75)
    assert [(d.index, d.kept_index) for d in dups] == [(2, 0), (3, 1)]
    assert dups[1].similarity == jaccard_of(d_text, C_TEXT)


def test_threshold_one_drops_only_identical_shingle_sets():
    # Different normalized texts, same trigram set: a near duplicate with similarity 1.0.
    repeated = "alpha beta gamma alpha beta gamma"
    longer = "alpha beta gamma alpha beta gamma alpha beta gamma"
    dups = find_duplicates([repeated, B_TEXT, longer, BASE], threshold=1.0)
    assert dups == [Duplicate(index=2, kept_index=0, kind="near", similarity=1.0)]


@pytest.mark.parametrize("kwargs, field", [
    ({"threshold": 0}, "threshold"),
    ({"threshold": -0.5}, "threshold"),
    ({"threshold": 1.01}, "threshold"),
    ({"threshold": math.nan}, "threshold"),
    ({"threshold": "0.8"}, "threshold"),
    ({"num_perm": 8}, "num_perm"),
    ({"shingle_size": 0}, "shingle size"),
    ({"seed": -1}, "seed"),
])
def test_bad_parameters_raise_input_error_naming_the_parameter(kwargs, field):
    with pytest.raises(InputError, match=field):
        find_duplicates([BASE, B_TEXT], **kwargs)


def test_bad_parameters_are_rejected_even_for_empty_input():
    with pytest.raises(InputError, match="threshold"):
        find_duplicates([], threshold=2)


def test_planted_duplicates_in_a_generated_set_are_all_found_without_false_positives():
    rng = random.Random(1234)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(3, 8))) for _ in range(600)})
    originals = [[rng.choice(vocab) for _ in range(rng.randint(40, 60))] for _ in range(2000)]
    texts = [" ".join(words) for words in originals]

    planted: dict[int, tuple[int, str]] = {}  # copy index -> (source index, kind)
    sources = rng.sample(range(len(originals)), 70)
    for n, src in enumerate(sources):
        words = originals[src]
        if n < 50:  # near copy: one word in the middle replaced by a word the text lacks
            pos = rng.randrange(5, len(words) - 5)
            copy = " ".join(with_word(words, pos, "zzplanted"))
            kind = "near"
            assert jaccard_of(texts[src], copy) >= 0.8  # premise
        else:  # exact copy in different dress
            copy = "  " + " ".join(words).upper() + "?"
            kind = "exact"
        planted[len(texts)] = (src, kind)
        texts.append(copy)

    dups = find_duplicates(texts, threshold=0.8)
    assert {d.index: (d.kept_index, d.kind) for d in dups} == planted
    assert [d.index for d in dups] == sorted(planted)
    for d in dups:
        assert d.similarity == (1.0 if d.kind == "exact" else jaccard_of(texts[d.index], texts[d.kept_index]))


# --------------------------------------------------------------------------- decontamination

GSM_Q = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
         "How many clips did Natalia sell altogether in April and May?")
MATH_Q = "What is the smallest positive integer $n$ such that $17n \\equiv 1234 \\pmod{7}?$"
REFERENCES = {
    "gsm8k": [("gsm8k-aaa", GSM_Q), ("gsm8k-tiny", "Solve for y.")],
    "math500": [("math500-x/1.json", MATH_Q), ("math500-short", "Evaluate $\\lceil 3.7 \\rceil$.")],
}


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def shared_ngrams(a: str, b: str, n: int = 8) -> set[tuple[str, ...]]:
    wa, wb = words_of(a), words_of(b)
    grams = {tuple(wa[i:i + n]) for i in range(len(wa) - n + 1)}
    return grams & {tuple(wb[i:i + n]) for i in range(len(wb) - n + 1)}


def test_fused_problem_embedding_a_benchmark_sentence_is_flagged_with_the_first_shared_ngram():
    fused = ("Combine two tasks. NATALIA sold   clips to 48 of her friends in April; each clip costs $3. "
             "What is the total revenue?")
    hit = Decontaminator(REFERENCES).check(fused)
    assert hit == Contamination(index=-1, benchmark="gsm8k", problem_id="gsm8k-aaa",
                                ngram="natalia sold clips to 48 of her friends")


def test_paraphrase_without_a_shared_eight_gram_is_not_flagged():
    paraphrase = ("In April Natalia sold clips to 48 friends, and in May she sold half that number. "
                  "How many clips did she sell over both months?")
    assert not shared_ngrams(paraphrase, GSM_Q)  # premise
    assert shared_ngrams(paraphrase, GSM_Q, n=4)  # ...although shorter overlaps exist
    assert Decontaminator(REFERENCES).check(paraphrase) is None


def test_short_reference_contained_in_a_text_is_flagged_whole():
    text = "First, evaluate \\lceil 3.7\\rceil, then add the number of sides of a hexagon."
    hit = Decontaminator(REFERENCES).check(text)
    assert hit is not None
    assert (hit.benchmark, hit.problem_id, hit.ngram) == ("math500", "math500-short", "evaluate lceil 3 7 rceil")


def test_short_reference_must_occur_contiguously():
    text = "Evaluate the ceiling: lceil 3 7 rceil, as a warm-up."  # "the ceiling" breaks the sequence
    assert Decontaminator(REFERENCES).check(text) is None


def test_reference_under_four_tokens_is_ignored_but_counted():
    d = Decontaminator(REFERENCES)
    assert d.check("Solve for y when 2y + 3 = 11.") is None
    assert d.sizes == {"gsm8k": 2, "math500": 2}


def test_find_reports_indices_of_flagged_texts_in_order():
    texts = ["Clean text about triangles and their angles in a plane.", MATH_Q + " Then double it.",
             "Another clean one.", "Hint: " + GSM_Q]
    found = Decontaminator(REFERENCES).find(texts)
    assert [(c.index, c.benchmark, c.problem_id) for c in found] == [(1, "math500", "math500-x/1.json"),
                                                                     (3, "gsm8k", "gsm8k-aaa")]


def test_ngram_shared_by_two_benchmarks_belongs_to_the_first_one_given():
    shared = "the quick brown fox jumps over the lazy dog twice"
    d = Decontaminator({"aime24": [("aime24-1", shared)], "amc23": [("amc23-9", shared + " more")]})
    hit = d.check("Today " + shared)
    assert hit is not None
    assert (hit.benchmark, hit.problem_id) == ("aime24", "aime24-1")


def test_earliest_overlap_in_the_text_is_reported():
    text = "Evaluate $\\lceil 3.7 \\rceil$. " + GSM_Q  # the short reference comes first
    hit = Decontaminator(REFERENCES).check(text)
    assert hit is not None
    assert hit.problem_id == "math500-short"


def test_ngram_size_is_configurable_and_must_be_at_least_three():
    text = "natalia sold clips to 48 of her"  # 7 shared tokens: a 6-gram match, not an 8-gram one
    assert Decontaminator(REFERENCES, n=6).check(text) is not None
    assert Decontaminator(REFERENCES, n=8).check(text) is None
    with pytest.raises(InputError, match="n-gram size"):
        Decontaminator(REFERENCES, n=2)


def test_malformed_reference_entry_raises_input_error():
    with pytest.raises(InputError, match="problem_id, text"):
        Decontaminator({"gsm8k": ["just a string"]})


# --------------------------------------------------------------------------- load_references

def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path):
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [
        {"question": GSM_Q, "answer": "She sold 48/2 = 24 clips in May.\n#### 72"},
        {"question": "Tom has 2 apples and buys 3 more. How many apples does Tom have now?",
         "answer": "2 + 3 = 5\n#### 5"},
        {"question": "A box holds 10 pens. How many pens are in 3 boxes?", "answer": "#### 30"},
    ])
    write_jsonl(tmp_path / "aime24" / "test.jsonl", [
        {"id": 60, "problem": "Every morning Aya goes for a 9-kilometer-long walk. Find the time.", "answer": "204"},
        {"id": 61, "problem": "Let ABC be a triangle inscribed in circle omega. Find AP.", "answer": "113"},
    ])
    return tmp_path


def test_load_references_reads_each_benchmark_from_the_data_dir(data_dir):
    refs = load_references(["gsm8k", "aime24"], str(data_dir))
    assert {name: len(problems) for name, problems in refs.items()} == {"gsm8k": 3, "aime24": 2}
    assert [pid for pid, _ in refs["aime24"]] == ["aime24-60", "aime24-61"]
    assert all(pid.startswith("gsm8k-") for pid, _ in refs["gsm8k"])
    assert refs["gsm8k"][0][1] == GSM_Q


def test_loaded_references_flag_a_copied_benchmark_problem(data_dir):
    d = Decontaminator(load_references(["gsm8k", "aime24"], str(data_dir)))
    hit = d.check("Variant: Let ABC be a triangle inscribed in circle omega, with AB = 5.")
    assert hit is not None
    assert (hit.benchmark, hit.problem_id) == ("aime24", "aime24-61")


def test_missing_benchmark_file_says_how_to_go_on(data_dir):
    with pytest.raises(InputError) as err:
        load_references(["gsm8k", "amc23"], str(data_dir))
    message = str(err.value)
    assert "amc23" in message
    assert "--data-dir" in message
    assert "--no-decontaminate" in message


def test_unknown_benchmark_raises_the_registry_error_unchanged(data_dir):
    with pytest.raises(InputError, match="unknown benchmark") as err:
        load_references(["gsm9k"], str(data_dir))
    assert "--no-decontaminate" not in str(err.value)
