"""Structured attention for parallel-thinking SFT: what each token may see, where it sits, what it learns.

Every builder here turns one tokenized example (prompt ids, completion ids) into a `Structured`
example: the ids the model reads, their labels (-100: no loss), their position ids, and a
boolean "may attend" matrix (None: plain causal). `collate` pads a batch of them into the
inputs transformers takes as they are: a float 4-D mask (0 where a token may attend, the dtype's
minimum elsewhere), position ids and labels.

Two traps the collation avoids, both measured on the tiny model (eager attention):
  - a boolean 4-D mask is silently wrong in eager attention (it adds the mask to the scores),
    so the mask is always float;
  - a fully masked padding row gives NaN in eager attention, and the NaN reaches real rows in
    the next layer, so every pad row attends to itself.

Builders: `parallel_r1` (Unseen paths), `threadweaver` (trie packing), `parathinker` (shared path
positions, two-phase mask, thought-embedding segment ids). `causal` is the plain sequence.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE = -100  # the label that gives no loss (transformers' and TRL's convention)


@dataclass
class Structured:
    """One example, unpadded. Labels are aligned with the ids: the model shifts them itself."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    allowed: torch.Tensor | None = None  # (n, n) bool, row = query; None = causal
    seg_ids: list[int] | None = None  # ParaThinker's thought-embedding segment of every token

    def __post_init__(self) -> None:
        n = len(self.input_ids)
        if len(self.labels) != n or len(self.position_ids) != n:
            raise ValueError(f"ids, labels and positions differ in length: {n}, {len(self.labels)}, "
                             f"{len(self.position_ids)}")
        if self.allowed is not None and tuple(self.allowed.shape) != (n, n):
            raise ValueError(f"mask is {tuple(self.allowed.shape)} for {n} tokens")

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)

    def mask(self) -> torch.Tensor:
        """The boolean may-attend matrix, causal when the example has none."""
        n = len(self)
        return self.allowed if self.allowed is not None else torch.ones(n, n, dtype=torch.bool).tril()


def causal(prompt: Sequence[int], completion: Sequence[int]) -> Structured:
    """The plain sequence: loss on the completion, positions 0..n-1, causal attention."""
    ids = list(prompt) + list(completion)
    return Structured(ids, [IGNORE] * len(prompt) + list(completion), list(range(len(ids))))


def completion_labels(prompt_len: int, ids: Sequence[int]) -> list[int]:
    return [IGNORE] * prompt_len + list(ids[prompt_len:])


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """bool may-attend -> float mask: 0 where allowed, the dtype's minimum elsewhere."""
    zeros = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)  # on the mask's device (GPU batches)
    return zeros.masked_fill(~allowed, torch.finfo(dtype).min)


def collate(examples: Sequence[Structured], pad_id: int, dtype: torch.dtype = torch.float32
            ) -> dict[str, torch.Tensor]:
    """Right-pad `examples` into model inputs.

    All-causal batches get the ordinary 2-D padding mask (with explicit positions). Any structured
    example makes the batch 4-D: (B, 1, L, L) float, pad rows seeing only themselves.
    """
    length = max(len(e) for e in examples)
    batch = len(examples)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)
    labels = torch.full((batch, length), IGNORE, dtype=torch.long)
    positions = torch.zeros((batch, length), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        positions[row, :n] = torch.tensor(e.position_ids)
    out = {"input_ids": input_ids, "labels": labels, "position_ids": positions}
    if all(e.allowed is None for e in examples):
        padding = torch.zeros((batch, length), dtype=torch.long)
        for row, e in enumerate(examples):
            padding[row, :len(e)] = 1
        out["attention_mask"] = padding
    else:
        allowed = torch.zeros((batch, 1, length, length), dtype=torch.bool)
        diagonal = torch.arange(length)
        for row, e in enumerate(examples):
            n = len(e)
            allowed[row, 0, :n, :n] = e.mask()
            allowed[row, 0, diagonal[n:], diagonal[n:]] = True  # pad rows: never fully masked
        out["attention_mask"] = additive_mask(allowed, dtype)
    if any(e.seg_ids is not None for e in examples):
        seg = torch.zeros((batch, length), dtype=torch.long)
        for row, e in enumerate(examples):
            if e.seg_ids is not None:
                seg[row, :len(e)] = torch.tensor(e.seg_ids)
        out["seg_ids"] = seg
    return out


def tag_ids(tokenizer, tags: Sequence[str]) -> dict[str, int]:
    """Each tag's single token id; a clear error when the tokenizer splits one."""
    out = {}
    for tag in tags:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"the tokenizer splits the tag {tag!r} into {len(ids)} tokens {ids}: structured "
                             "training reads the structure from tag tokens; set `model.add_tags: true` in the recipe "
                             "to add the format's tags as tokens")
        out[tag] = ids[0]
    return out


def spans_between(ids: Sequence[int], start: int, opener: int, closer: int) -> list[tuple[int, int]]:
    """(first, last) index pairs, both inclusive, of every opener..closer span from `start` on
    (an unclosed span runs to the end: a truncated example keeps its structure)."""
    out, open_at = [], None
    for i in range(start, len(ids)):
        if ids[i] == opener and open_at is None:
            open_at = i
        elif ids[i] == closer and open_at is not None:
            out.append((open_at, i))
            open_at = None
    if open_at is not None:
        out.append((open_at, len(ids) - 1))
    return out

