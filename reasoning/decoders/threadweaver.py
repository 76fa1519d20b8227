"""ThreadWeaver fork-join decoding on a stock engine (ThreadWeaver, arXiv 2512.07843: inference with an
off-the-shelf engine, one request per thread, as its released controller does).

    loop, at most `max_iterations` times:
      main     continue the trace, stop on `</Outlines>` (eos or the length cap ends the decode)
      parse    the outline numbers after the last `<Outlines>` (`<Outline>1.2: …` gives "1.2";
               repeats dropped, order kept)
      threads  one request per outline, all at once: the trace + `\\n<Thread>\\n{n}:`, stop on `</Thread>`
      join     threads in outline order; the first keeps its leading newline, later ones start
               right at `<Thread>` (`…</Thread><Thread>\\n2:…`); a thread that did not stop on
               `</Thread>` gets `\\n</Thread>`. Then `\\n` (or `\\n<Conclusion>\\n`) and the next
               main request continues from the joined text; the model itself writes `</Parallel>`.
      If any thread ended on eos or its length cap, the decoder appends `\\n</Parallel>` and stops
      (`stop_on_truncated_thread`, the reference's behaviour).

A `</Outlines>` with no numbered outline written since the last fork cannot be forked: the
decoder continues sequentially (the next main request picks up after `</Outlines>`, with an id
and seed of its own), and after `max_unforkable_outlines` such sections in a row it stops with
stop_reason `unforkable_outlines`: a model that keeps closing empty outline lists makes no
progress, and every retry would lengthen the prompt towards the context limit.
The continuation after a join is role "join" in the usage rows; it is on the critical path.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reasoning.decoders.base import DecodeResult, DecoderConfig, Decoding, ended_by, sampling_block
from reasoning.engines.base import Engine
from reasoning.formats.tags import THREADWEAVER
from reasoning.formats.threadweaver import split_numbered
from reasoning.sampling import Sampling
from reasoning.settings import setting
from reasoning.types import InputError

_, _, PARALLEL, END_PARALLEL, OUTLINES, END_OUTLINES, OUTLINE, _, THREAD, END_THREAD, CONCLUSION, _ = THREADWEAVER


@dataclass
class ThreadWeaverConfig(DecoderConfig):
    """ThreadWeaver decoding (defaults follow the reference controller)."""

    POSITIVE = ("max_iterations", "max_thread_tokens", "force_outlines", "max_unforkable_outlines")

    sampling: Sampling = sampling_block("sampling of every request (reference: temperature 0.6 for trajectory "
                                        "generation, 1.0 in RL rollouts; top_p 0.95); max_tokens caps each main or "
                                        "continuation request", temperature=0.6, top_p=0.95)
    max_iterations: int = setting(32, "controller iterations (main request, fork, join) before it gives up "
                                 "(reference 32)")
    max_thread_tokens: int = setting(1024, "cap on each thread request")
    conclusion: bool = setting(False, "after the threads write `\\n<Conclusion>\\n` instead of `\\n` (the shipped RL "
                                 "config runs without conclusions)")
    stop_on_truncated_thread: bool = setting(True, "when a thread ends on eos or its cap, close the block with "
                                              "`\\n</Parallel>` and stop, as the reference does; off: join and "
                                              "continue")
    max_unforkable_outlines: int = setting(2, "`</Outlines>` sections in a row with no parsable outline the decoder "
                                          "continues past before it stops (stop_reason unforkable_outlines)")
    force_outlines: int = setting(2, "with force_open: how many numbered outlines the decoder writes for the "
                                "first block")


    def check(self) -> None:
        super().check()
        if self.force_open and self.force_outlines < 1:
            raise InputError(f"force_outlines must be >= 1 with force_open, got {self.force_outlines}")


def outline_numbers(text: str) -> list[str]:
    """The outline numbers of the last `<Outlines>` section of `text`, in order, without repeats
    (none when `text` has no `<Outlines>`)."""
    at = text.rfind(OUTLINES)
    if at < 0:
        return []
    # The format's own numbering rule, applied to what follows each <Outline> (closed or not yet).
    numbers = (split_numbered(chunk)[0] for chunk in text[at:].split(OUTLINE)[1:])
    return list(dict.fromkeys(n for n in numbers if n is not None))


def thread_prefix(n: str, first: bool) -> str:
    return ("\n" if first else "") + f"{THREAD}\n{n}:"


def forced_block(k: int) -> str:
    """The opening a model would write: `<Parallel>`, then k numbered outlines (test/bench aid)."""
    items = "".join(f"<Outline>{i}: part {i}</Outline>\n" for i in range(1, k + 1))
    return f"{PARALLEL}\n{OUTLINES}\n{items}{END_OUTLINES}"


async def decode(engine: Engine, source: str | Sequence[Mapping[str, str]],
                 cfg: ThreadWeaverConfig | None = None, key: str = "") -> DecodeResult:
    """Decode one prompt (raw text, or chat messages rendered with the engine's template)."""
    cfg = cfg or ThreadWeaverConfig()
    decoding = Decoding(engine, source, cfg, "threadweaver", key)
    forced = cfg.force_open
    unforkable = 0  # `</Outlines>` sections in a row with nothing to fork
    for _ in range(cfg.max_iterations):
        if decoding.remaining() is not None and decoding.remaining() <= 0:
            return decoding.result("token_budget")
        start = len(decoding.text)  # outlines count only when written in this iteration, never an earlier block's
        if forced:
            forced = False
            decoding.insert(forced_block(cfg.force_outlines))
        else:
            role = "join" if decoding.blocks else "main"
            c = await decoding.sequential(role, (END_OUTLINES,), cfg.sampling.max_tokens, decoding.blocks)
            if c.stop_string != END_OUTLINES:
                return decoding.result(ended_by(c))
            decoding.insert(END_OUTLINES)
        numbers = outline_numbers(decoding.text[start:])
        if not numbers:
            unforkable += 1
            if unforkable >= cfg.max_unforkable_outlines:
                return decoding.result("unforkable_outlines")
            continue
        unforkable = 0
        # Every thread is prompted with the leading newline; in the joined text only the first keeps it.
        threads = await decoding.branches("thread", [thread_prefix(n, True) for n in numbers],
                                          [(END_THREAD,)] * len(numbers), cfg.max_thread_tokens,
                                          [END_THREAD] * len(numbers))
        truncated = False
        for i, (n, thread) in enumerate(zip(numbers, threads)):
            closed = thread.stop_string == END_THREAD
            truncated |= not closed
            decoding.insert(thread_prefix(n, i == 0))
            decoding.generated(thread.completion, thread.request)
            decoding.insert(END_THREAD if closed else "\n" + END_THREAD)
        if truncated and cfg.stop_on_truncated_thread:
            decoding.insert("\n" + END_PARALLEL)
            return decoding.result("truncated_thread")
        decoding.insert(f"\n{CONCLUSION}\n" if cfg.conclusion else "\n")
    return decoding.result("iteration_cap")
