"""ParaThinker decoding on a stock engine (ParaThinker, arXiv 2509.04475: inference, which the paper runs
in a patched vLLM).

    paths    P requests at once from the same prompt; path i is forced to start with `<think{i}>`
             and stops on `</think{i}>` (by default on any end tag, see below); the decoder closes
             every path with its own `</think{i}>`
    summary  one request over the prompt and all P paths, forced to start with `<summary>` and
             the reference's summary template, stopping on `</summary>` (closed by the decoder)

How this differs from the paper's engine. ParaThinker's inference runs in a patched vLLM V0:
the prompt is prefilled once (padded with `<vllm_pad>` to whole KV blocks), forked into P
sequences that share its KV blocks, each path is padded to whole blocks as it ends, and the
summary is a merged sequence whose block table points at the paths' existing KV blocks: no
token is prefilled twice, the paths keep the shared positions they were decoded at, and a
learned per-path embedding is added to K and V. On a stock engine (hf, vLLM, any OpenAI
server) the P path requests share only the prompt, so prefix caching saves the prompt's
prefill for paths 2..P and nothing else; the summary request re-prefills every path as new
text at sequential positions (path 2 after path 1, ...), with plain causal attention and no
path embeddings. The text and the token counts are what the method produces; the wall time
of the summary's prefill is not, and a model trained with ParaThinker's position scheme sees
positions it was not trained on in the summary.

What follows the reference and what is a switch:
  - `first_finish` (default on): the reference engine decodes all P paths in lockstep, one token
    per step, and ends the thinking stage as soon as one path has finished (its threshold, 0.1 P
    finished paths, is the first path for P <= 10); every other path stops where it stands, with
    no end tag, and the summary reads the cut paths. On a stock engine the paths advance in
    lockstep rounds of `first_finish_block` tokens (each round one continuation request per
    path: the prompt, the path's opener and its text so far); after the round in which the first
    path ends, with L tokens, every other path is cut to L tokens through the engine's tokenizer
    (its token ids when the engine returned them) and left without an end tag. So the paths hold
    what the reference's lockstep decode holds at that step. The block size sets how much is
    generated past L and then discarded, and, since each round is a new seeded request on the
    re-read text, which text a seeded run samples. Counted tokens are the kept ones (P x L for the paths,
    what the reference spends), the discarded ones are in each cut request's row
    (`generated_tokens`); the critical path is the shortest (finishing) path plus the summary.
    Off: every path runs to its own end (the critical path is then the longest path).
  - `num_paths` P (reference example 4; at most 8, the tags that exist).
  - `summary_prefix`: the reference forces `<summary>` followed by "By analyzing multiple
    reasoning processes above, I concluded that: The final answer is"; "" = a free summary.
  - `stop_on_any_end_tag`: the reference ends a path on any of `</think>`, `</think1..8>`,
    `</summary>` and rewrites it to the path's own end tag; off = only the path's own tag.
  - `assistant_prefix`: text written at the start of the assistant turn before the paths (the
    reference prompt ends with `<think>`; most chat templates of reasoning models add it).
  - Temperature 0.5 (the reference example).
  - `max_total_tokens` (a parafuse budget; the reference has none): a cap on every token the
    decode generates, paths and summary together. The summary is guaranteed the share of one
    more path, min(max_summary_tokens, max_total_tokens // (P + 1)); the paths share the rest
    equally (each held to (max_total_tokens - that share) // P); the summary then gets what the
    paths left, up to max_summary_tokens.
On the hf engine, a model trained by `parafuse train sft parathinker-sft` (it has thought
embeddings) is decoded exactly instead (`exact`, see `reasoning.decoders.parathinker_exact`):
one prompt prefill, paths at shared positions with their embeddings, the summary over the paths'
own cached keys and values; first-finish there is the reference's own rule, step by step.
The approximation above stays for vllm and OpenAI servers.
Not reproduced: the rewrite of a path's stray `<think{j}>`/`<summary>` into `<think1>` (text-level
engines cannot rewrite a sampled token; the format's `reference` mode reads such text as the
reference writes it), and the `<vllm_pad>` block alignment (KV-cache layout only).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reasoning.decoders import parathinker_exact
from reasoning.decoders.base import DecodeResult, DecoderConfig, Decoding, ended_by, sampling_block
from reasoning.engines.base import Engine
from reasoning.formats import parathinker as fmt
from reasoning.sampling import Sampling
from reasoning.settings import setting
from reasoning.types import Completion, InputError

MAX_PATHS = 8
SUMMARY, END_SUMMARY = "<summary>", "</summary>"
REFERENCE_SUMMARY_PREFIX = "By analyzing multiple reasoning processes above, I concluded that: The final answer is"
END_TAGS = ("</think>",) + tuple(f"</think{i}>" for i in range(1, MAX_PATHS + 1)) + (END_SUMMARY,)


@dataclass
class ParaThinkerConfig(DecoderConfig):
    """ParaThinker decoding (defaults follow the reference example and engine)."""

    POSITIVE = ("num_paths", "max_path_tokens", "max_summary_tokens", "first_finish_block")

    sampling: Sampling = sampling_block("sampling of every request (reference example: temperature 0.5); there is "
                                        "no main request: max_tokens caps each path unless max_path_tokens is set",
                                        temperature=0.5, top_p=1.0)
    num_paths: int = setting(4, f"parallel paths P, each with its own <think_i> tag (reference example 4, at most "
                           f"{MAX_PATHS})")
    max_path_tokens: int | None = setting(None, "cap on each path request (none: sampling.max_tokens; reference "
                                                "example 16384)")
    max_summary_tokens: int = setting(512, "cap on the summary request")
    summary_prefix: str = setting(REFERENCE_SUMMARY_PREFIX, "text forced after <summary> before the summary is sampled "
                                                       "(the reference's template; '' for a free summary)")
    stop_on_any_end_tag: bool = setting(True, "end a path on any </think>, </think1..8> or </summary>, as the "
                                              "reference "
                                         "does (the path is still closed with its own tag); off: only its own tag")
    first_finish: bool = setting(True, "First-Finish, as the reference engine: when the first path ends, every other "
                                       "path is cut at the same token count and left without an end tag, and the "
                                       "summary reads the cut paths; off: every path runs to its own end")
    first_finish_block: int | None = setting(256, "with first_finish on a stock engine: tokens per lockstep round (one "
                                                  "continuation request per path per round, each its own seeded "
                                                  "request, so it also decides a seeded run's text); larger wastes "
                                                  "more past the cut, smaller sends more requests; none: one "
                                                  "request per path to its cap, cut afterwards")
    force_open: bool = setting(False, "no effect: ParaThinker's paths always open at the prompt")
    assistant_prefix: str = setting("", "text the decoder writes at the start of the assistant turn, before the paths "
                                    "(e.g. '<think>' when the chat template does not add it)")
    exact: bool = setting(True, "on the hf engine with a model that has thought embeddings (a parafuse ParaThinker "
                                "SFT output): decode with the training positions, mask and embeddings in one KV "
                                "cache; off, or on any other engine: the stock-engine approximation above")

    def check(self) -> None:
        super().check()
        if self.num_paths > MAX_PATHS:
            raise InputError(f"num_paths {self.num_paths}: ParaThinker has at most {MAX_PATHS} paths "
                             f"(tags <think1>..<think{MAX_PATHS}>)")
        if self.max_total_tokens is not None and self.max_total_tokens < self.num_paths + 1:
            raise InputError(f"max_total_tokens {self.max_total_tokens} cannot give each of the {self.num_paths} "
                             f"paths and the summary a token: set it to at least num_paths + 1 = "
                             f"{self.num_paths + 1}, or leave it unset")

    def caps(self) -> tuple[int, int]:
        """(each path's cap, the summary's guaranteed cap) under max_total_tokens (see the module docstring)."""
        path_cap = self.max_path_tokens if self.max_path_tokens is not None else self.sampling.max_tokens
        total = self.max_total_tokens
        if total is None:
            return path_cap, self.max_summary_tokens
        summary_share = min(self.max_summary_tokens, total // (self.num_paths + 1))
        return min(path_cap, (total - summary_share) // self.num_paths), summary_share


@dataclass
class Path:
    """One decoded path: its completions (one per round, the last one cut under first-finish) and what
    became of it."""

    pieces: list[tuple[Completion, int]]  # (completion, number of its request)
    tokens: int = 0  # tokens kept
    cut: bool = False  # stopped by another path's finish: no end tag


async def decode(engine: Engine, source: str | Sequence[Mapping[str, str]], cfg: ParaThinkerConfig | None = None,
                 key: str = "") -> DecodeResult:
    """Decode one prompt (raw text, or chat messages rendered with the engine's template)."""
    cfg = cfg or ParaThinkerConfig()
    decoding = Decoding(engine, source, cfg, "parathinker", key)
    decoding.insert(cfg.assistant_prefix)
    opens = [f"<think{i}>" for i in range(1, cfg.num_paths + 1)]
    closes = [f"</think{i}>" for i in range(1, cfg.num_paths + 1)]
    # Its own end tag first: a server that takes only a few stop strings gets the one that matters.
    stops = [(close,) + tuple(t for t in END_TAGS if t != close) if cfg.stop_on_any_end_tag else (close,)
             for close in closes]
    path_cap, _ = cfg.caps()
    if cfg.exact and parathinker_exact.available(engine):
        return await exact_decode(decoding, cfg, opens, closes, stops, path_cap)
    if cfg.first_finish:
        paths = await first_finish_paths(decoding, cfg, opens, stops, closes, path_cap)
    else:
        paths = [Path([(b.completion, b.request)], b.tokens)
                 for b in await decoding.branches("path", opens, stops, path_cap, closes)]
    for opener, path, closer in zip(opens, paths, closes):
        decoding.insert(opener)
        for completion, request in path.pieces:
            decoding.generated(completion, request)
        if not path.cut:
            decoding.insert(closer)
    summary_cap = cfg.max_summary_tokens
    if cfg.max_total_tokens is not None:
        summary_cap = max(1, min(summary_cap, cfg.max_total_tokens - decoding.total))
    c = await decoding.sequential("summary", (END_SUMMARY,), summary_cap, 0,
                                  suffix=SUMMARY + cfg.summary_prefix, close=END_SUMMARY, capped=False)
    decoding.insert(END_SUMMARY)
    return finish(decoding, cfg, ended_by(c))


def finish(decoding: Decoding, cfg: ParaThinkerConfig, stop_reason: str) -> DecodeResult:
    result = decoding.result(stop_reason)
    # The shared validator reads the strict grammar; a first-finish trace's cut paths are valid by design.
    result.validation_errors = [str(e) for e in fmt.validate(result.text, first_finish=cfg.first_finish)]
    return result


def finished(c: Completion) -> bool:
    """Whether a path's completion ended the path (an end tag or eos), not its token limit."""
    return c.stop_string is not None or c.finish_reason != "length"


def cut_completion(engine: Engine, c: Completion, keep: int) -> Completion:
    """`c` cut to its first `keep` tokens: by its token ids when the engine gave them, else by re-tokenizing."""
    if c.token_ids is not None:
        ids = c.token_ids[:keep]
        text = engine.decode_ids(ids)
    else:
        ids, text = None, engine.truncate(c.text, keep)
    logprobs = None if c.logprobs is None else c.logprobs[:keep]
    return Completion(text, keep, "cut", None, ids, logprobs)


def mark_forced_closes(decoding: Decoding, paths: list[Path]) -> None:
    """Record on each path's last request that the decoder, not the model, writes its end tag."""
    for path in paths:
        if path.pieces:
            decoding.requests[path.pieces[-1][1]]["forced_close"] = True


async def first_finish_paths(decoding: Decoding, cfg: ParaThinkerConfig, opens: list[str],
                             stops: list[tuple[str, ...]], closes: list[str], path_cap: int) -> list[Path]:
    """The paths under First-Finish on a stock engine: lockstep rounds until one path ends, the rest cut."""
    import asyncio

    count = len(opens)
    paths = [Path([]) for _ in range(count)]
    texts = [""] * count
    # Each path's own token count: a server that re-tokenizes its text may return rounds of slightly
    # different lengths, so the paths are counted apart rather than assumed in step.
    counts = [0] * count
    rnd = 0
    while all(n < path_cap for n in counts):
        sizes = [path_cap - n if cfg.first_finish_block is None else min(cfg.first_finish_block, path_cap - n)
                 for n in counts]
        reqs = [decoding.request(opens[i] + texts[i], stops[i], sizes[i], "path", 0, i) for i in range(count)]
        results = await asyncio.gather(*(decoding.engine.agenerate(r) for r in reqs))
        rows = []
        for i, (req, res) in enumerate(zip(reqs, results)):
            row = decoding._usage(req, res, "path", 0, i, closes[i])
            row["round"] = rnd
            decoding.requests.append(row)
            rows.append(len(decoding.requests) - 1)
        outs = [res.completions[0] for res in results]
        ended = [i for i, c in enumerate(outs) if finished(c)]
        if ended:
            # The reference stops the thinking stage at the step the first path ends: at that step every
            # path holds as many tokens as that one (its end tag included); a path that ended later in this
            # round had not ended yet there, and is cut like the others. (A path already past that length
            # from earlier rounds, possible only when rounds came back uneven, keeps what it had.)
            length = min(counts[i] + outs[i].tokens for i in ended)
            for i, c in enumerate(outs):
                if i in ended and counts[i] + c.tokens == length:
                    paths[i].pieces.append((c, rows[i]))
                    paths[i].tokens = length
                    continue
                keep = max(0, min(c.tokens, length - counts[i]))
                row = decoding.requests[rows[i]]
                row.update(completion_tokens=keep, generated_tokens=c.tokens, cut=True, forced_close=False)
                if keep:
                    paths[i].pieces.append((cut_completion(decoding.engine, c, keep), rows[i]))
                paths[i].tokens, paths[i].cut = counts[i] + keep, True
            break
        for i, c in enumerate(outs):
            decoding.requests[rows[i]]["forced_close"] = False  # the path goes on: no tag follows this round
            paths[i].pieces.append((c, rows[i]))
            texts[i] += c.text
            counts[i] += c.tokens
            paths[i].tokens = counts[i]
        rnd += 1
        # A round that came back short without ending (a server's own limit) must not spin forever: the
        # paths end here, and the decoder closes each, as at the cap.
        if min(c.tokens for c in outs) <= 0:
            mark_forced_closes(decoding, paths)
            break
    else:
        mark_forced_closes(decoding, paths)  # every path ran to the cap: the decoder closes each
    tokens = [p.tokens for p in paths]
    decoding.total += sum(tokens)
    decoding.critical += max(tokens, default=0)  # all equal when a path finished: the shortest (finishing) path
    decoding.blocks += 1
    return paths


async def exact_decode(decoding: Decoding, cfg: ParaThinkerConfig, opens: list[str], closes: list[str],
                       stops: list[tuple[str, ...]], path_cap: int) -> DecodeResult:
    """The same trace, decoded by `parathinker_exact` (positions, mask and thought embeddings as trained)."""
    import asyncio

    from reasoning.inputs import derive_seed

    base = cfg.sampling.seed
    seed = None if base is None else derive_seed(base, f"{decoding.key}/parathinker-exact")
    loop = parathinker_exact.ExactParaThinker(decoding.engine)
    paths, summary, prompt_tokens = await asyncio.to_thread(
        loop.run, decoding.base + decoding.text, opens, closes, stops, path_cap, SUMMARY + cfg.summary_prefix,
        END_SUMMARY, cfg.max_summary_tokens, cfg.sampling.temperature, cfg.sampling.top_p, seed,
        first_finish=cfg.first_finish, total_cap=cfg.max_total_tokens)
    for index, (opener, path, closer) in enumerate(zip(opens, paths, closes)):
        row = {"role": "path", "block": 0, "index": index, "prompt_tokens": prompt_tokens,
               "completion_tokens": len(path.ids), "latency_s": round(path.latency_s, 6),
               "finish_reason": path.finish_reason, "stop_string": path.stop_string,
               "forced_close": not path.cut and path.stop_string != closer, "exact": True}
        if path.cut:
            row["cut"] = True
        decoding.requests.append(row)
        decoding.insert(opener)
        decoding.generated(Completion(path.text, len(path.ids), path.finish_reason, path.stop_string, path.ids),
                           len(decoding.requests) - 1)
        if not path.cut:
            decoding.insert(closer)
    decoding.total += sum(len(p.ids) for p in paths)
    decoding.critical += max(len(p.ids) for p in paths)
    decoding.blocks += 1
    decoding.requests.append({"role": "summary", "block": 0, "index": 0, "prompt_tokens": prompt_tokens,
                              "completion_tokens": len(summary.ids), "latency_s": round(summary.latency_s, 6),
                              "finish_reason": summary.finish_reason, "stop_string": summary.stop_string,
                              "forced_close": summary.stop_string != END_SUMMARY, "exact": True})
    decoding.total += len(summary.ids)
    decoding.critical += len(summary.ids)
    decoding.insert(SUMMARY + cfg.summary_prefix)
    completion = Completion(summary.text, len(summary.ids), summary.finish_reason, summary.stop_string, summary.ids)
    decoding.generated(completion, len(decoding.requests) - 1)
    decoding.insert(END_SUMMARY)
    return finish(decoding, cfg, ended_by(completion))
