"""Parallel-thinking training data: Parallel-R1 cold start, ThreadWeaver two-stage, ParaThinker paths.

    parafuse synth traces --method threadweaver --input arith-train.jsonl --engine symbolic \
        --model arith-teacher --out runs/tw-traces

Each method asks a teacher for what its paper's data needs and keeps only what passes its filters,
recording why every other reply was rejected (`rejected.jsonl`) and every engine failure with its
reply (`failures.jsonl`):

- parallel_r1 (Parallel-R1, arXiv 2509.07980, its cold-start data): the teacher answers with the
  parallel-thinking instruction (`traces/parallel_r1`); kept when the reply passes the format check
  (the authors' checker by default, parafuse's strict grammar with `--format-mode strict`), fits
  `--max-response-tokens`, and its answer is right.
- threadweaver (ThreadWeaver, arXiv 2512.07843, its two-stage generator): stage 1 is a sequential
  solution (the teacher's, or the record's own with `--solution-field`); stage 2 a rewriter turns it
  into fork-join form (`threadweaver/rewrite`). Kept when the rewrite is valid fork-join text with
  threads numbered 1..k (one per outline), no thread uses a number a sibling computes, the answer
  is unchanged, and the critical path is shorter than the sequential solution.
- parathinker (ParaThinker, arXiv 2509.04475): P paths (distinct seeds) and a summary over them
  (`traces/parathinker_summary`); kept when the summary's answer is right; the card counts how
  often the summary fixed a wrong majority.

Rows are SFT-ready chats (`messages`) with the trace in `--output-format` and its structure
(`pieces`: text, kind, block, branch) so training builds masks without re-parsing.
"""
from synthesis.traces.config import TRACE_METHODS, TracesConfig
from synthesis.traces.pipeline import summary, synthesize_traces

__all__ = ["TRACE_METHODS", "TracesConfig", "summary", "synthesize_traces"]
