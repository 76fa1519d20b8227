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
  - `num_paths` P (reference example 4; at most 8, the tags that exist).
  - `summary_prefix`: the reference forces `<summary>` followed by "By analyzing multiple
    reasoning processes above, I concluded that: The final answer is"; "" = a free summary.
  - `stop_on_any_end_tag`: the reference ends a path on any of `</think>`, `</think1..8>`,
    `</summary>` and rewrites it to the path's own end tag; off = only the path's own tag.
  - `assistant_prefix`: text written at the start of the assistant turn before the paths (the
    reference prompt ends with `<think>`; most chat templates of reasoning models add it).
  - Temperature 0.5 (the reference example). `max_total_tokens` has no effect: there is no
    main request to hold to it (cap the paths and the summary instead).
On the hf engine, a model trained by `parafuse train sft parathinker-sft` (it has thought
embeddings) is decoded exactly instead (`exact`, see `reasoning.decoders.parathinker_exact`):
one prompt prefill, paths at shared positions with their embeddings, the summary over the paths'
own cached keys and values. The approximation above stays for vllm and OpenAI servers.
Not reproduced: first-finish termination (the reference cuts all paths when the first one
ends; that needs streamed partial outputs and aborts, so here every path runs to its own end),
the rewrite of a path's stray `<think{j}>`/`<summary>` into `<think1>` (text-level engines
cannot rewrite a sampled token), and the `<vllm_pad>` block alignment (KV-cache layout only).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reasoning.decoders import parathinker_exact
from reasoning.decoders.base import DecodeResult, DecoderConfig, Decoding, ended_by, sampling_block
from reasoning.engines.base import Engine
from reasoning.sampling import Sampling
from reasoning.settings import setting
from reasoning.types import Completion, InputError

MAX_PATHS = 8
SUMMARY, END_SUMMARY = "<summary>", "</summary>"
REFERENCE_SUMMARY_PREFIX = "By analyzing multiple reasoning processes above, I concluded that: The final answer is"
END_TAGS = ("</think>",) + tuple(f"</think{i}>" for i in range(1, MAX_PATHS + 1)) + (END_SUMMARY,)


@dataclass
class ParaThinkerConfig(DecoderConfig):
    """ParaThinker decoding (defaults follow the reference example)."""

    POSITIVE = ("num_paths", "max_path_tokens", "max_summary_tokens")

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
    path_cap = cfg.max_path_tokens if cfg.max_path_tokens is not None else cfg.sampling.max_tokens
    if cfg.exact and parathinker_exact.available(engine):
        return await exact_decode(decoding, cfg, opens, closes, stops, path_cap)
    paths = await decoding.branches("path", opens, stops, path_cap, closes)
    for opener, path, closer in zip(opens, paths, closes):
        decoding.insert(opener)
        decoding.generated(path.completion, path.request)
        decoding.insert(closer)
    c = await decoding.sequential("summary", (END_SUMMARY,), cfg.max_summary_tokens, 0,
                                  suffix=SUMMARY + cfg.summary_prefix, close=END_SUMMARY, capped=False)
    decoding.insert(END_SUMMARY)
    return decoding.result(ended_by(c))


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
        END_SUMMARY, cfg.max_summary_tokens, cfg.sampling.temperature, cfg.sampling.top_p, seed)
    for index, (opener, path, closer) in enumerate(zip(opens, paths, closes)):
        decoding.requests.append({"role": "path", "block": 0, "index": index, "prompt_tokens": prompt_tokens,
                                  "completion_tokens": len(path.ids), "latency_s": round(path.latency_s, 6),
                                  "finish_reason": path.finish_reason, "stop_string": path.stop_string,
                                  "forced_close": path.stop_string != closer, "exact": True})
        decoding.insert(opener)
        decoding.generated(Completion(path.text, len(path.ids), path.finish_reason, path.stop_string, path.ids),
                           len(decoding.requests) - 1)
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
    return decoding.result(ended_by(completion))
