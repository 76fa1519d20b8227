"""Parallel-R1's Unseen structure (Parallel-R1, arXiv 2509.07980, §3.3 "Structured" / Unseen variant).

Inside every `<Parallel>` block, no path (`<Path>` .. `</Path>`, both tags included) may see another
path, nor the text between earlier paths: each path sees exactly what precedes the block's first
path, as if it were alone. Everything else is causal. Positions restart per path: every `<Path>` sits at
pos(`<Parallel>`) + 1, so each path is read at the positions it would have alone, and
`</Parallel>` sits one after the end of the longest path; the text after it continues from there.
The Seen variant is plain causal SFT (`rl.structure.causal`).

Switches for what the authors' released code does differently:
  - `reference_positions=True`: a token inside a block but outside every path (a head after
    `<Parallel>`, a newline between `</Path>` and `<Path>`) gets position 0, as the reference's
    position builder leaves it. Default: it continues the block's counter (one after the text
    before it), so such text reads like text.
  - `second_path_is_last=True`: `</Parallel>` is placed after the *second* path, not the longest
    one, as the reference's RL rollout does (correct only for its two paths).

Only the completion is scanned: a prompt that mentions the tags keeps plain causal structure.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from rl.structure import Structured, completion_labels

TAGS = ("<Parallel>", "</Parallel>", "<Path>", "</Path>")


def unseen(prompt: Sequence[int], completion: Sequence[int], tags: Mapping[str, int],
           reference_positions: bool = False, second_path_is_last: bool = False) -> Structured:
    """The Unseen example of one (prompt, completion) pair; `tags` maps each tag of TAGS to its id."""
    ids = list(prompt) + list(completion)
    n = len(ids)
    open_block, close_block = tags["<Parallel>"], tags["</Parallel>"]
    open_path, close_path = tags["<Path>"], tags["</Path>"]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()
    positions = [0] * n
    next_position = 0  # the position of the next token outside blocks
    i = len(prompt)
    positions[:i] = range(i)
    next_position = i
    while i < n:
        if ids[i] != open_block:
            positions[i] = next_position
            next_position += 1
            i += 1
            continue
        # One block: <Parallel> [head] <Path>..</Path> [between] <Path>..</Path> ... </Parallel>
        base = next_position
        positions[i] = base
        last = base  # the position of the last in-block token outside paths (paths restart after it)
        furthest = base  # the largest position used in the block
        path_ends: list[int] = []
        spans: list[tuple[int, int]] = []
        i += 1
        seen_path = False
        while i < n and ids[i] != close_block:
            if ids[i] == open_path:
                start = i
                position = (base if reference_positions else last) + 1
                while i < n:
                    positions[i] = position
                    position += 1
                    i += 1
                    if ids[i - 1] == close_path:
                        break
                spans.append((start, i - 1))
                path_ends.append(position - 1)
                furthest = max(furthest, position - 1)
                seen_path = True
                continue
            # text inside the block, outside any path
            if reference_positions:
                positions[i] = 0
            else:
                furthest += 1
                positions[i] = furthest
                if not seen_path:
                    last = furthest
            i += 1
        for a, (first_a, last_a) in enumerate(spans):
            for b, (first_b, last_b) in enumerate(spans):
                if a != b:
                    allowed[first_a:last_a + 1, first_b:last_b + 1] = False
            if not reference_positions and a > 0:
                # nor the separators between earlier paths: a path sees what precedes the block's first path
                allowed[first_a:last_a + 1, spans[0][0]:first_a] = False
        if i < n:  # </Parallel>
            if second_path_is_last and len(path_ends) >= 2:
                end = path_ends[1]
            elif reference_positions:
                end = max(path_ends, default=base)
            else:
                end = furthest
            positions[i] = end + 1
            next_position = end + 2
            i += 1
    return Structured(ids, completion_labels(len(prompt), ids), positions, allowed)
