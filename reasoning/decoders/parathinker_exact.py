"""ParaThinker decoding exactly as the model was trained (ParaThinker, arXiv 2509.04475, §3.2-3.3), on hf.

A model with thought embeddings (`reasoning.thought_embeddings`) reads each path with its own
segment id at shared positions, and the summary over all paths at positions after the longest.
`model.generate()` cannot pass per-token segment ids, and a stock engine re-reads the paths as
new text at sequential positions, so on the hf engine the ParaThinker decoder runs this loop:

  1. prefill the prompt once (segment 0, positions 0..L-1) into a KV cache;
  2. copy that cache into P rows; row k is forced to start with `<think_k>` at position L and
     samples token by token with segment k, until it writes its end tag (or hits its cap); the
     decoder then feeds the path's own closing tag, as the stock decoder appends it;
     with First-Finish (the reference engine's rule, and the default), the step at which the first
     row ends is the last step of every row: the others keep the token they sampled at that step
     and get no closing tag;
  3. build one cache from the prompt's keys and values followed by each path's own (already
     rotated to the positions it was read at: nothing is re-encoded), then feed `<summary>` and
     the summary prefix at positions starting one after the longest path (segment 0), and sample
     the summary over everything.
That is the training collator's layout (`rl.structure.parathinker`): positions, mask (a path
sees the prompt and itself; the summary sees all) and embeddings match token for token.
Requests do not go through a generation store (the loop is not a request an engine serves).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from reasoning.thought_embeddings import has_thought_embeddings


def hf_engine(engine):
    """The hf engine under `engine` (a store-backed `CachedEngine` wraps it), or None."""
    while getattr(engine, "inner", None) is not None and not hasattr(engine, "lm"):
        engine = engine.inner
    return engine if getattr(engine, "kind", "") == "hf" and getattr(engine, "lm", None) is not None else None


def available(engine) -> bool:
    """Whether `engine` can decode ParaThinker exactly: hf, with a model that has thought embeddings."""
    inner = hf_engine(engine)
    return inner is not None and has_thought_embeddings(inner.lm)


@dataclass
class Piece:
    """One sampled piece: its ids (a stop tag included, as engines count it), its text (without the stop
    tag or eos), why it ended and which stop ended it."""

    ids: list[int]
    text: str
    finish_reason: str  # stop | length | cut
    stop_string: str | None
    latency_s: float
    cut: bool = False  # stopped by First-Finish when another path ended: no closing tag follows


def _pick(logits, temperature: float, top_p: float, generator):
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs / probs.sum(-1, keepdim=True), 1, generator=generator).squeeze(-1)


class ExactParaThinker:
    """The step loop over one hf engine's model and tokenizer."""

    def __init__(self, engine):
        import torch

        engine = hf_engine(engine)
        self.torch = torch
        self.lm = engine.lm
        self.tokenizer = engine.tokenizer
        self.device = next(self.lm.parameters()).device
        self.eos = set(engine.eos_ids)

    def ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _step(self, tokens, positions, seg, cache, attended: int):
        torch = self.torch
        out = self.lm(input_ids=tokens, position_ids=positions, seg_ids=seg, past_key_values=cache,
                      attention_mask=torch.ones(tokens.shape[0], attended, dtype=torch.long, device=self.device),
                      use_cache=True)
        return out.logits[:, -1], out.past_key_values

    def run(self, prompt: str, openers: Sequence[str], closers: Sequence[str], stops: Sequence[Sequence[str]],
            path_cap: int, summary_lead: str, end_summary: str, summary_cap: int, temperature: float,
            top_p: float, seed: int | None, first_finish: bool = False,
            total_cap: int | None = None) -> tuple[list[Piece], Piece, int]:
        """(paths, summary, prompt tokens). `summary_lead` is `<summary>` plus the forced prefix.

        `first_finish`: stop every path at the step the first one ends (see the module docstring).
        `total_cap`: the summary samples at most what the paths left of it (the caller holds each
        path to its share through `path_cap`).
        """
        torch = self.torch
        from transformers import DynamicCache

        generator = torch.Generator(device=self.device)
        generator.manual_seed(0 if seed is None else seed)
        count = len(openers)
        with torch.inference_mode():
            # 1. the prompt, once
            prompt_ids = self.ids(prompt)
            length = len(prompt_ids)
            tokens = torch.tensor([prompt_ids], device=self.device)
            _, cache = self._step(tokens, torch.arange(length, device=self.device)[None], torch.zeros_like(tokens),
                                  DynamicCache(), length)
            cache.batch_repeat_interleave(count)
            # 2. the paths: row k opens with <think_k> (segment k) at position `length`
            opener_ids = [self.ids(o) for o in openers]
            closer_ids = [self.ids(c) for c in closers]
            if any(len(i) != 1 for i in opener_ids + closer_ids):
                raise ValueError("exact ParaThinker decoding needs every path tag to be one token")
            segments = torch.tensor([[k + 1] for k in range(count)], device=self.device)
            feed = [ids[0] for ids in opener_ids]
            written: list[list[int]] = [[] for _ in range(count)]  # sampled ids, a stop tag included
            ended: list[str | None] = [None] * count  # the stop string a path ended on
            active = [True] * count
            cut = [False] * count
            closing = [False] * count  # capped: the closing tag goes in next
            in_cache = [1] * count  # each row's tokens in the cache: its opener, what it fed, its closer
            position = length
            started = time.perf_counter()
            while True:
                logits, cache = self._step(torch.tensor(feed, device=self.device)[:, None],
                                           torch.full((count, 1), position, device=self.device), segments, cache,
                                           position + 1)
                position += 1
                if not any(active):
                    break
                picked = _pick(logits, temperature, top_p, generator).tolist()
                stopped_now = False  # a row wrote its end tag or eos at this step
                for k in range(count):
                    if not active[k]:  # a finished row keeps stepping with filler nobody reads
                        continue
                    in_cache[k] += 1
                    if closing[k]:  # it reached its cap: its last token is in, now its closing tag
                        feed[k], active[k] = closer_ids[k][0], False
                        continue
                    written[k].append(picked[k])
                    text = self.tokenizer.decode(written[k], skip_special_tokens=False)
                    ended[k] = next((stop for stop in stops[k] if text.endswith(stop)), None)
                    if ended[k] is not None or picked[k] in self.eos:
                        # its own closing tag takes the place of the end tag or eos (the reference rewrites
                        # any end tag to the path's own)
                        feed[k], active[k] = closer_ids[k][0], False
                        stopped_now = True
                    else:
                        feed[k] = picked[k]
                        closing[k] = len(written[k]) >= path_cap
                if first_finish and stopped_now:
                    # a row ended at this step: the others stop here too, their last token fed, no closer
                    for k in range(count):
                        if active[k]:
                            active[k], cut[k] = False, True
            path_s = time.perf_counter() - started
            paths = [self.piece(written[k], ended[k], path_s, cut[k]) for k in range(count)]
            if total_cap is not None:
                summary_cap = max(1, min(summary_cap, total_cap - sum(len(w) for w in written)))
            # 3. one cache: the prompt, then every path's own keys and values (no re-encoding)
            merged = DynamicCache()
            for index, layer in enumerate(cache.layers):
                keys = [layer.keys[:1, :, :length]] + [layer.keys[k:k + 1, :, length:length + in_cache[k]]
                                                       for k in range(count)]
                values = [layer.values[:1, :, :length]] + [layer.values[k:k + 1, :, length:length + in_cache[k]]
                                                           for k in range(count)]
                merged.update(torch.cat(keys, dim=2), torch.cat(values, dim=2), index)
            attended = length + sum(in_cache)
            start = length + max(in_cache)  # the summary's first position: one after the longest path
            lead = self.ids(summary_lead)
            tokens = torch.tensor([lead], device=self.device)
            started = time.perf_counter()
            logits, merged = self._step(tokens, torch.arange(start, start + len(lead), device=self.device)[None],
                                        torch.zeros_like(tokens), merged, attended + len(lead))
            position, attended = start + len(lead), attended + len(lead)
            summary: list[int] = []
            ended_summary = None
            while len(summary) < summary_cap:
                token = _pick(logits, temperature, top_p, generator).tolist()[0]
                summary.append(token)
                if self.tokenizer.decode(summary, skip_special_tokens=False).endswith(end_summary):
                    ended_summary = end_summary
                    break
                if token in self.eos:
                    break
                logits, merged = self._step(torch.tensor([[token]], device=self.device),
                                            torch.tensor([[position]], device=self.device),
                                            torch.zeros((1, 1), dtype=torch.long, device=self.device), merged,
                                            attended + 1)
                position, attended = position + 1, attended + 1
            return paths, self.piece(summary, ended_summary, time.perf_counter() - started), length

    def piece(self, ids: list[int], stop: str | None, latency_s: float, cut: bool = False) -> Piece:
        """The text the model wrote (without the stop tag or eos), and how it ended."""
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        if cut:
            return Piece(ids, text, "cut", None, latency_s, cut=True)
        if stop is not None:
            text = text[:-len(stop)]
        elif ids and ids[-1] in self.eos:
            text = self.tokenizer.decode(ids[:-1], skip_special_tokens=False)
        finish = "stop" if stop is not None or (ids and ids[-1] in self.eos) else "length"
        return Piece(ids, text, finish, stop, latency_s)
