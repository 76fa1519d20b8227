"""ParaThinker's training structure (ParaThinker, arXiv 2509.04475, §3.2 "thought embeddings" and
§3.3 "attention mask and positions"), as its released training collator builds it.

    [prompt] <think1> path 1 .. <think2> path 2 .. <thinkP> path P .. <summary> summary ..

  - Path k runs from its `<think_k>` up to the next start tag. Every path starts at the position
    of the first path's opener, so each is read at the positions it would have alone.
  - The summary (from `<summary>` to the end) starts one after the end of the longest path.
  - Two-phase mask: a path token sees the prompt and the earlier tokens of its own path; a
    summary token sees everything before it.
  - Segment ids for the thought embeddings: 0 for the prompt and the summary, k for the tokens
    of the path opened by `<think_k>` (so a relabelled path keeps its tag's embedding).
Text before `<think1>` in the completion (an assistant `<think>` prefix) belongs to the prompt
segment. Only the completion is scanned: the reference's prompt mentions `<summary>`.

Extensible paths (§3.2): with probability `relabel_probability` per example, two random paths are
renamed `<think7>` / `<think8>` (opener and closer, in the input and the labels), so the rows of
tags that few training examples use still learn. The reference leaves the opener's *label*
unchanged (its engine forces path openers, so it is harmless); here labels follow the input.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import torch

from rl.structure import Structured, completion_labels

MAX_PATHS = 8
PROMPT, SUMMARY = 1, 10  # the reference collator's segment indices of the prompt and the summary
RELABEL_TO = (7, 8)


def tag_names() -> tuple[str, ...]:
    return tuple(f"<think{k}>" for k in range(1, MAX_PATHS + 1)) + tuple(
        f"</think{k}>" for k in range(1, MAX_PATHS + 1)) + ("<summary>", "</summary>")


def relabel(completion: Sequence[int], tags: Mapping[str, int], rng: random.Random,
            probability: float = 0.3) -> list[int]:
    """The completion with two random paths renamed to the last two path tags (with `probability`)."""
    ids = list(completion)
    opener_number = {tags[f"<think{k}>"]: k for k in range(1, MAX_PATHS + 1)}
    present = sorted({opener_number[t] for t in ids if t in opener_number})
    if len(present) < 2 or max(present) >= min(RELABEL_TO) or rng.random() >= probability:
        return ids
    chosen = rng.sample(present, 2)
    rename = {}
    for old, new in zip(chosen, RELABEL_TO):
        rename[tags[f"<think{old}>"]] = tags[f"<think{new}>"]
        rename[tags[f"</think{old}>"]] = tags[f"</think{new}>"]
    return [rename.get(t, t) for t in ids]


def structure(prompt: Sequence[int], completion: Sequence[int], tags: Mapping[str, int]) -> Structured:
    """The ParaThinker example of one (prompt, completion) pair."""
    ids = list(prompt) + list(completion)
    n = len(ids)
    opener_number = {tags[f"<think{k}>"]: k for k in range(1, MAX_PATHS + 1)}
    summary_tag = tags["<summary>"]
    starts = [i for i in range(len(prompt), n) if ids[i] in opener_number or ids[i] == summary_tag]
    segment = [PROMPT] * n  # the mask's segment index of every token
    seg_ids = [0] * n  # the thought-embedding row of every token
    positions = list(range(n))
    first_path = next((i for i in starts if ids[i] in opener_number), None)
    if first_path is not None:
        longest = 0
        for here, following in zip(starts, starts[1:] + [n]):
            if ids[here] == summary_tag:
                # the summary and everything after it: one after the longest path
                for j in range(here, n):
                    segment[j] = SUMMARY
                    positions[j] = first_path + longest + (j - here)
                break
            number = opener_number[ids[here]]
            for j in range(here, following):
                segment[j] = 1 + number  # distinct from PROMPT and SUMMARY for k <= 8
                seg_ids[j] = number
                positions[j] = first_path + (j - here)
            longest = max(longest, following - here)
    index = torch.tensor(segment)
    same = index[:, None] == index[None, :]
    allowed = (same | (index[None, :] == PROMPT) | (index[:, None] == SUMMARY)) & torch.ones(
        n, n, dtype=torch.bool).tril()
    return Structured(ids, completion_labels(len(prompt), ids), positions, allowed, seg_ids)
