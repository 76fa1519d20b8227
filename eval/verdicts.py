"""Verdict comparison for a run with two graders: parafuse's own (`eval.grading.equivalence`) and
Parallel-R1's reference verifier (arXiv 2509.07980; `eval.grading.reference_parallel_r1`), which
reproduces the paper's evaluation. When both are in play (--reference-grading, --grader
parallel_r1_reference, or a --reference strategy), every samples.jsonl row gets both verdicts and
results.json compares them per strategy and budget, so a score can be read under either grader.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eval.strategies import DECODED, answer_at_rounds

if TYPE_CHECKING:
    from eval.config import EvalConfig

# The verdicts a run with two graders writes on every samples.jsonl row: {grader: field prefix}.
VERDICT_FIELDS = {"parafuse": "parafuse", "parallel_r1_reference": "reference"}


def scoring_grader(cfg: EvalConfig, strategy: str) -> str:
    """The grader whose verdict scores `strategy` (a --reference strategy scores with its reference's)."""
    from eval.config import decoder_settings

    return decoder_settings(cfg, strategy).grader if strategy in DECODED else cfg.grading.grader


def regrade(grader, rows: list[dict[str, Any]], todo: list[int], rethink_rounds: dict[tuple[str, int], list[str]],
            progress: bool = True) -> dict[int, Any]:
    """`grader`'s verdict on each row of `todo`: on its text, or for a rethink row on its rounds."""
    chained = [i for i in todo if rows[i]["strategy"] == "rethink"]
    single = [i for i in todo if rows[i]["strategy"] != "rethink"]
    out = dict(zip(single, grader.grade_many([(rows[i]["gold"], rows[i]["text"]) for i in single],
                                             progress=progress)))
    # every round once, though a round is in the rows of every budget from its own up
    depth: dict[tuple[str, int], int] = {}
    for i in chained:
        key = (rows[i]["problem_id"], rows[i]["sample_index"])
        depth[key] = max(depth.get(key, 0), rows[i]["budget"])
    gold = {rows[i]["problem_id"]: rows[i]["gold"] for i in chained}
    pairs = [(key, k) for key, n in depth.items() for k in range(n)]
    verdicts = grader.grade_many([(gold[key[0]], rethink_rounds[key][k]) for key, k in pairs], progress=progress)
    by_round = dict(zip(pairs, verdicts))
    for i in chained:
        key = (rows[i]["problem_id"], rows[i]["sample_index"])
        out[i] = answer_at_rounds([by_round[(key, k)] for k in range(rows[i]["budget"])])[-1]
    return out


def compare_verdicts(rows: list[dict[str, Any]], cfg: EvalConfig, grader: Callable[[str], Any],
                     progress: bool = True, rethink_rounds: dict[tuple[str, int], list[str]] | None = None
                     ) -> dict[str, Any] | None:
    """With two graders in play (--reference-grading, --grader parallel_r1_reference or a --reference
    strategy), every row gets both verdicts, `parafuse_*` and `reference_*` (the one that scored it is
    also its `correct`), and the result compares them per strategy and budget over the rows. `grader`:
    the run's grader of a given name (`eval.grading.regrade.GRADERS`), built once.

    A rethink row shows its chain's joined text, but the other grader judges it as the first did:
    each round on its own text (`rethink_rounds`: the round texts by (problem id, chain)), the chain
    standing on the latest round with an answer."""
    scoring = {s: scoring_grader(cfg, s) for s in dict.fromkeys(r["strategy"] for r in rows)}
    if not (cfg.reference_grading or any(g != "parafuse" for g in scoring.values())):
        return None
    for name, prefix in VERDICT_FIELDS.items():
        todo = [i for i, r in enumerate(rows) if scoring[r["strategy"]] != name]
        other = regrade(grader(name), rows, todo, rethink_rounds or {}, progress)
        for i, r in enumerate(rows):
            g = other.get(i)
            r[f"{prefix}_correct"] = bool(g.correct if g is not None else r["correct"])
            r[f"{prefix}_answer"] = g.answer if g is not None else r["answer"]
    compared: dict[str, Any] = {}
    for r in rows:
        c = compared.setdefault(f"{r['strategy']}@{r['budget']}", {"scored_by": scoring[r["strategy"]], "rows": 0,
                                                                   **{n: 0.0 for n in VERDICT_FIELDS},
                                                                   "agreement": 0.0})
        c["rows"] += 1
        for name, prefix in VERDICT_FIELDS.items():
            c[name] += r[f"{prefix}_correct"]
        c["agreement"] += len({r[f"{prefix}_correct"] for prefix in VERDICT_FIELDS.values()}) == 1
    for c in compared.values():
        for key in (*VERDICT_FIELDS, "agreement"):
            c[key] /= c["rows"]
    return {"graders": {name: grader(name).describe()["grader"] for name in VERDICT_FIELDS},
            "fields": {name: f"{prefix}_correct, {prefix}_answer" for name, prefix in VERDICT_FIELDS.items()},
            "by_strategy": compared,
            "note": "accuracy under each grader over the samples.jsonl rows of each strategy and budget (for "
                    "best_of_n and fusion: the first subset's answer per problem)"}
