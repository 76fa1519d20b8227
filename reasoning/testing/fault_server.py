"""A fault-injecting OpenAI-compatible server on 127.0.0.1, for tests and benches.

Real servers fail in ways a happy-path test never sees: rate limits, 5xx answers, requests
that hang past the client's timeout, connections dropped without a reply, bodies cut short.
This server produces each of them on demand, at a seeded random rate, either in front of a
real server ("proxy" mode) or with no model at all ("echo" mode, fast and deterministic, so
CPU-only tests can push hundreds of requests through the client). It logs every request it
receives, so a test can check what the client really sent, including from another process
(`--log`).

    python -m reasoning.testing.fault_server --mode echo --fault-rate 0.2 --kinds 429,500,hang
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiohttp import web

FAULT_KINDS = ("429", "500", "hang", "drop", "truncated")
MODES = ("echo", "proxy")
COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")
# Generous: a proxied request to a real model may legitimately take minutes.
UPSTREAM_TIMEOUT_S = 900.0
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
         "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango")


def request_text(body: dict[str, Any]) -> str | None:
    """One string per prompt, so a test can count calls per prompt whichever endpoint was used."""
    if isinstance(body.get("prompt"), str):
        return body["prompt"]
    msgs = body.get("messages")
    if isinstance(msgs, list):
        return "\n".join(str(m.get("content", "")) for m in msgs if isinstance(m, dict))
    return None


def echo_text(text: str, seed: Any, index: int, max_tokens: int) -> tuple[str, str]:
    """A few words fixed by (prompt, seed, choice): a retry or a rerun gets byte-identical output,
    and different seeds or choices get different text, as n-sampling would."""
    h = hashlib.sha256(json.dumps([text, seed, index]).encode()).digest()
    want = 4 + h[0] % 5
    words = [WORDS[b % len(WORDS)] for b in h[1:1 + want]]
    if want > max_tokens:
        return " ".join(words[:max_tokens]), "length"
    return " ".join(words), "stop"


# responder(prompt text, seed, choice index, max_tokens) -> (completion text, finish reason)
Responder = Callable[[str, Any, int, int], tuple[str, str]]


def load_responder(spec: str) -> Responder:
    """`package.module:function`, e.g. reasoning.testing.teacher:scripted_teacher."""
    import importlib

    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"cannot load responder {spec!r} (expected module:function): {e}") from None


def echo_reply(path: str, body: dict[str, Any], ignore_n: bool, responder: Responder = echo_text) -> dict[str, Any]:
    """An OpenAI-shaped reply with no model behind it, honouring `n` unless told to mimic
    servers that ignore it (e.g. `transformers serve`). `responder` writes each choice."""
    text = request_text(body) or ""
    n = 1 if ignore_n else max(1, int(body.get("n") or 1))
    max_tokens = max(1, int(body.get("max_tokens") or 16))
    chat = path.endswith("/chat/completions")
    choices, used = [], 0
    for i in range(n):
        out, finish = responder(text, body.get("seed"), i, max_tokens)
        used += len(out.split())
        content = {"message": {"role": "assistant", "content": out}} if chat else {"text": out}
        choices.append({"index": i, **content, "finish_reason": finish})
    return {"id": f"echo-{hashlib.sha1(text.encode()).hexdigest()[:12]}",
            "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": body.get("model") or "echo", "choices": choices,
            "usage": {"prompt_tokens": max(1, len(text.split())), "completion_tokens": used,
                      "total_tokens": max(1, len(text.split())) + used}}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "fault_server", "code": status}},
                             status=status, headers=headers)


def _upstream_base(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class FaultServer:
    """See the module docstring. `fault_rate`, `kinds`, `delay_s` and `hang_s` are read on every
    request, so a test may change them between phases of one run."""

    def __init__(self, mode: str = "echo", upstream: str | None = None, fault_rate: float = 0.0,
                 kinds: Iterable[str] = FAULT_KINDS, seed: int = 0, hang_s: float = 5.0, delay_s: float = 0.0,
                 log_path: str | Path | None = None, ignore_n: bool = False, model: str = "echo",
                 port: int = 0, responder: Responder | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "proxy" and not upstream:
            raise ValueError("proxy mode needs an upstream base URL, e.g. http://127.0.0.1:8000/v1")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be in [0, 1], got {fault_rate}")
        self.kinds = tuple(kinds)
        bad = sorted(set(self.kinds) - set(FAULT_KINDS))
        if bad or (fault_rate > 0 and not self.kinds):
            raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}, "
                             f"got {list(self.kinds)}")
        self.mode, self.fault_rate, self.hang_s, self.delay_s = mode, fault_rate, hang_s, delay_s
        self.upstream = _upstream_base(upstream) if upstream else None
        self.ignore_n, self.model, self.port = ignore_n, model, port
        self.responder = responder or echo_text  # echo mode: what each choice says
        self.log_path = Path(log_path) if log_path else None
        self._rng = random.Random(seed)
        self._calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._log = None

    def __repr__(self) -> str:  # never shows a recorded Authorization value
        return (f"FaultServer(mode={self.mode!r}, port={self.port}, fault_rate={self.fault_rate}, "
                f"kinds={list(self.kinds)}, calls={len(self._calls)})")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def calls(self) -> list[dict[str, Any]]:
        """A copy, so a test can iterate while the server thread keeps appending."""
        with self._lock:
            return list(self._calls)

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> str:
        """Serve from a background thread with its own event loop, so a synchronous test (and
        the client's own loop) can run alongside; returns the /v1 base URL."""
        if self._thread is not None:
            raise RuntimeError("fault server already started")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse its port at once
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - open until stop()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-server", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(sock), self._loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
            self._thread = self._loop = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _open(self, sock: socket.socket) -> None:
        if self.mode == "proxy":
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S))
        # A short shutdown timeout: requests still "hanging" must not hold up stop().
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.25)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await _cancel_other_tasks()  # handlers still in a "hang" outlive the shutdown timeout
        if self._client is not None:
            await self._client.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in COMPLETION_PATHS:
            app.router.add_post(path, self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    # ---- the call log -------------------------------------------------------------------------
    def _record(self, request: web.Request, body: dict[str, Any] | None, fault: str | None) -> None:
        """Logged on arrival, before any delay, so a client killed mid-request still shows up."""
        auth = request.headers.get("Authorization")
        body = body or {}
        entry = {"time": round(time.time(), 6), "method": request.method, "path": request.path,
                 "text": request_text(body), "n": body.get("n"), "seed": body.get("seed"),
                 "fault": fault, "faulted": fault is not None, "has_auth": auth is not None,
                 "authorization": auth}
        with self._lock:
            entry["seq"] = len(self._calls)
            self._calls.append(entry)
        if self._log is not None:
            self._log.write(json.dumps(entry) + "\n")
            self._log.flush()

    def _pick_fault(self) -> str | None:
        kinds = self.kinds
        if not kinds or self._rng.random() >= self.fault_rate:
            return None
        return self._rng.choice(kinds)

    # ---- handlers -----------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        self._record(request, None, None)
        return web.Response(text="ok")

    async def _unknown(self, request: web.Request) -> web.Response:
        self._record(request, None, None)
        return _error(404, f"no route {request.method} {request.path}")

    async def _models(self, request: web.Request) -> web.Response:
        """Never faulted: clients probe it to decide whether a server is up at all."""
        self._record(request, None, None)
        if self.mode == "proxy":
            return await self._forward("GET", "/models", None, request)
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "parafuse-fault-server"}]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError as e:
            body = f"invalid JSON ({e})"
        if not isinstance(body, dict):
            self._record(request, None, None)
            return _error(400, f"request body is not a JSON object: {str(body)[:200]}")
        fault = self._pick_fault()
        self._record(request, body, fault)
        early = await self._early_fault(fault, request)
        if early is not None:
            return early
        resp = await self._answer(request, body)
        return _truncate(resp) if fault == "truncated" else resp

    async def _early_fault(self, fault: str | None, request: web.Request) -> web.StreamResponse | None:
        """The faults that replace the answer; `hang` delays it, `truncated` spoils it later."""
        if fault == "429":
            return _error(429, "rate limited (injected fault)", headers={"Retry-After": "0"})
        if fault == "500":
            return _error(500, "internal server error (injected fault)")
        if fault == "drop":
            return await _drop(request)
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
        return None

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if self.mode == "proxy":
            return await self._forward("POST", request.path.removeprefix("/v1"), body, request)
        return web.json_response(echo_reply(request.path, body, self.ignore_n, self.responder))

    async def _forward(self, method: str, path: str, body: dict[str, Any] | None,
                       request: web.Request) -> web.Response:
        """Pass the client's key on, so a proxied hosted API still authenticates."""
        assert self._client is not None and self.upstream is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        try:
            async with self._client.request(method, self.upstream + path, json=body, headers=headers) as r:
                raw = await r.read()
                return web.Response(body=raw, status=r.status,
                                    content_type=r.content_type or "application/json")
        except (TimeoutError, aiohttp.ClientError) as e:
            return _error(502, f"upstream {self.upstream} failed: {type(e).__name__}: {e}")


async def _cancel_other_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _truncate(resp: web.Response) -> web.Response:
    """A 200 whose JSON stops half way, as when a proxy or server dies mid-write."""
    raw = resp.body if isinstance(resp.body, bytes) else b""
    return web.Response(body=raw[: len(raw) // 2], status=200, content_type="application/json")


async def _drop(request: web.Request) -> web.StreamResponse:
    """Close the socket with no status line at all; the client sees a disconnected server."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=200)  # aiohttp finds the socket closed and writes nothing


# ---- command line ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reasoning.testing.fault_server",
        description="An OpenAI-compatible server on 127.0.0.1 that injects faults (429, 500, hangs, dropped "
                    "connections, truncated bodies) at a seeded random rate, in front of a real server "
                    "(--mode proxy) or with no model (--mode echo). Prints its /v1 base URL on the first "
                    "line of stdout; stops on Ctrl-C or SIGTERM.")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free one)")
    p.add_argument("--mode", choices=MODES, default="echo",
                   help="echo: answer with deterministic made-up text; proxy: forward to --upstream")
    p.add_argument("--upstream", default=None, help="proxy mode: base URL of the real server, e.g. "
                                                   "http://127.0.0.1:8000/v1")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="share of completion requests that get a fault, 0 to 1 (default 0)")
    p.add_argument("--kinds", default=",".join(FAULT_KINDS),
                   help=f"comma-separated fault kinds to draw from (default {','.join(FAULT_KINDS)})")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default 0)")
    p.add_argument("--hang-s", type=float, default=5.0,
                   help="how long a 'hang' fault stalls before answering; make it longer than the "
                        "client's timeout (default 5)")
    p.add_argument("--delay-s", type=float, default=0.0,
                   help="latency added to every answer, so runs take measurable time (default 0)")
    p.add_argument("--ignore-n", action="store_true",
                   help="echo mode: return one choice whatever `n` asks for, like `transformers serve`")
    p.add_argument("--model", default="echo",
                   help="echo mode: the model name that /v1/models lists (default echo)")
    p.add_argument("--responder", default=None, metavar="MODULE:FUNCTION",
                   help="echo mode: a function (prompt, seed, index, max_tokens) -> (text, finish_reason) that "
                        "writes each answer, e.g. reasoning.testing.teacher:scripted_teacher (default: made-up words)")
    p.add_argument("--log", default=None, metavar="FILE",
                   help="append every request received to this JSONL file (it holds Authorization values)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    try:
        server = FaultServer(mode=a.mode, upstream=a.upstream, fault_rate=a.fault_rate, kinds=kinds,
                             seed=a.seed, hang_s=a.hang_s, delay_s=a.delay_s, log_path=a.log,
                             ignore_n=a.ignore_n, model=a.model, port=a.port,
                             responder=load_responder(a.responder) if a.responder else None)
    except ValueError as e:
        print(f"fault_server: error: {e}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(server.start(), flush=True)
    print(f"fault server: {server!r}", file=sys.stderr, flush=True)
    while not done.wait(0.5):  # a timed wait, so signals are handled promptly
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
