"""Fusion-of-N rows: grading of candidates and fusion, the dataset schema, run statistics."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.metrics import maj_at_k
from synthesis.fusion_data.generate import TOKEN_KINDS, FusionDataOutcome

def grade_outcomes(outcomes: Sequence[FusionDataOutcome], timeout_s: float = 5.0) -> dict[int, dict[str, Any]]:
    """Per outcome index: each candidate's answer and correctness, the fusion's, the oracle and the majority."""
    from eval.grading.equivalence import Grader

    todo = [(k, o) for k, o in enumerate(outcomes) if o.failure is None and o.problem.gold is not None]
    pairs = [(o.problem.gold, t) for _, o in todo for t in o.candidates + [o.fused]]
    with Grader(timeout_s=timeout_s) as g:
        grades = g.grade_many(pairs)
    out, pos = {}, 0
    for k, o in todo:
        gs = grades[pos:pos + len(o.candidates) + 1]
        pos += len(gs)
        cands, fused = gs[:-1], gs[-1]
        out[k] = {"candidate_answers": [x.answer for x in cands], "candidate_correct": [x.correct for x in cands],
                  "fused_answer": fused.answer, "fused_correct": fused.correct,
                  "oracle_correct": any(x.correct for x in cands),
                  "majority_correct": maj_at_k([x.answer for x in cands], [x.correct for x in cands], len(cands))}
    return out


GRADED = ("candidate_answers", "candidate_correct", "fused_answer", "fused_correct", "oracle_correct",
          "majority_correct")
BON = ("bon", "bon_index", "bon_model", "bon_score", "fused_score")


def bon_columns(outcomes: Sequence[FusionDataOutcome], spec: str) -> dict[int, dict[str, Any]]:
    """Per outcome index: the candidate best-of-N picks with scorer `spec` and its score, and the
    fusion's score under the same scorer when it is a reward model (the paper stores the RM score of
    both its Fusion and its BoN data)."""
    from eval.grading.extract import extract_answer
    from eval.reward_scorers import parse_reward_spec
    from eval.strategies import PoolSample, best_of_n, get_scorer

    def sample(text: str) -> PoolSample:
        return PoolSample(text, extract_answer(text)[0], "", False, "", len(text.split()), 0.0, None)

    scorer = get_scorer(spec)
    is_reward = parse_reward_spec(spec) is not None
    out = {}
    for k, o in enumerate(outcomes):
        if o.failure is not None or not o.candidates:
            continue
        q, cands = o.problem.question, [sample(t) for t in o.candidates]
        scores = list(scorer(q, cands))
        i = best_of_n(q, cands, lambda _q, _s, scores=scores: scores)
        out[k] = {"bon": o.candidates[i], "bon_index": i, "bon_model": o.candidate_models[i],
                  "bon_score": float(scores[i]),
                  "fused_score": float(scorer(q, [sample(o.fused)])[0]) if is_reward and o.fused is not None
                  else None}
    return out


def features():
    """The dataset schema of Fusion-of-N rows (graded columns are null where nothing was graded)."""
    from datasets import Features, List, Value

    text, i64 = Value("string"), Value("int64")
    cols = {"id": text, "source": text, "prompt": text, "candidates": List(text), "candidate_models": List(text),
            "fused": text, "fused_finish_reason": text, "messages": List({"role": text, "content": text}),
            "answer": text, "candidate_answers": List(text), "candidate_correct": List(Value("bool")),
            "fused_answer": text, "fused_correct": Value("bool"), "oracle_correct": Value("bool"),
            "majority_correct": Value("float64"),
            "bon": text, "bon_index": i64, "bon_model": text, "bon_score": Value("float64"),
            "fused_score": Value("float64"),
            **{f"{k}_tokens": i64 for k in TOKEN_KINDS},
            "teachers": text, "fusor": text, "template": text, "fusion_template": text, "seed": i64, "generator": text,
            "bon_scorer": text}
    return Features(cols)


def row(o: FusionDataOutcome, graded: dict[str, Any] | None, prov: dict[str, Any],
        bon: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": f"fusion/{o.problem.id}", "source": o.problem.benchmark, "prompt": o.problem.question,
            "candidates": o.candidates, "candidate_models": o.candidate_models, "fused": o.fused,
            "fused_finish_reason": o.fused_finish,
            "messages": [{"role": "user", "content": o.problem.question}, {"role": "assistant", "content": o.fused}],
            "answer": o.problem.gold, **dict.fromkeys(GRADED), **(graded or {}), **dict.fromkeys(BON), **(bon or {}),
            **{f"{k}_tokens": v for k, v in o.tokens.items()}, **prov}


def fusion_stats(outcomes: Sequence[FusionDataOutcome], graded: dict[int, dict[str, Any]]) -> dict[str, Any]:
    ok = [o for o in outcomes if o.failure is None]
    tokens = {k: sum(o.tokens[k] for o in outcomes) for k in outcomes[0].tokens} if outcomes else {}
    st: dict[str, Any] = {"prompts": len(outcomes), "rows": len(ok), "failed": len(outcomes) - len(ok),
                          "candidates_per_prompt": len(ok[0].candidates) if ok else 0, "tokens": tokens,
                          "truncated_fusions": sum(o.fused_finish == "length" for o in ok)}
    if graded:
        g = list(graded.values())
        n = len(g)
        st["graded"] = n
        st["accuracy"] = {
            "candidate_mean": sum(sum(x["candidate_correct"]) / len(x["candidate_correct"]) for x in g) / n,
            "majority": sum(x["majority_correct"] for x in g) / n,
            "fusion": sum(x["fused_correct"] for x in g) / n,
            "oracle": sum(x["oracle_correct"] for x in g) / n}
        st["fusion_beats_oracle"] = sum(x["fused_correct"] and not x["oracle_correct"] for x in g)
        st["fusion_fixes_majority"] = sum(x["fused_correct"] and x["majority_correct"] < 0.5 for x in g)
        st["fusion_breaks_majority"] = sum(not x["fused_correct"] and x["majority_correct"] > 0.5 for x in g)
    return st
