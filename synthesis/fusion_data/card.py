"""The Fusion-of-N dataset card."""
from __future__ import annotations

from typing import Any

from synthesis.output import markdown_table

def card_body(st: dict[str, Any], prov: dict[str, Any]) -> str:
    parts = ["Fusion-of-N data (Khairi et al., \"Making, not Taking, the Best of N\", 2025) generated with parafuse: "
             "each prompt was answered by a pool of teachers, and a fusor model read every candidate and wrote one "
             "answer (`fused`). Columns: `prompt`, `candidates` with `candidate_models`, `fused`, `messages` "
             "(user/assistant turns for SFT) and, for math with a gold `answer`, each candidate's and the fusion's "
             "extracted answer and correctness.",
             "## Counts", f"{st['prompts']} prompts, **{st['rows']} rows**, {st['failed']} failed (engine errors, "
             f"retried on a rerun); {st['candidates_per_prompt']} candidates per prompt; "
             f"{st['truncated_fusions']} fusions hit the token cap."]
    if "accuracy" in st:
        acc = st["accuracy"]
        parts += [f"## Accuracy (graded rows: {st['graded']})",
                  markdown_table([{"aggregate": k, "accuracy": v} for k, v in acc.items()], ["aggregate", "accuracy"]),
                  f"Fusion correct where no candidate was: {st['fusion_beats_oracle']}; fusion right where the "
                  f"majority was wrong: {st['fusion_fixes_majority']}; fusion wrong where the majority was right: "
                  f"{st['fusion_breaks_majority']}."]
    t = st["tokens"]
    parts += ["## Tokens", markdown_table([{"stage": k, "tokens": v} for k, v in t.items()], ["stage", "tokens"]),
              "## Provenance", "\n".join(f"- {k}: `{v}`" for k, v in prov.items())]
    return "\n\n".join(parts)
