"""From MathFusion outcomes to dataset rows: quality filters, dedup, decontamination, counts.

Order matters and is fixed: the per-row checks (majority share, the conditional answer check)
run first, then near-duplicates are removed among the survivors (unless `dedup` is off) (so a discarded row never
knocks out a good copy of itself), then rows overlapping an evaluation benchmark. Every row
removed is kept in `removed` with the reason, and every job without a usable fused problem is
in `failures` with all its replies: nothing generated disappears from the output folder.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthesis.config import MathFusionConfig
from synthesis.mathfusion.generate import FusionOutcome


@dataclass
class Rows:
    kept: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)  # a row plus removed_reason / removed_detail
    failures: list[dict[str, Any]] = field(default_factory=list)


def candidate_row(o: FusionOutcome, provenance: dict[str, Any], pick: str = "majority") -> dict[str, Any]:
    """One flat record (datasets.Dataset.from_list takes it as is), SFT-ready in `messages`.

    `pick`: "majority" keeps the first solution giving the most common answer; "first" keeps the
    first sample and its own answer whatever the others say (the paper's one unchecked solution)."""
    j, c = o.job, o.consensus
    chosen = 0 if pick == "first" else (c.chosen if c else 0)
    response = o.solutions[chosen] if c and o.solutions else ""
    answer = (c.answers[0] if pick == "first" else c.majority) if c else None
    return {
        "id": f"mathfusion/{j.id}",
        "strategy": j.strategy,
        "source": j.a.benchmark,
        "problem": o.problem,
        "solution": response,
        "answer": answer,
        "messages": [{"role": "user", "content": o.problem}, {"role": "assistant", "content": response}],
        "majority_share": c.share if c else 0.0,
        "answers": list(c.answers) if c else [],
        "num_solutions": len(o.solutions),
        "conditional_match": None,
        "problem_a_id": j.a.id, "problem_b_id": j.b.id,
        "problem_a": j.a.question, "problem_b": j.b.question,
        "answer_a": j.a.gold, "answer_b": j.b.gold,
        "pair_similarity": round(float(j.pair.similarity), 6), "pair_mutual": bool(j.pair.mutual),
        "fusion_reply": o.reply,
        "fusion_attempts": len(o.attempts) + 1,
        "prompt_tokens": o.fuse_tokens.prompt + o.solve_tokens.prompt,
        "completion_tokens": o.fuse_tokens.completion + o.solve_tokens.completion,
        **provenance,
    }


def original_rows(problems) -> list[dict[str, Any]]:
    """Seed problems with their own (human) solutions, as MathFusionQA includes them next to the
    fused ones. Problems whose source has no solution are left out."""
    from synthesis.output import generator_name

    out = []
    for p in problems:
        solution = p.meta.get("solution")
        if not solution:
            continue
        out.append({"id": f"original/{p.id}", "strategy": "original", "source": p.benchmark, "problem": p.question,
                    "solution": solution, "answer": p.gold,
                    "messages": [{"role": "user", "content": p.question}, {"role": "assistant", "content": solution}],
                    "answers": [], "num_solutions": 0, "generator": generator_name()})
    return out


def failure_row(o: FusionOutcome) -> dict[str, Any]:
    j = o.job
    return {"id": f"mathfusion/{j.id}", "strategy": j.strategy, "source": j.a.benchmark, "problem_a_id": j.a.id,
            "problem_b_id": j.b.id, "reason": o.failure, "detail": o.failure_detail, "attempts": o.attempts,
            "prompt_tokens": o.fuse_tokens.prompt, "completion_tokens": o.fuse_tokens.completion}


def features():
    """The dataset schema of MathFusion rows (see `candidate_row`)."""
    from datasets import Features, List, Value

    text, i64, f64, flag = Value("string"), Value("int64"), Value("float64"), Value("bool")
    cols = {"id": text, "strategy": text, "source": text, "problem": text, "solution": text, "answer": text,
            "messages": List({"role": text, "content": text}), "majority_share": f64, "answers": List(text),
            "num_solutions": i64, "conditional_match": flag, "problem_a_id": text, "problem_b_id": text,
            "problem_a": text, "problem_b": text, "answer_a": text, "answer_b": text, "pair_similarity": f64,
            "pair_mutual": flag, "fusion_reply": text, "fusion_attempts": i64, "prompt_tokens": i64,
            "completion_tokens": i64, "engine": text, "fusion_model": text, "solver_model": text,
            "solve_template": text, "fusion_template": text, "seed": i64, "embedder": text, "generator": text}
    return Features(cols)


# A grader of (gold, answer) pairs -> correct flags; eval's Grader in the CLI, anything in tests.
GradeFn = Callable[[Sequence[tuple[str, str]]], list[bool]]


def build_rows(outcomes: Sequence[FusionOutcome], cfg: MathFusionConfig, provenance: dict[str, dict[str, Any]],
               grade: GradeFn | None = None, decontaminator=None) -> Rows:
    """Rows from outcomes; `provenance[strategy]` is merged into each row of that strategy."""
    from synthesis.dedup import find_duplicates

    rows = Rows()
    candidates, prints = [], {}
    for o in outcomes:
        if o.ok:
            candidates.append(candidate_row(o, provenance.get(o.job.strategy, {}), cfg.solution_pick))
            prints[candidates[-1]["id"]] = o.fingerprint
        else:
            rows.failures.append(failure_row(o))
    if cfg.check_conditional and grade is not None:
        _check_conditional(candidates, grade)
    survivors = []
    for r in candidates:
        why = _quality_problem(r, cfg)
        if why:
            rows.removed.append({**r, "removed_reason": why[0], "removed_detail": why[1]})
        else:
            survivors.append(r)
    dups = {d.index: d for d in find_duplicates([r["problem"] for r in survivors], threshold=cfg.dedup_threshold,
                                                fingerprints=[prints[r["id"]] for r in survivors])} \
        if cfg.dedup else {}
    clean = []
    for i, r in enumerate(survivors):
        d = dups.get(i)
        if d is None:
            clean.append(r)
        else:
            rows.removed.append({**r, "removed_reason": "duplicate",
                                 "removed_detail": f"{d.kind} duplicate of {survivors[d.kept_index]['id']} "
                                                   f"(Jaccard {d.similarity:.2f})"})
    hits = {h.index: h for h in decontaminator.find([r["problem"] for r in clean])} if decontaminator else {}
    for i, r in enumerate(clean):
        h = hits.get(i)
        if h is None:
            rows.kept.append(r)
        else:
            rows.removed.append({**r, "removed_reason": "contaminated", "contaminated_benchmark": h.benchmark,
                                 "removed_detail": f"shares {h.ngram!r} with {h.benchmark} {h.problem_id}"})
    return rows


def _check_conditional(rows: list[dict[str, Any]], grade: GradeFn) -> None:
    """Conditional fusion's answer must be one of its two sub-problems' answers (when both are known)."""
    todo = [r for r in rows if r["strategy"] == "conditional" and r["answer"] is not None
            and r["answer_a"] is not None and r["answer_b"] is not None]
    pairs = [(r[g], "\\boxed{" + r["answer"] + "}") for r in todo for g in ("answer_a", "answer_b")]
    flags = grade(pairs) if pairs else []
    for k, r in enumerate(todo):
        r["conditional_match"] = bool(flags[2 * k] or flags[2 * k + 1])


def _quality_problem(r: dict[str, Any], cfg: MathFusionConfig) -> tuple[str, str] | None:
    if r["majority_share"] < cfg.min_majority_share:
        return "low_agreement", f"majority share {r['majority_share']:.2f} < {cfg.min_majority_share}"
    if r["conditional_match"] is False:
        return "conditional_mismatch", (f"answer {r['answer']!r} equals neither sub-answer "
                                        f"({r['answer_a']!r}, {r['answer_b']!r})")
    return None


def stats(outcomes: Sequence[FusionOutcome], rows: Rows) -> dict[str, Any]:
    """Counts per (strategy, source), failure and removal reasons, token totals per stage."""
    per: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for o in outcomes:
        c = per[(o.job.strategy, o.job.a.benchmark)]
        c["jobs"] += 1
        c["fused" if o.ok else "failed"] += 1
        for t, stage in ((o.fuse_tokens, "fuse"), (o.solve_tokens, "solve")):
            c[f"{stage}_prompt_tokens"] += t.prompt
            c[f"{stage}_completion_tokens"] += t.completion
    originals = Counter(r["source"] for r in rows.kept if r["strategy"] == "original")
    for r in rows.kept:
        if r["strategy"] != "original":
            per[(r["strategy"], r["source"])]["kept"] += 1
    for r in rows.removed:
        per[(r["strategy"], r["source"])][f"removed_{r['removed_reason']}"] += 1
    table = []
    for (strategy, source), c in sorted(per.items()):
        jobs = c["jobs"]
        table.append({"strategy": strategy, "source": source, "fused": 0, "failed": 0, "kept": 0, **dict(c),
                      "fusion_acceptance": round(c["fused"] / jobs, 4) if jobs else 0.0,
                      "kept_rate": round(c["kept"] / jobs, 4) if jobs else 0.0})
    reasons = Counter(f["reason"] for f in rows.failures)
    rejected = Counter(a["reason"] for o in outcomes for a in o.attempts)
    total = Counter()
    for c in per.values():
        total.update(c)
    return {"per_strategy_source": table, "failure_reasons": dict(reasons), "rejected_replies": dict(rejected),
            "removed_reasons": dict(Counter(r["removed_reason"] for r in rows.removed)),
            "contaminated_by_benchmark": dict(Counter(r["contaminated_benchmark"] for r in rows.removed
                                                      if r["removed_reason"] == "contaminated")),
            "originals": dict(originals),
            "jobs": total["jobs"], "fused": total["fused"], "kept": len(rows.kept),
            "tokens": {k: total[k] for k in ("fuse_prompt_tokens", "fuse_completion_tokens",
                                             "solve_prompt_tokens", "solve_completion_tokens")}}
