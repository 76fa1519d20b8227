"""Parallel-R1 decoding on a stock engine (Parallel-R1, arXiv 2509.07980: the rollout procedure of its
released code).

    loop, up to `max_blocks` blocks:
      main     continue the trace, stop on `<Parallel>` (eos or the length cap ends the decode)
      paths    k requests at once, each prompted with the trace + `<Path>`, stop on `</Path>`;
               a path that ended on eos or ran out is closed by the decoder (`forced_close`)
      join     `<Path>…</Path>` × k + `</Parallel>\\n<Summary>`, then one summary request that
               stops on `</Summary>` (closed by the decoder when it did not)

What follows the reference (`ParallelThinkingAgentLoopV3.run`) and what is a switch:
  - k = `num_paths` (reference 2), fixed by the decoder, not chosen by the model.
  - Paths are sampled at `path_temperature` (reference 1.0 whatever the run's temperature;
    None = the run's temperature).
  - `</Parallel>`, a newline, then `<Summary>`: the reference inserts a newline token between
    them (`newline_before_summary`).
  - After the `max_blocks`-th block (reference 4) the reference stops, even with no final answer
    written (`continue_after_limit` = False). With it on, one more main request continues the
    trace, no longer stopping on `<Parallel>`.
  - Per-request caps: `sampling.max_tokens` (main), `max_path_tokens` (reference 4096, larger than its
    3000-token response cap), `max_summary_tokens`; `max_total_tokens` is the response cap.
Not reproduced (training/engine-side): the structured attention mask and position ids of the
Unseen variant. Here the summary and later text are sampled with plain causal attention over
the concatenated paths, exactly as the reference's vLLM rollout does.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reasoning.decoders.base import DecodeResult, DecoderConfig, Decoding, ended_by
from reasoning.engines.base import Engine
from reasoning.formats.tags import PARALLEL_R1
from reasoning.settings import setting

OPEN, CLOSE, PATH, END_PATH, SUMMARY, END_SUMMARY = PARALLEL_R1


@dataclass
class ParallelR1Config(DecoderConfig):
    """Parallel-R1 decoding (defaults follow the reference rollout scripts where they exist)."""

    num_paths: int = setting(2, "paths forked per <Parallel> block (reference 2)")
    max_blocks: int = setting(4, "parallel blocks per response; the reference stops after the last one (reference 4)")
    POSITIVE = ("num_paths", "max_blocks", "max_path_tokens", "max_summary_tokens")

    max_path_tokens: int = setting(1024, "cap on each path request (reference 4096)")
    max_summary_tokens: int = setting(512, "cap on each summary request")
    path_temperature: float | None = setting(1.0, "temperature of path requests (reference forces 1.0); "
                                             "None = the run's temperature")
    newline_before_summary: bool = setting(True, "write `</Parallel>\\n<Summary>` as the reference does; off: "
                                            "`</Parallel><Summary>`")
    continue_after_limit: bool = setting(False, "after the block limit, continue sequentially (one main request that "
                                           "no longer stops on <Parallel>) instead of stopping as the reference does")


async def decode(engine: Engine, source: str | Sequence[Mapping[str, str]], cfg: ParallelR1Config | None = None,
                 key: str = "") -> DecodeResult:
    """Decode one prompt (raw text, or chat messages rendered with the engine's template)."""
    cfg = cfg or ParallelR1Config()
    decoding = Decoding(engine, source, cfg, "parallel_r1", key)
    forced = cfg.force_open
    while True:
        if decoding.remaining() is not None and decoding.remaining() <= 0:
            return decoding.result("token_budget")
        if decoding.blocks >= cfg.max_blocks:
            if not cfg.continue_after_limit:
                return decoding.result("block_limit")
            c = await decoding.sequential("main", (), cfg.sampling.max_tokens, decoding.blocks)
            return decoding.result(ended_by(c))
        if forced:  # the decoder opens the first block itself
            forced = False
            decoding.insert(OPEN)
        else:
            c = await decoding.sequential("main", (OPEN,), cfg.sampling.max_tokens, decoding.blocks)
            if c.stop_string != OPEN:
                return decoding.result(ended_by(c))
            decoding.insert(OPEN)
        paths = await decoding.branches("path", [PATH] * cfg.num_paths, [(END_PATH,)] * cfg.num_paths,
                                        cfg.max_path_tokens, [END_PATH] * cfg.num_paths, cfg.path_temperature)
        for path in paths:
            decoding.insert(PATH)
            decoding.generated(path.completion, path.request)
            decoding.insert(END_PATH)
        decoding.insert(CLOSE + ("\n" if cfg.newline_before_summary else "") + SUMMARY)
        await decoding.sequential("summary", (END_SUMMARY,), cfg.max_summary_tokens, decoding.blocks - 1,
                                  close=END_SUMMARY, capped=False)
        decoding.insert(END_SUMMARY)
