"""Self-consistency of a teacher's k solutions: which answer wins and by how much.

MathFusion kept one teacher solution per fused problem, unchecked (`--preset paper`); parafuse
records, for every fused problem, the answers of k solutions and the share of the most common
one, so a user can keep only problems the teacher answers consistently (`--min-majority-share`)
or keep every problem and filter later from the `majority_share` column. Keeping the majority
solution (`chosen`) is itself a selection, even with no filter; `--solution-pick first` avoids it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from eval.grading.extract import extract_answer
from eval.metrics import normalize_for_vote


@dataclass(frozen=True)
class Consensus:
    answers: list[str | None]  # the answer extracted from each solution (None: none found)
    majority: str | None  # the winning answer, as its first solution wrote it
    share: float  # solutions giving the winning answer / all solutions (0.0 when none answered)
    chosen: int  # the solution kept as the row's response: the first with the winning answer, else 0


def consensus(solutions: Sequence[str], allow_last_number: bool = False) -> Consensus:
    """Plurality vote over the extracted answers (textual keys, as eval's majority vote).

    A tie goes to the answer that appeared first, so the result does not depend on dict order.
    """
    if not solutions:
        raise ValueError("consensus needs at least one solution")
    answers = [extract_answer(s, allow_last_number)[0] for s in solutions]
    keys = [normalize_for_vote(a) for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return Consensus(answers, None, 0.0, 0)
    first = {k: i for i, k in reversed(list(enumerate(keys))) if k is not None}
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    chosen = first[best]
    return Consensus(answers, answers[chosen], counts[best] / len(solutions), chosen)
