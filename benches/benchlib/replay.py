"""The ceiling a synthesis bench compares with: the requests a pipeline sent, replayed by a bare client.

Every row of a pipeline's generation store is one request it sent; `run_raw` sends the same bodies
the openai engine built, at the same number in flight, with no dependencies between them.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

MAX_SERVER_STOPS = 4  # what the openai engine sends at most (the OpenAI API's limit)


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process so far (Linux /proc); None where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class RawRun:
    wall_s: float
    requests: int
    failures: int
    cpu_s: float  # this process's CPU time during the replay
    server_cpu_s: float | None


def raw_body(request: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
    """The body the openai engine builds for a stored request (`Request.to_dict`), written out by hand."""
    p = request["params"]
    body: dict[str, Any] = {"model": model, "n": p["n"], "temperature": p["temperature"], "top_p": p["top_p"],
                            "max_tokens": p["max_tokens"]}
    if p.get("stop"):
        body["stop"] = list(p["stop"])[:MAX_SERVER_STOPS]
    if p.get("seed") is not None:
        body["seed"] = p["seed"]
    if p.get("min_tokens"):
        body["min_tokens"] = p["min_tokens"]
    if p.get("ignore_eos"):
        body["ignore_eos"] = True
    if request.get("messages") is not None:
        return "/chat/completions", {**body, "messages": request["messages"]}
    return "/completions", {**body, "prompt": request["prompt"]}


def stored_requests(store: Path) -> list[dict[str, Any]]:
    """One request per store row: each row is one request the pipeline sent (ok or failed)."""
    with open(store, encoding="utf-8") as f:
        return [json.loads(line)["request"] for line in f if line.strip()]


async def _replay(url: str, bodies: list[tuple[str, dict]], concurrency: int) -> list[bool]:
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=0)  # aiohttp's default pool stops at 100 connections
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def one(path: str, body: dict) -> bool:
            async with sem, session.post(url + path, json=body) as resp:
                if resp.status != 200:
                    return False
                data = await resp.json()
            return len(data["choices"]) == body["n"]

        return await asyncio.gather(*(one(path, body) for path, body in bodies))


def run_raw(url: str, requests: list[dict[str, Any]], concurrency: int, server: subprocess.Popen,
            model: str = "teacher") -> RawRun:
    """Replay `requests` with a bare aiohttp client at `concurrency` in flight, no dependencies between them."""
    bodies = [raw_body(r, model) for r in requests]
    srv0 = process_cpu_s(server.pid)
    t0, c0 = time.perf_counter(), time.process_time()
    ok = asyncio.run(_replay(url, bodies, concurrency))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    srv1 = process_cpu_s(server.pid)
    return RawRun(wall_s=wall, requests=len(bodies), failures=len(ok) - sum(ok), cpu_s=cpu,
                  server_cpu_s=None if srv0 is None or srv1 is None else srv1 - srv0)
