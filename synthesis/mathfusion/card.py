"""The MathFusion dataset card: what was made, from what, how much survived, at what cost."""
from __future__ import annotations

from typing import Any

from synthesis.output import markdown_table

ABOUT = """Fused math problems in the style of MathFusion (Pei et al., "MathFusion: Enhancing Mathematical
Problem-solving of LLM through Instruction Fusion", ACL 2025), generated with parafuse.
Each seed problem is paired with its most similar other problem of the same pool; the pair is
fused into one new problem by one of three strategies (sequential: one problem's result feeds
the other; parallel: one scenario needing both methods; conditional: a question that selects
between the two answers), and a teacher solves the new problem several times. Columns:
`problem`, `solution` (a teacher solution giving the majority answer), `answer`,
`majority_share` (how many of the solutions agree), `messages` (user/assistant turns for SFT),
the two seed problems with their ids and answers, the pair's similarity, and provenance
(engine, models, templates with their hashes, seed, embedder)."""


def card_body(stats: dict[str, Any], pools: list[dict[str, Any]], provenance: dict[str, Any]) -> str:
    per = stats["per_strategy_source"]
    parts = [ABOUT, "## Counts per strategy and source",
             markdown_table(per, ["strategy", "source", "jobs", "fused", "failed", "kept", "fusion_acceptance",
                                  "kept_rate"]),
             f"In all: {stats['jobs']} fusion jobs, {stats['fused']} fused problems, **{stats['kept']} rows kept**. "
             "`fusion_acceptance` = fused / jobs (a reply with a usable new problem within the retries); "
             "`kept_rate` = kept / jobs."]
    if stats.get("originals"):
        parts.append("The rows also hold the seed problems with their own solutions (strategy `original`): "
                     + ", ".join(f"{n} from {src}" for src, n in sorted(stats["originals"].items())) + ".")
    parts += ["## Seed pools", markdown_table(pools, ["name", "problems", "duplicates_dropped", "without_answer"])]
    parts += ["## What was dropped, and why", _reasons(stats)]
    t = stats["tokens"]
    total = sum(t.values())
    parts += ["## Tokens",
              markdown_table([{"stage": "fuse", "prompt": t["fuse_prompt_tokens"],
                               "completion": t["fuse_completion_tokens"]},
                              {"stage": "solve", "prompt": t["solve_prompt_tokens"],
                               "completion": t["solve_completion_tokens"]}], ["stage", "prompt", "completion"]),
              f"Total: {total:,} tokens ({total / max(1, stats['kept']):,.0f} per kept row)."]
    parts += ["## Provenance", "\n".join(f"- {k}: `{v}`" for k, v in provenance.items())]
    parts += ["## Loading", "```python\nimport datasets\nds = datasets.load_dataset(\"<this folder or repo>\")"
              "[\"train\"]\n```\nThe same rows are in `data/train.jsonl`. Removed rows are in `removed.jsonl` and "
              "failed fusions (with every reply) in `failures.jsonl` next to this card."]
    return "\n\n".join(parts)


def _reasons(stats: dict[str, Any]) -> str:
    lines = []
    for title, key in (("fusion failures (no usable problem after all attempts)", "failure_reasons"),
                       ("rejected fusion replies (each attempt)", "rejected_replies"),
                       ("removed rows", "removed_reasons"),
                       ("overlaps with evaluation benchmarks, per benchmark", "contaminated_by_benchmark")):
        counts = stats[key]
        body = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) if counts else "none"
        lines.append(f"- {title}: {body}")
    return "\n".join(lines)
