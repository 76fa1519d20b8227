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

Token counts. `total_tokens` is what the engine generated (the compute spent). The critical path
has one definition in the project, `reasoning.formats.metrics.trace_metrics` (ThreadWeaver's
L_crit, every response token counted, the headers and closes a decoder inserts included, as
its reward counts them): a decode's `critical_path_tokens` and `response_tokens` are that
function applied to the response text, counted with the engine's tokenizer
(`Engine.count_tokens`). The sum over requests that counts generated tokens only (sequential
requests plus the longest branch of each block) is kept as `generated_critical_path_tokens`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reasoning.engines.base import Engine
from reasoning.inputs import derive_seed
from reasoning.sampling import Sampling, sampling
from reasoning.settings import from_dict, nested, setting, to_dict
from reasoning.types import Completion, InputError, Request

# A decoder's sampling block also answers to the flat names older configs and flags used.
SAMPLING_ALIASES = {"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_tokens", "seed": "seed"}


def sampling_block(help: str, temperature: float, top_p: float, max_tokens: int = 1024, seed: int | None = 0):
    """A decoder config's `sampling` field: unprefixed flags (`--temperature`), the method's defaults."""
    return nested(sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed), help, prefix="",
                  aliases=SAMPLING_ALIASES)

ROLES = ("main", "path", "thread", "summary", "join")
BRANCH_ROLES = ("path", "thread")
GENERATED, INSERTED = "generated", "inserted"


@dataclass
class DecoderConfig:
    """Settings every decoder has. Each method's config adds its own phase caps and switches."""

    # Decoder settings that must be positive integers when set (an explicit list, not a name pattern).
    POSITIVE: ClassVar[tuple[str, ...]] = ("max_total_tokens",)

    sampling: Sampling = sampling_block("sampling of every request; max_tokens caps each main (sequential) request, "
                                        "seed is the base seed each request derives its own from (with the decode "
                                        "key, role, block and branch; none: unseeded)", temperature=1.0, top_p=1.0)
    max_total_tokens: int | None = setting(None, "response-length cap: a main request is cut to what is left of it, "
                                                 "and none is issued once this many tokens were generated in all (a "
                                                 "forked block is still summarized); none = no cap")
    logprobs: bool = setting(False, "ask every request for the sampled tokens' log-probs (training rollouts); the "
                                    "segments of the result carry them")
    force_open: bool = setting(False, "test/bench aid: the decoder itself opens the first parallel block instead of "
                                      "waiting for the model to, so a model that never emits the tags still forks")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def check(self) -> None:
        for name in self.POSITIVE + DecoderConfig.POSITIVE:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"decoder setting {name} must be a positive integer, got {value!r}")
        self.sampling.params()  # range checks

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecoderConfig:
        """From a plain dict: nested `sampling: {...}` or the flat names (`temperature`, `max_tokens`)."""
        return from_dict(cls, data, cls.__name__)


@dataclass
class Segment:
    """One piece of a decoded trace, in order: text the model generated, or text the decoder inserted.

    A generated segment holds the sampled `token_ids` (and `logprobs` when they were asked
    for) of the request it came from (`request`, an index into `DecodeResult.requests`). When
    the model stopped on a tag the decoder then writes, that tag is part of the generated
    segment (the model sampled it). `stop_string`: the sampled ids end with this stop string,
    which the trace does not hold (the decoder wrote another closing tag instead).
    """

    text: str
    source: str  # "generated" | "inserted"
    request: int | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    stop_string: str | None = None


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
    critical_path_tokens: int = 0  # the response's trace metrics (prompt-inserted tags included); see the module doc
    wall_s: float = 0.0
    blocks: int = 0  # parallel blocks that were forked
    stop_reason: str = ""  # why decoding ended: eos | length | block_limit | iteration_cap | token_budget | ...
    validation_errors: list[str] = field(default_factory=list)  # the format validator's complaints
    segments: list[Segment] = field(default_factory=list)  # the trace piece by piece: "".join(texts) == text
    # Of the response text under `trace_metrics` (see the module docstring): L_total, tokens inside blocks.
    response_tokens: int = 0
    parallel_tokens: int = 0
    generated_critical_path_tokens: int = 0  # generated tokens only: sequential requests + longest branches
    # how the response was counted: engine (its tokenizer) | approx (no tokenizer: `approx_tokens`) |
    # requests (the text does not parse in its format: the requests' generated tokens plus the inserted text,
    # all of it on the critical path)
    token_counter: str = ""

    @property
    def prompt_tokens(self) -> int:
        return sum(r["prompt_tokens"] for r in self.requests)

    @property
    def speedup(self) -> float:
        """response / critical-path tokens: how much longer the response is than its token latency."""
        return self.response_tokens / self.critical_path_tokens if self.critical_path_tokens else 1.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prompt_tokens"] = self.prompt_tokens
        return d


class Decoding:
    """The running state of one decode: the text so far, its segments, and the usage of each request."""

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
        self.segments: list[Segment] = []
        self.requests: list[dict[str, Any]] = []
        self.total = 0
        self.critical = 0
        self.blocks = 0
        self.issued: dict[str, int] = {}  # request places already used: a repeat gets its own id and seed
        self.t0 = time.perf_counter()

    # ---- requests ---------------------------------------------------------------------------
    def remaining(self) -> int | None:
        cap = self.cfg.max_total_tokens
        return None if cap is None else cap - self.total

    def request(self, suffix: str, stop: Sequence[str], max_tokens: int, role: str, block: int, index: int = 0,
                temperature: float | None = None) -> Request:
        """A raw-text request continuing the trace (plus `suffix`) with a seed of its own."""
        where = f"{self.key}/{role}/{block}/{index}"
        # A decoder may come back to the same place (ThreadWeaver continuing past an outline it could not
        # fork); that request must never be the identical one again, so a repeat is numbered.
        repeat = self.issued.get(where, 0)
        self.issued[where] = repeat + 1
        if repeat:
            where += f"/again{repeat}"
        base = self.cfg.sampling.seed
        seed = None if base is None else derive_seed(base, where)
        params = self.cfg.sampling.params(max_tokens=max_tokens, stop=tuple(stop), seed=seed,
                                          logprobs=self.cfg.logprobs,
                                          **({} if temperature is None else {"temperature": temperature}))
        # key_extra keeps otherwise identical unseeded branch requests apart in a generation store.
        return Request(prompt=self.base + self.text + suffix, params=params, id=where,
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
        """One request on the critical path; `suffix` (inserted) and its text (generated) join the trace.

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
        self.insert(suffix)
        self.generated(c, len(self.requests) - 1)
        return c

    async def branches(self, role: str, suffixes: Sequence[str], stops: Sequence[Sequence[str]], max_tokens: int,
                       closes: Sequence[str], temperature: float | None = None) -> list[Branch]:
        """One block's branch requests, issued at once; the trace is left as it was (the caller joins)."""
        block = self.blocks
        reqs = [self.request(s, st, max_tokens, role, block, i, temperature)
                for i, (s, st) in enumerate(zip(suffixes, stops))]
        results = await asyncio.gather(*(self.engine.agenerate(r) for r in reqs))
        out = []
        for i, (req, res) in enumerate(zip(reqs, results)):
            self.requests.append(self._usage(req, res, role, block, i, closes[i]))
            out.append(Branch(res.completions[0], len(self.requests) - 1))
        tokens = [res.completions[0].tokens for res in results]
        self.total += sum(tokens)
        self.critical += max(tokens, default=0)
        self.blocks += 1
        return out

    # ---- the trace, segment by segment ------------------------------------------------------------
    def generated(self, completion: Completion, request: int) -> None:
        """Text the model wrote (a completion of request number `request`), appended to the trace."""
        seg = Segment(completion.text, GENERATED, request, completion.token_ids, completion.logprobs)
        # A stop string the engine cut from the text is still in the sampled ids: it is claimed by the
        # next insert when the decoder writes the same tag, else recorded on the segment.
        if completion.stop_string is not None and not completion.text.endswith(completion.stop_string):
            seg.stop_string = completion.stop_string
        if seg.text or seg.token_ids:
            self.segments.append(seg)
        self.text += completion.text

    def insert(self, text: str) -> None:
        """Text the decoder writes itself (tags, forced closes): part of the trace, no tokens generated."""
        if not text:
            return
        last = self.segments[-1] if self.segments else None
        if last is not None and last.source == GENERATED and last.stop_string and text.startswith(last.stop_string):
            # The model sampled this tag and stopped on it: it belongs to the generated segment.
            last.text += last.stop_string
            self.text += last.stop_string
            text, last.stop_string = text[len(last.stop_string):], None
            if not text:
                return
        self.segments.append(Segment(text, INSERTED))
        self.text += text

    # ---- the result -------------------------------------------------------------------------
    def result(self, stop_reason: str) -> DecodeResult:
        response, critical, parallel, counter = response_metrics(self)
        return DecodeResult(text=self.text, format=self.method, requests=self.requests, total_tokens=self.total,
                            critical_path_tokens=critical, wall_s=time.perf_counter() - self.t0,
                            blocks=self.blocks, stop_reason=stop_reason,
                            validation_errors=validate(self.method, self.text), segments=self.segments,
                            response_tokens=response, parallel_tokens=parallel,
                            generated_critical_path_tokens=self.critical, token_counter=counter)


def token_counter(engine: Engine):
    """(count, name): the engine's tokenizer as a text -> tokens counter, else `approx_tokens` ("approx")."""
    from reasoning.formats.metrics import approx_tokens

    try:
        engine.count_tokens("")  # a server engine without a local tokenizer cannot count
    except (InputError, OSError, AttributeError, ValueError, TypeError):
        return approx_tokens, "approx"
    return engine.count_tokens, "engine"


def response_metrics(decoding: Decoding) -> tuple[int, int, int, str]:
    """(response tokens, critical-path tokens, tokens inside blocks, counter name) of a decode's text.

    `trace_metrics` on the text parsed in its format; a text that does not parse (a format error the
    validator also reports) falls back to the requests' generated tokens plus the inserted text, all
    of it counted on the critical path.
    """
    from reasoning.formats.convert import parse_any
    from reasoning.formats.metrics import trace_metrics
    from reasoning.formats.trace import FormatError

    count, name = token_counter(decoding.engine)
    try:
        m = trace_metrics(parse_any(decoding.text, decoding.method), count)
    except FormatError:
        inserted = sum(count(seg.text) for seg in decoding.segments if seg.source == INSERTED)
        branches = sum(r["completion_tokens"] for r in decoding.requests if r["role"] in BRANCH_ROLES)
        return decoding.total + inserted, decoding.critical + inserted, branches, "requests"
    return m.total_tokens, m.critical_path_tokens, m.parallel_tokens, name


@dataclass
class Branch:
    """One branch of a block: its completion and the number of the request that produced it."""

    completion: Completion
    request: int

    @property
    def text(self) -> str:
        return self.completion.text

    @property
    def stop_string(self) -> str | None:
        return self.completion.stop_string

    @property
    def tokens(self) -> int:
        return self.completion.tokens


def ended_by(c: Completion) -> str:
    """eos | length | stop (a stop string): how a completion ended."""
    if c.stop_string is not None:
        return "stop"
    return "length" if c.finish_reason == "length" else "eos"


def validate(fmt: str, text: str) -> list[str]:
    """The format validator's problems with `text` (empty when it is valid).

    Parallel-R1's grammar ends a response with a `Final Answer:` line (the paper's prompt asks for
    one); a response that answers in `\\boxed{}` instead, as a boxed-answer prompt asks, is not
    counted as a format problem for lacking that line.
    """
    from reasoning.methods import get_method

    module = get_method(fmt).format
    if fmt == "parallel_r1" and "\\boxed{" in text:
        return [str(e) for e in module.validate(text, **module.STRUCTURE_ONLY)]
    return [str(e) for e in module.validate(text)]
