"""ThreadWeaver trie packing (ThreadWeaver, arXiv 2512.07843, §4.1 "trie-based training").

A fork-join trajectory is trained as the set of sequences its inference actually samples:
  - the whole response (the join and the conclusion read every thread, back to back), and
  - each thread k of each `<Parallel>` block alone, right after what precedes the block's first
    `<Thread>` (the context the decoder gives thread k's request).
Those sequences share long prefixes, so they are inserted into a token trie and the trie is
flattened depth-first into one sequence: a token may attend only to its ancestors and itself,
and its position is its depth. Shared tokens are computed (and trained) once.

The shifted loss. In depth-first order, the first token of a node's second child follows the
last token of the first child's subtree, not its parent, so "hidden state i predicts token i+1"
would predict it from the wrong context. Before every extra child we therefore emit a *duplicate*
of the branch-point token: same id, same position, same ancestors, label -100. Its hidden state
equals the parent's, and every labelled token's flat predecessor is then its trie parent, so
TRL's unmodified shifted loss is exact (equal to the sum of the sequences' own losses with every
shared token counted once).

Switch: `train_inner_threads=True` reproduces the reference, which also trains threads 2..k
inside the whole response, where they follow thread 1, a context inference never samples them
in. Default: those copies are context only (label -100); each thread learns from its own copy.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from rl.structure import IGNORE, Structured, spans_between

TAGS = ("<Parallel>", "</Parallel>", "<Thread>", "</Thread>")


def sequences(prompt: Sequence[int], completion: Sequence[int], tags: Mapping[str, int],
              train_inner_threads: bool = False) -> list[tuple[list[int], list[bool]]]:
    """The (ids, trained) sequences a trajectory is trained as: the whole response first, then
    every thread of every block after its block's context."""
    ids = list(prompt) + list(completion)
    start = len(prompt)
    trained = [False] * start + [True] * (len(ids) - start)
    out_threads = []
    for block_first, block_last in spans_between(ids, start, tags["<Parallel>"], tags["</Parallel>"]):
        threads = spans_between(ids[:block_last + 1], block_first, tags["<Thread>"], tags["</Thread>"])
        if len(threads) < 2:
            continue
        context = ids[:threads[0][0]]
        for first, last in threads[1:]:
            if not train_inner_threads:
                trained[first:last + 1] = [False] * (last + 1 - first)
            out_threads.append((context + ids[first:last + 1],
                                [False] * start + [True] * (len(context) - start) + [True] * (last + 1 - first)))
    return [(ids, trained)] + out_threads


@dataclass
class Trie:
    """A token trie: children keyed by token id in insertion order; a node is trained when any
    sequence that passes through it trains it."""

    token: list[int] = field(default_factory=list)
    children: list[dict[int, int]] = field(default_factory=list)
    trained: list[bool] = field(default_factory=list)
    roots: dict[int, int] = field(default_factory=dict)

    def insert(self, ids: Sequence[int], trained: Sequence[bool]) -> list[int]:
        """Add one sequence; returns the node of each of its tokens."""
        level, nodes = self.roots, []
        for token, train in zip(ids, trained):
            node = level.get(token)
            if node is None:
                node = len(self.token)
                self.token.append(token)
                self.children.append({})
                self.trained.append(False)
                level[token] = node
            self.trained[node] = self.trained[node] or bool(train)
            nodes.append(node)
            level = self.children[node]
        return nodes

    def flatten(self) -> tuple[Structured, list[int]]:
        """The packed example and, for each flat token, its trie node (-1 for duplicates)."""
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        parent: list[int] = []
        node_of: list[int] = []
        # Iterative DFS (trajectories are deeper than Python's recursion limit). A stack entry is
        # (node, flat parent, depth, emit a duplicate of the flat parent first).
        stack = [(node, -1, 0, False) for node in reversed(list(self.roots.values()))]
        while stack:
            node, flat_parent, depth, duplicate_first = stack.pop()
            if duplicate_first:  # a copy of the branch point, so the next token is predicted from it
                source = flat_parent
                ids.append(ids[source])
                labels.append(IGNORE)
                positions.append(positions[source])
                parent.append(parent[source])
                node_of.append(-1)
                flat_parent = len(ids) - 1
            me = len(ids)
            ids.append(self.token[node])
            labels.append(self.token[node] if self.trained[node] and flat_parent >= 0 else IGNORE)
            positions.append(depth)
            parent.append(flat_parent)
            node_of.append(node)
            kids = list(self.children[node].values())
            for k in range(len(kids) - 1, -1, -1):
                stack.append((kids[k], me, depth + 1, k > 0))
        # Ancestor-or-self, vectorised: in DFS order a token's subtree is the flat range that
        # follows it, so j is an ancestor of i exactly when j <= i <= last descendant of j.
        n = len(ids)
        last_descendant = list(range(n))
        for i in range(n - 1, -1, -1):
            if parent[i] >= 0:
                last_descendant[parent[i]] = max(last_descendant[parent[i]], last_descendant[i])
        # A duplicate's descendants are not its source's; in flat order they follow the duplicate,
        # and the source's own range ends before it, so the ranges stay disjoint.
        index = torch.arange(n)
        ends = torch.tensor(last_descendant)
        allowed = (index[None, :] <= index[:, None]) & (index[:, None] <= ends[None, :])
        for i in range(1, n):  # the invariant the shifted loss needs
            if labels[i] != IGNORE and parent[i] != i - 1:
                raise AssertionError(f"trie token {i}: flat predecessor {i - 1} is not its parent {parent[i]}")
        return Structured(ids, labels, positions, allowed), node_of


def pack(prompt: Sequence[int], completion: Sequence[int], tags: Mapping[str, int],
         train_inner_threads: bool = False) -> Structured:
    """The trie-packed example of one trajectory (a sequential trajectory packs to itself)."""
    trie = Trie()
    for ids, trained in sequences(prompt, completion, tags, train_inner_threads):
        trie.insert(ids, trained)
    return trie.flatten()[0]

