"""`openai` engine: any OpenAI-compatible server (vLLM, SGLang, transformers serve, hosted APIs).

Async with a bound on requests in flight; retries with exponential back-off and full jitter
on 429, 5xx, dropped connections, timeouts and unreadable bodies; spreads requests over
several base URLs; emulates `n` with parallel requests when a server ignores it.

Tags that are special tokens (the released checkpoints' tokenizers hold them so): a server
decodes with `skip_special_tokens=True` unless told otherwise, which deletes the tags from
the text, so stops on them never fire and decoders never fork. When the local tokenizer
(the model folder, or `--tokenizer`) holds format tags as special tokens, `keep_tags`
decides: `auto` sends vLLM's `skip_special_tokens: false` and `spaces_between_special_tokens:
false` to vLLM servers and refuses a server that is not vLLM (it may reject or ignore
unknown parameters); `send` sends them to any server (SGLang takes them too); `off` sends
nothing and warns once that the tags will be missing. Without a local tokenizer the engine
cannot tell, and sends nothing.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from reasoning.engines.base import Engine
from reasoning.engines.special_tokens import TagKeeper
from reasoning.engines.stops import apply_stop, strip_trailing_stop
from reasoning.types import Completion, Failure, InputError, Request, Result

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# The OpenAI API takes at most 4 stop strings (vLLM's server rejects more with HTTP 400). Past
# the limit the server gets the first 4 and the rest are cut here, after generation.
MAX_SERVER_STOPS = 4
KEEP_TAGS = ("auto", "send", "off")
# vLLM's request parameters that keep special tokens, and their text unspaced, in the output.
KEEP_SPECIAL_PARAMS = {"skip_special_tokens": False, "spaces_between_special_tokens": False}


class RetryableError(Exception):
    """A transient failure: rate limit, server error, dropped connection, timeout, bad body."""

    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


class RequestRejected(Exception):
    """The server refused the request itself (4xx other than 429): retrying will not help."""


@dataclass
class _Server:
    url: str
    in_flight: int = 0
    is_vllm: bool | None = None  # probed once (GET /version); vLLM can return exact token ids


def choice_logprobs(choice: dict) -> list[float] | None:
    """The sampled tokens' log-probs of one choice: `logprobs.token_logprobs` (completions API) or
    `logprobs.content[].logprob` (chat API); None when the server sent none."""
    block = choice.get("logprobs")
    if not isinstance(block, dict):
        return None
    if block.get("token_logprobs") is not None:
        return [float(x) if x is not None else float("nan") for x in block["token_logprobs"]]
    if block.get("content") is not None:
        return [float(item.get("logprob", float("nan"))) for item in block["content"]]
    return None


def normalize_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"--base-url {url!r} must start with http:// or https://")
    return url if url.endswith("/v1") else url + "/v1"


class OpenAIEngine(Engine):
    kind = "openai"

    def __init__(self, model: str, base_url: str | Sequence[str] | None = None, tokenizer: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", max_concurrency: int = 64, timeout: float = 300.0,
                 max_retries: int = 6, backoff_base: float = 0.5, backoff_max: float = 30.0,
                 n_mode: str = "auto", extra_body: dict[str, Any] | None = None, keep_tags: str | None = "auto",
                 **_: Any):
        if not base_url:
            raise InputError("the openai engine needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        urls = [u for url in urls for u in url.split(",") if u.strip()]
        # auto: ask for n at once and fill whatever the server did not return with single requests;
        # parallel: always n single requests.
        if n_mode not in ("auto", "parallel"):
            raise InputError(f"n_mode must be auto or parallel, got {n_mode!r}")
        keep_tags = keep_tags or "auto"
        if keep_tags not in KEEP_TAGS:
            raise InputError(f"--keep-tags must be one of {', '.join(KEEP_TAGS)}, got {keep_tags!r}")
        # Render chat locally only when asked for raw text; a Hub id here is fine for users with the Hub.
        local_tokenizer = tokenizer or (model if Path(model).expanduser().exists() else None)
        super().__init__(model, local_tokenizer)
        self.tokenizer_name = local_tokenizer  # not the base's fallback to `model`: only the server knows it
        self.servers = [_Server(normalize_base_url(u)) for u in urls]
        self.api_key_env = api_key_env
        self.max_concurrency, self.timeout = max_concurrency, timeout
        self.max_retries, self.backoff_base, self.backoff_max = max_retries, backoff_base, backoff_max
        self.n_mode, self.extra_body = n_mode, dict(extra_body or {})
        self.keep_tags = keep_tags
        self._keeper: TagKeeper | None = None
        self._tag_params: dict[str, Any] | None = None  # decided on the first request (needs the servers' kind)
        self._warned = False
        self._sessions: dict[int, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession, asyncio.Semaphore]] = {}
        self.calls = 0  # HTTP attempts made, for tests and token summaries

    @property
    def tokenizer(self):
        if self.tokenizer_name is None:
            raise InputError(
                f"the openai engine needs a local tokenizer to render raw-text prompts for {self.model!r}; "
                "pass --tokenizer DIR_OR_HUB_ID"
            )
        return super().tokenizer

    def describe(self) -> dict[str, Any]:
        return {"engine": self.kind, "model": self.model, "base_url": [s.url for s in self.servers],
                "max_concurrency": self.max_concurrency, "timeout": self.timeout, "max_retries": self.max_retries,
                "keep_tags": self.keep_tags}

    # ---- HTTP -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _state(self):
        loop = asyncio.get_running_loop()
        st = self._sessions.get(id(loop))
        if st is None or st[0] is not loop:
            conn = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            session = aiohttp.ClientSession(connector=conn, headers=self._headers(),
                                            timeout=aiohttp.ClientTimeout(total=self.timeout))
            st = (loop, session, asyncio.Semaphore(self.max_concurrency), asyncio.Lock())
            self._sessions[id(loop)] = st
        return st

    def _pick(self, avoid: _Server | None) -> _Server:
        choices = [s for s in self.servers if s is not avoid] or self.servers
        return min(choices, key=lambda s: (s.in_flight, random.random()))

    async def _post_once(self, server: _Server, path: str, body: dict) -> dict:
        _, session, _, _ = self._state()
        self.calls += 1
        try:
            async with session.post(server.url + path, json=body) as resp:
                raw = await resp.read()
                if resp.status in RETRY_STATUS or resp.status >= 500:
                    ra = resp.headers.get("Retry-After")
                    raise RetryableError(f"HTTP {resp.status} from {server.url}: {raw[:200]!r}",
                                         float(ra) if ra and ra.replace(".", "", 1).isdigit() else None)
                if resp.status >= 400:
                    raise RequestRejected(f"HTTP {resp.status} from {server.url}{path}: "
                                          f"{raw[:500].decode('utf-8', 'replace')}")
        # ClientResponseError here means a reply that is not valid HTTP.
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                aiohttp.ClientResponseError) as e:
            what = "timed out" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            raise RetryableError(f"{server.url}{path}: {what}") from None
        try:
            data = json.loads(raw)
            data["choices"]
        except (ValueError, KeyError, TypeError):
            raise RetryableError(f"unreadable response from {server.url}{path}: {raw[:120]!r}") from None
        return data

    async def _post(self, path: str, body: dict) -> tuple[dict, int, _Server]:
        """POST with retries; returns (json, attempts, server that answered)."""
        last: _Server | None = None
        for attempt in range(1, self.max_retries + 2):
            server = self._pick(last)
            server.in_flight += 1
            try:
                return await self._post_once(server, path, body), attempt, server
            except RetryableError as e:
                if attempt > self.max_retries:
                    raise RetryableError(
                        f"gave up after {attempt} attempts; last error: {e}. "
                        f"Is the server up at {', '.join(s.url for s in self.servers)}? Check --base-url."
                    ) from None
                delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
                await asyncio.sleep(max(delay, e.retry_after or 0.0))
                last = server
            finally:
                server.in_flight -= 1
        raise AssertionError("unreachable")

    # ---- one request ------------------------------------------------------------------------
    def _body(self, req: Request, n: int, seed: int | None) -> tuple[str, dict]:
        p = req.params
        body: dict[str, Any] = {"model": self.model, "n": n, "temperature": p.temperature, "top_p": p.top_p,
                                "max_tokens": p.max_tokens}
        if p.stop:
            body["stop"] = list(p.stop)
        if seed is not None:
            body["seed"] = seed
        if p.min_tokens:
            body["min_tokens"] = p.min_tokens  # vLLM/SGLang extensions: sent only when asked for
        if p.ignore_eos:
            body["ignore_eos"] = True
        if p.logprobs:  # the sampled token's log-prob only: 0 alternatives (completions), no top list (chat)
            body["logprobs"] = True if req.messages is not None else 0
        body.update(self.extra_body)
        if req.messages is not None:
            body["messages"] = [dict(m) for m in req.messages]
            return "/chat/completions", body
        body["prompt"] = req.prompt
        return "/completions", body

    def _completion(self, choice: dict, p, count_tokens) -> Completion:
        text = choice.get("text")
        if text is None:
            text = (choice.get("message") or {}).get("content") or ""
        if self._tag_params and self._keeper is not None:
            # asked to keep special tokens, the server keeps chat markers and pad too: drop those, keep the tags
            text = self._keeper.clean(text)
        stop = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None
        text = strip_trailing_stop(text, stop, p.include_stop_str_in_output)
        if stop is None:  # the server did not say; hold it to the stop strings ourselves
            text, stop = apply_stop(text, p.stop, p.include_stop_str_in_output)
        elif len(p.stop) > MAX_SERVER_STOPS:  # a stop string the server was not sent may come earlier
            body = text[: -len(stop)] if p.include_stop_str_in_output and text.endswith(stop) else text
            cut, earlier = apply_stop(body, p.stop, p.include_stop_str_in_output)
            if earlier is not None:
                text, stop = cut, earlier
        finish = "stop" if stop else (choice.get("finish_reason") or "stop")
        ids = choice.get("token_ids")
        return Completion(text=text, tokens=len(ids) if ids is not None else count_tokens(text),
                          finish_reason=finish, stop_string=stop, token_ids=ids, logprobs=choice_logprobs(choice))

    async def _request(self, req: Request, n: int, seed: int | None) -> tuple[list[Completion], int, int, _Server]:
        path, body = self._body(req, n, seed)
        if len(req.params.stop) > MAX_SERVER_STOPS:
            body["stop"] = body["stop"][:MAX_SERVER_STOPS]
        if await self._all_vllm():
            body.setdefault("return_token_ids", True)  # the sampled ids, and exact per-completion token counts
        for k, v in (await self.tag_params()).items():
            body.setdefault(k, v)  # a value the user set in extra_body wins
        data, attempts, server = await self._post(path, body)
        usage = data.get("usage") or {}
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        total = usage.get("completion_tokens")
        if len(choices) == 1 and total is not None:
            count = lambda _text: total  # noqa: E731 - usage is exact for one choice
        elif self.tokenizer_name is not None:
            count = self._count_tokens
        else:  # no tokenizer to count with: share the reported total out evenly
            count = lambda _text: round((total or 0) / max(len(choices), 1))  # noqa: E731
        comps = [self._completion(c, req.params, count) for c in choices]
        return comps, int(usage.get("prompt_tokens") or 0), attempts, server

    async def _all_vllm(self) -> bool:
        """Whether every server is vLLM (asked once per server at its /version endpoint)."""
        _, session, _, lock = self._state()
        async with lock:
            for s in self.servers:
                if s.is_vllm is None:
                    try:
                        async with session.get(s.url.removesuffix("/v1") + "/version",
                                               timeout=aiohttp.ClientTimeout(total=5)) as r:
                            s.is_vllm = r.status == 200 and "version" in await r.json(content_type=None)
                    except (TimeoutError, aiohttp.ClientError, ValueError, TypeError):
                        s.is_vllm = False
        return all(s.is_vllm for s in self.servers)

    async def tag_params(self) -> dict[str, Any]:
        """The request parameters that keep special-token tags in the servers' text (decided once).

        Empty when no format tag is a special token in the local tokenizer, when there is no
        local tokenizer to tell, or with `keep_tags="off"`. With `auto`, a server that is not
        vLLM is refused (InputError): it would delete the tags or reject the parameters.
        """
        if self._tag_params is not None:
            return self._tag_params
        params: dict[str, Any] = {}
        if self.tokenizer_name is not None and self._keeper is None:
            try:
                self._keeper = TagKeeper(self.tokenizer)
            except InputError:  # no loadable tokenizer: nothing to tell by (raw prompts will say why they fail)
                self._keeper = None
        if self._keeper is not None and self._keeper.tags_are_special:
            if self.keep_tags == "send":
                params = dict(KEEP_SPECIAL_PARAMS)
            elif self.keep_tags == "auto":
                if not await self._all_vllm():
                    others = ", ".join(s.url for s in self.servers if not s.is_vllm)
                    raise InputError(
                        f"the tokenizer of {self.model!r} holds format tags as special tokens "
                        f"({self._keeper.describe()}), and {others} is not a vLLM server, so parafuse cannot ask it "
                        "to keep them (vLLM's skip_special_tokens=false): the tags would vanish from the text and "
                        "decoders would never fork. Serve the model with vLLM (`parafuse serve MODEL`), pass "
                        "--keep-tags send if the server takes vLLM's skip_special_tokens and "
                        "spaces_between_special_tokens parameters (SGLang does), or --keep-tags off to accept "
                        "text without the tags")
                params = dict(KEEP_SPECIAL_PARAMS)
            elif not self._warned:
                self._warned = True
                print(f"parafuse: warning: openai engine with --keep-tags off: {self._keeper.describe()} in "
                      f"the tokenizer of {self.model!r}; the server will delete them from the text, and stops on "
                      "them will not fire", file=sys.stderr)
        self._tag_params = params
        return params

    def _count_tokens(self, text: str) -> int:
        try:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        except InputError:
            self.tokenizer_name = None  # do not try to load it again for every completion
            return 0

    async def agenerate(self, request: Request) -> Result:
        """One request, concurrently with others on the same event loop (bounded in flight)."""
        _, _, sem, _ = self._state()
        p, t0 = request.params, time.perf_counter()
        greedy = p.temperature == 0  # servers (vLLM) refuse n > 1 when greedy; every copy would be the same
        async with sem:
            comps, prompt_tokens, attempts, _ = await self._request(
                request, 1 if greedy else p.n if self.n_mode == "auto" else 1, p.seed)
        if greedy and comps:
            comps = comps[:1] + [dataclasses.replace(comps[0]) for _ in range(p.n - 1)]
        missing = p.n - len(comps)
        if missing > 0:  # emulate n with parallel single-completion requests, each with its own seed

            async def one(j: int):
                async with sem:
                    return await self._request(request, 1, None if p.seed is None else p.seed + j)

            extra = await asyncio.gather(*(one(j) for j in range(len(comps), p.n)))
            for c, _, a, _ in extra:
                comps.extend(c)
                attempts += a
        return Result(comps[: p.n], prompt_tokens=prompt_tokens, latency_s=time.perf_counter() - t0,
                      engine=self.kind, model=self.model, request_id=request.id, attempts=attempts)

    async def agenerate_safe(self, request: Request) -> Result | Failure:
        try:
            return await self.agenerate(request)
        except (RetryableError, RequestRejected) as e:
            return Failure(error=str(e), attempts=self.max_retries + 1, request_id=request.id)

    async def check_ready(self) -> None:
        """Fail fast, with a clear message, when no base URL answers /models, or when the model's tags are
        special tokens that the servers cannot be asked to keep (`tag_params`)."""
        _, session, _, _ = self._state()
        errors = []
        for s in self.servers:
            for attempt in range(3):
                try:
                    async with session.get(s.url + "/models", timeout=aiohttp.ClientTimeout(total=10)) as r:
                        answered = r.status < 500
                        if not answered:
                            errors.append(f"{s.url}: HTTP {r.status}")
                except (TimeoutError, aiohttp.ClientError) as e:
                    answered = False
                    errors.append(f"{s.url}: {type(e).__name__}")
                if answered:
                    await self.tag_params()  # special-token tags a server cannot keep fail here, before any work
                    return
                await asyncio.sleep(0.2 * 2 ** attempt)
        raise InputError("no OpenAI-compatible server answered at " + ", ".join(s.url for s in self.servers)
                         + f" ({errors[-1]}). Start one (e.g. `parafuse serve M`, vLLM's server set up "
                         "for this machine) or fix --base-url.")

    # ---- many requests ---------------------------------------------------------------------
    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        """Run all requests on a private event loop in a thread; yield each as it finishes."""
        out: queue.Queue = queue.Queue()
        stop = threading.Event()
        done = object()

        async def main():
            async def run(i, r):
                try:
                    res = await self.agenerate_safe(r)
                except InputError as e:  # a setup error (e.g. tags the server cannot keep) stops the run
                    out.put(e)
                    stop.set()
                    return
                except Exception as e:  # noqa: BLE001 - an unforeseen error still ends the request, never loses it
                    res = Failure(error=f"{type(e).__name__}: {e}", request_id=r.id)
                out.put((i, res))

            tasks = [asyncio.ensure_future(run(i, r)) for i, r in enumerate(requests)]
            try:
                while tasks and not stop.is_set():
                    _, pending = await asyncio.wait(tasks, timeout=0.2)
                    tasks = list(pending)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self._close_loop_session()

        def thread():
            try:
                asyncio.run(main())
            except BaseException as e:  # noqa: BLE001 - surfaced in the consumer's thread
                out.put(e)
            out.put(done)

        th = threading.Thread(target=thread, name="parafuse-openai", daemon=True)
        th.start()
        try:
            while True:
                item = out.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            th.join(timeout=30)

    async def _close_loop_session(self) -> None:
        st = self._sessions.pop(id(asyncio.get_running_loop()), None)
        if st is not None:
            await st[1].close()

    async def aclose(self) -> None:
        await self._close_loop_session()

    def close(self) -> None:
        for loop, session, _, _ in list(self._sessions.values()):
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(session.close())
        self._sessions.clear()
