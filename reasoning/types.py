"""The data that crosses the Engine contract: requests, sampling parameters, results.

Every engine takes `Request`s and gives back `Result`s. Both are plain dataclasses that turn
into JSON-ready dicts (`to_dict`) so the generation store, eval and synthesis can keep them
as flat records.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


class InputError(ValueError):
    """Bad input from the user: the message says what is wrong and what to do."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample completions for one request (the same meaning on every engine)."""

    n: int = field(default=1, metadata={"help": "Completions to sample for the request."})
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature; 0 means greedy."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    max_tokens: int = field(default=256, metadata={"help": "Cap on generated tokens per completion."})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "Stop strings; the earliest match ends a completion."})
    include_stop_str_in_output: bool = field(
        default=False, metadata={"help": "Keep the matched stop string at the end of the text."}
    )
    seed: int | None = field(
        default=None, metadata={"help": "Seed for this request: same seed, same engine, same output."}
    )
    min_tokens: int = field(default=0, metadata={"help": "Generate at least this many tokens before EOS may end."})
    ignore_eos: bool = field(
        default=False, metadata={"help": "Keep generating past EOS (fixed-length runs for benchmarks)."}
    )
    logprobs: bool = field(
        default=False, metadata={"help": "Return each sampled token's log-probability under the model (before "
                                         "temperature and top_p), for training."}
    )

    def __post_init__(self):
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop or ()))
        if self.n < 1:
            raise InputError(f"sampling param n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise InputError(f"sampling param max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise InputError(f"sampling param temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"sampling param top_p must be in (0, 1], got {self.top_p}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        if not self.logprobs:  # absent unless asked for: store keys written before the field existed stay valid
            del d["logprobs"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown sampling params {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class Request:
    """One prompt: chat `messages`, or raw `prompt` text to continue as-is.

    Raw text is how a partly written assistant turn is continued: render the chat template
    (`Engine.render_chat`), append the partial turn, and send the result as `prompt`.
    """

    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    id: str | None = None
    # Extra key material (e.g. a template name and hash) that makes otherwise equal prompts distinct.
    key_extra: str = ""

    def __post_init__(self):
        if (self.messages is None) == (self.prompt is None):
            raise InputError("a request needs exactly one of `messages` or `prompt`")
        if self.messages is not None:
            msgs = tuple(dict(m) for m in self.messages)
            for i, m in enumerate(msgs):
                if "role" not in m or "content" not in m:
                    raise InputError(f"message {i} needs `role` and `content` fields, got {sorted(m)}")
            object.__setattr__(self, "messages", msgs)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id}
        if self.messages is not None:
            d["messages"] = [dict(m) for m in self.messages]
        else:
            d["prompt"] = self.prompt
        d["params"] = self.params.to_dict()
        if self.key_extra:
            d["key_extra"] = self.key_extra
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Request:
        params = d.get("params") or {}
        return cls(
            messages=d.get("messages"),
            prompt=d.get("prompt"),
            params=SamplingParams.from_dict(params) if isinstance(params, dict) else params,
            id=d.get("id"),
            key_extra=d.get("key_extra", ""),
        )


@dataclass
class Completion:
    """One sampled continuation."""

    text: str
    tokens: int  # generated tokens for this completion
    finish_reason: str  # "stop" (EOS or a stop string) | "length" | whatever the server said
    stop_string: str | None = None  # which stop string ended it, when one did
    # The sampled token ids, in order: the tokens of `text`, then those of a stop string cut from it, then
    # EOS when it ended the completion. None when the engine gave none (a store row written before they were kept).
    token_ids: list[int] | None = None
    # Per token of `token_ids`, its log-probability under the model; only when the request asked for them.
    logprobs: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in ("token_ids", "logprobs"):
            if d[name] is None:
                del d[name]
        return d


@dataclass
class Result:
    """What an engine returns for one request: all n completions plus usage."""

    completions: list[Completion]
    prompt_tokens: int
    latency_s: float
    engine: str = ""
    model: str = ""
    request_id: str | None = None
    attempts: int = 1

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.completions)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "engine": self.engine,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": round(self.latency_s, 6),
            "attempts": self.attempts,
            "completions": [c.to_dict() for c in self.completions],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        return cls(
            completions=[Completion(**c) for c in d["completions"]],  # rows without ids/logprobs load as None
            prompt_tokens=d["prompt_tokens"],
            latency_s=d["latency_s"],
            engine=d.get("engine", ""),
            model=d.get("model", ""),
            request_id=d.get("request_id"),
            attempts=d.get("attempts", 1),
        )


@dataclass
class Failure:
    """A request that did not produce a result; the store records it and a rerun retries it."""

    error: str
    attempts: int = 1
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
