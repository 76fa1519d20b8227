"""What every parallel-thinking decoder shares: its result, its config fields, and the request plumbing.

A decoder turns one prompt into one response trace by issuing dependent requests to a stock
engine: sequential text, then a block of concurrent branch requests, then a join, and so on.
Every request is raw text: `engine.render_chat(messages)` (or the raw prompt) plus all the
text generated or inserted so far, so the model continues its own partial assistant turn.

Prefix caching. Branch requests of one block share their whole prompt except the branch
opener, and the join puts branch 1 first, directly after the shared context: the text of
each later prompt starts with the exact text of the earlier one (nothing is stripped or
re-spaced), which is what lets an engine's prefix cache reuse the shared context (and, for
the join, the shared context plus branch 1). Branch outputs are asked for without their
stop string and the closing tag is appended by the decoder, so a branch that stopped on its
tag reads exactly as the model wrote it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reasoning.engines.base import Engine
from reasoning.inputs import derive_seed
from reasoning.types import Completion, InputError, Request, SamplingParams

ROLES = ("main", "path", "thread", "summary", "join")
BRANCH_ROLES = ("path", "thread")


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class DecoderConfig:
    """Settings every decoder has. Each method's config adds its own phase caps and switches."""

    temperature: float = _f(1.0, "sampling temperature of every request (0 = greedy)")
    top_p: float = _f(1.0, "nucleus sampling mass of every request")
    seed: int | None = _f(0, "base seed; each request's seed is derived from it, the decode key, the request's "
                             "role, block and branch index (None: unseeded)")
    max_total_tokens: int | None = _f(None, "response-length cap: a main request is cut to what is left of it, and "
                                            "none is issued once this many tokens were generated in all (a forked "
                                            "block is still summarized); None = no cap")
    force_open: bool = _f(False, "test/bench aid: the decoder itself opens the first parallel block instead of "
                                 "waiting for the model to, so a model that never emits the tags still forks")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.startswith(("max_", "num_")) and v is not None and (not isinstance(v, int) or v < 1):
                raise InputError(f"decoder setting {f.name} must be a positive integer, got {v!r}")
        SamplingParams(temperature=self.temperature, top_p=self.top_p)  # range checks

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown settings {unknown} for {cls.__name__}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class DecodeResult:
    """One decoded prompt: the response trace and what it cost."""

    text: str  # the full response: generated text plus the tags the decoder inserted (not the prompt)
    format: str  # parallel_r1 | threadweaver | parathinker
    # Per request, in the order issued: role (main/path/thread/summary/join), block (the block a branch or
    # summary belongs to; for main/join, how many blocks came before), index (branch number),
    # prompt_tokens, completion_tokens, latency_s, finish_reason, stop_string, and for branches and
    # summaries forced_close (the decoder wrote the closing tag because the model did not).
    requests: list[dict[str, Any]] = field(default_factory=list)
    total_tokens: int = 0  # generated tokens over all requests
    critical_path_tokens: int = 0  # sequential requests + the longest branch of each block
    wall_s: float = 0.0
    blocks: int = 0  # parallel blocks that were forked
    stop_reason: str = ""  # why decoding ended: eos | length | block_limit | iteration_cap | token_budget | ...
    validation_errors: list[str] = field(default_factory=list)  # the format validator's complaints

    @property
    def prompt_tokens(self) -> int:
        return sum(r["prompt_tokens"] for r in self.requests)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prompt_tokens"] = self.prompt_tokens
        return d


class Decoding:
    """The running state of one decode: the text so far, and the usage of each request issued."""

    def __init__(self, engine: Engine, source: str | Sequence[Mapping[str, str]], cfg: DecoderConfig,
                 method: str, key: str = ""):
        cfg.check()
        self.engine, self.cfg, self.method, self.key = engine, cfg, method, key
        if isinstance(source, str):
            self.base = source
        else:
            msgs = [dict(m) for m in source]
            if not msgs:
                raise InputError("a decode needs a prompt: raw text or a non-empty list of messages")
            self.base = engine.render_chat(msgs)
        self.text = ""
        self.requests: list[dict[str, Any]] = []
        self.total = 0
        self.critical = 0
        self.blocks = 0
        self.t0 = time.perf_counter()

    # ---- requests ---------------------------------------------------------------------------
    def remaining(self) -> int | None:
        cap = self.cfg.max_total_tokens
        return None if cap is None else cap - self.total

    def request(self, suffix: str, stop: Sequence[str], max_tokens: int, role: str, block: int, index: int = 0,
                temperature: float | None = None) -> Request:
        """A raw-text request continuing the trace (plus `suffix`) with a seed of its own."""
        where = f"{self.key}/{role}/{block}/{index}"
        seed = None if self.cfg.seed is None else derive_seed(self.cfg.seed, where)
        params = SamplingParams(temperature=self.cfg.temperature if temperature is None else temperature,
                                top_p=self.cfg.top_p, max_tokens=max_tokens, stop=tuple(stop), seed=seed)
        # key_extra keeps otherwise identical unseeded branch requests apart in a generation store.
        return Request(prompt=self.base + self.text + suffix, params=params, id=f"{self.key}/{role}/{block}/{index}",
                       key_extra=f"{self.method}:{where}")

    def _usage(self, req: Request, res, role: str, block: int, index: int, close: str | None) -> dict[str, Any]:
        c = res.completions[0]
        row = {"role": role, "block": block, "index": index, "prompt_tokens": res.prompt_tokens,
               "completion_tokens": c.tokens, "latency_s": round(res.latency_s, 6),
               "finish_reason": c.finish_reason, "stop_string": c.stop_string}
        if close is not None:
            row["forced_close"] = c.stop_string != close
        return row

    async def sequential(self, role: str, stop: Sequence[str], max_tokens: int, block: int, suffix: str = "",
                         close: str | None = None, capped: bool = True) -> Completion:
        """One request on the critical path; its text (after `suffix`) is appended to the trace.

        `capped`: its max_tokens is also held to what is left of `max_total_tokens` (main requests;
        summaries are not, so a forked block is always closed).
        """
        rem = self.remaining()
        if rem is not None and capped:
            max_tokens = max(1, min(max_tokens, rem))
        req = self.request(suffix, stop, max_tokens, role, block)
        res = await self.engine.agenerate(req)
        c = res.completions[0]
        self.requests.append(self._usage(req, res, role, block, 0, close))
        self.total += c.tokens
        self.critical += c.tokens
        self.text += suffix + c.text
        return c

    async def branches(self, role: str, suffixes: Sequence[str], stops: Sequence[Sequence[str]], max_tokens: int,
                       closes: Sequence[str], temperature: float | None = None) -> list[Completion]:
        """One block's branch requests, issued at once; the trace is left as it was (the caller joins)."""
        block = self.blocks
        reqs = [self.request(s, st, max_tokens, role, block, i, temperature)
                for i, (s, st) in enumerate(zip(suffixes, stops))]
        results = await asyncio.gather(*(self.engine.agenerate(r) for r in reqs))
        for i, (req, res) in enumerate(zip(reqs, results)):
            self.requests.append(self._usage(req, res, role, block, i, closes[i]))
        tokens = [res.completions[0].tokens for res in results]
        self.total += sum(tokens)
        self.critical += max(tokens, default=0)
        self.blocks += 1
        return [res.completions[0] for res in results]

    def insert(self, text: str) -> None:
        """Text the decoder writes itself (tags, forced closes): part of the trace, no tokens generated."""
        self.text += text

    # ---- the result -------------------------------------------------------------------------
    def result(self, stop_reason: str) -> DecodeResult:
        return DecodeResult(text=self.text, format=self.method, requests=self.requests, total_tokens=self.total,
                            critical_path_tokens=self.critical, wall_s=time.perf_counter() - self.t0,
                            blocks=self.blocks, stop_reason=stop_reason,
                            validation_errors=validate(self.method, self.text))


def ended_by(c: Completion) -> str:
    """eos | length | stop (a stop string): how a completion ended."""
    if c.stop_string is not None:
        return "stop"
    return "length" if c.finish_reason == "length" else "eos"


def validate(fmt: str, text: str) -> list[str]:
    """The format validator's problems with `text` (an empty list when it is valid or no validator exists)."""
    try:
        from reasoning.formats import get_format

        module = get_format(fmt)
    except (ImportError, AttributeError, KeyError, ValueError):
        return []
    try:
        out = module.validate(text)
    except Exception as e:  # noqa: BLE001 - a validator that rejects by raising: its message is the problem
        return [f"{type(e).__name__}: {e}"]
    if out is None or out is True:
        return []
    if out is False:
        return ["invalid"]
    if isinstance(out, str):
        return [out] if out else []
    if hasattr(out, "errors"):
        out = out.errors
    return [str(e) for e in out]
