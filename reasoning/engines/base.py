"""The Engine contract: one interface that hf, vllm and openai implement.

An engine turns `Request`s into `Result`s (or `Failure`s). `iter_results` yields them in
completion order, which is what lets the generation store flush each one as soon as it is
done; `generate` is the ordered, blocking form; `agenerate` is the awaitable form that
decoders use to issue many dependent requests at once.
"""
from __future__ import annotations

import asyncio
import functools
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from reasoning.engines.special_tokens import decode_with_specials
from reasoning.types import Failure, InputError, Request, Result


def looks_like_local_path(model: str) -> bool:
    """A Hub id is `name` or `org/name`; anything else is meant as a path."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model


_TRUE = ("1", "ON", "YES", "TRUE")
HUB_PROBE_TIMEOUT_S = 2.0


def hub_offline() -> bool:
    """Whether the Hub is switched off ($HF_HUB_OFFLINE, or transformers' $TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or any(
        os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


@functools.lru_cache(maxsize=8)
def hub_reachable(endpoint: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether anything answers at the Hub's address within `timeout` seconds (any HTTP status counts:
    only a failed connection, or none within the time, is "unreachable"). One HEAD request, through
    the environment's proxies, once per process; a name lookup that hangs counts as unreachable too."""
    import urllib.error
    import urllib.request

    answer: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            answer.append(True)
        except urllib.error.HTTPError:
            answer.append(True)  # it answered, with an error status: the Hub is there
        except (OSError, ValueError):
            answer.append(False)

    t = threading.Thread(target=probe, name="parafuse-hub-probe", daemon=True)
    t.start()
    t.join(timeout)
    return bool(answer and answer[0])


def in_hub_cache(model: str) -> bool:
    """Whether the Hub id `model` has a model (config.json, or a PEFT adapter) in the local Hub cache."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "adapter_config.json"):
        try:
            if isinstance(try_to_load_from_cache(model, filename), str):
                return True
        except ValueError:  # not a valid Hub id (HFValidationError): nothing of it can be cached
            return False
    return False


def check_hub_model(model: str) -> None:
    """A Hub id that cannot be loaded (the Hub is off or unreachable, and the id is not in the local
    cache) fails now, in a second, instead of after transformers' or vLLM's retries."""
    if in_hub_cache(model):
        return
    if hub_offline():
        why, unset = "HF_HUB_OFFLINE is set", ", or unset HF_HUB_OFFLINE to download it"
    elif not hub_reachable(hub_endpoint()):
        why, unset = f"the Hub ({hub_endpoint()}) cannot be reached", ", or check the network (HF_ENDPOINT, proxies)"
    else:
        return
    from huggingface_hub import constants

    raise InputError(
        f"model {model!r} is neither a local folder nor in the Hub cache ({constants.HF_HUB_CACHE}), and {why}. "
        f"Download it where the Hub is reachable (`hf download {model}`, into that cache or with --local-dir DIR), "
        f"or pass a local model folder (e.g. one made by `parafuse model tiny DIR`){unset}."
    )


def check_model(model: str, hub: bool = True) -> str:
    """Fail early, and clearly, on a model path that does not exist.

    Hub ids (`org/name`) pass through when they can be loaded: from the local Hub cache, or from the
    Hub when it is on and reachable; otherwise they fail at once (`check_hub_model`). `hub=False`
    checks local paths only (naming a model to key stored results by needs no Hub).
    """
    if not model:
        raise InputError("--model is required: a local model directory or a Hub id like Qwen/Qwen3-0.6B")
    p = Path(model).expanduser()
    if p.exists():
        if p.is_dir() and not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise InputError(f"model directory {model} has no config.json (nor a PEFT adapter_config.json); is it "
                             "a saved transformers model?")
        return str(p)
    if looks_like_local_path(model):
        raise InputError(
            f"model path {model} does not exist; pass a local model directory "
            "(e.g. one made by `parafuse model tiny DIR`) or a Hub id like Qwen/Qwen3-0.6B"
        )
    if hub:
        check_hub_model(model)
    return model


class Engine(ABC):
    """Base class of all engines. Subclasses implement `iter_results` (and `describe`)."""

    kind: str = "base"

    def __init__(self, model: str, tokenizer: str | None = None):
        self.model = model
        self.tokenizer_name = tokenizer or model
        self._tokenizer = None
        self._alock = threading.Lock()
        self.cancel_event: threading.Event | None = None  # set while the running `agenerate` call is cancelled

    # ---- tokenizer and chat rendering -------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
            except OSError as e:
                raise InputError(
                    f"cannot load a tokenizer from {self.tokenizer_name!r}: {e}. "
                    "Pass --tokenizer with a local tokenizer directory or Hub id."
                ) from None
        return self._tokenizer

    def render_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The text the model sees for `messages` (its chat template).

        To continue a partly written assistant turn, append the partial text to
        `render_chat(history)` and send it as a raw-text `prompt`.
        """
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def prompt_text(self, request: Request) -> str:
        return request.prompt if request.prompt is not None else self.render_chat(request.messages)

    # ---- token-exact cutting (ParaThinker's first-finish cuts paths to a token count) -------------
    def decode_ids(self, ids: Sequence[int]) -> str:
        """The text of sampled token ids, tags kept (a completion's `token_ids` cut to a length).

        Through the engine's tag keeper where it has one, so a cut text drops eos and chat markers
        exactly as the engine's own completions do."""
        keeper = getattr(self, "tag_keeper", None)
        if keeper is not None:
            return keeper.decode(list(ids))
        return decode_with_specials(self.tokenizer, list(ids))

    def truncate(self, text: str, n_tokens: int) -> str:
        """The longest prefix of `text` that holds its first `n_tokens` tokens under this engine's tokenizer.

        For completions an engine returned without token ids (an old store row, a server that gave
        none): the text is re-tokenized, which is what the model would read back. A fast tokenizer
        cuts at the character offset where token `n_tokens` ends, so the result is always a prefix of
        `text`; a slow one decodes the first `n_tokens` ids.
        """
        if n_tokens <= 0:
            return ""
        tok = self.tokenizer
        if getattr(tok, "is_fast", False):
            spans = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            return text if n_tokens >= len(spans) else text[:spans[n_tokens - 1][1]]
        ids = tok.encode(text, add_special_tokens=False)
        if n_tokens >= len(ids):
            return text
        return decode_with_specials(tok, ids[:n_tokens])  # no spaces around a tag, or the cut is no prefix

    def count_tokens(self, text: str) -> int:
        """Tokens `text` encodes to, no special tokens added (how a decode's critical path is counted)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ---- generation ---------------------------------------------------------------------
    @abstractmethod
    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        """Yield (index into `requests`, Result or Failure) as each request finishes."""

    @staticmethod
    def one_at_a_time(requests: Sequence[Request], answer) -> Iterator[tuple[int, Result | Failure]]:
        """`iter_results` for an engine that answers requests one by one with `answer(request)`: an
        exception is that request's recorded Failure (never dropped); an InputError stops the run."""
        for i, request in enumerate(requests):
            try:
                yield i, answer(request)
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - recorded as a failure, never dropped
                yield i, Failure(error=f"{type(e).__name__}: {e}", request_id=request.id)

    def generate(self, requests: Sequence[Request]) -> list[Result | Failure]:
        out: list[Result | Failure | None] = [None] * len(requests)
        for i, r in self.iter_results(requests):
            out[i] = r
        return out  # type: ignore[return-value]

    def generate_one(self, request: Request) -> Result:
        r = self.generate([request])[0]
        if isinstance(r, Failure):
            raise RuntimeError(f"{self.kind} engine failed on request {request.id!r}: {r.error}")
        return r

    async def agenerate(self, request: Request) -> Result:
        """Awaitable generation of one request.

        In-process engines run one call at a time in a worker thread; the openai engine
        overrides this with true concurrency.

        A worker thread cannot be killed, and on Ctrl-C asyncio waits for every call already
        handed to its threads. So a cancelled call that has not started yet returns at once,
        and the one running sees `cancel_event` set (the hf engine stops generating on it).
        """
        cancelled = threading.Event()

        def run():
            with self._alock:
                if cancelled.is_set():
                    raise asyncio.CancelledError
                self.cancel_event = cancelled
                try:
                    return self.generate_one(request)
                finally:
                    self.cancel_event = None

        try:
            return await asyncio.to_thread(run)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def describe(self) -> dict[str, Any]:
        """Engine settings for provenance. Never includes secrets."""
        return {"engine": self.kind, "model": self.model}

    async def check_ready(self) -> None:  # noqa: B027 - in-process engines are ready once built
        """Fail fast, with a clear error, when the engine cannot answer (the openai engine asks its servers)."""

    async def aclose(self) -> None:  # noqa: B027 - engines without per-event-loop resources need not override it
        """Release what belongs to the running event loop (the openai engine's HTTP session)."""

    def close(self) -> None:  # noqa: B027 - engines without resources need not override it
        """Release the model, worker processes or HTTP sessions."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
