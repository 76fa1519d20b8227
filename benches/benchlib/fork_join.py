"""The self-contained parts of the fork-join bench (benches/fork_join.py): token-exact engine I/O, the CPU noise meter
and the device description. fork_join.py itself is the measurement.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoning.types import Request, SamplingParams


# ---- token-exact requests ---------------------------------------------------------------------
@dataclass
class Out:
    """What one request gave back, in tokens."""

    ids: list[int]  # the sampled token ids (text mode: what the engine reports)
    text: str
    prompt_tokens: int
    cached_tokens: int | None  # prefix-cache hit, when the engine says
    latency_s: float


class TokenIO:
    """Send token-id prompts through an engine and read the sampled ids back.

    The engine contract speaks text. Here two of the engine's own methods are wrapped on this
    one instance: the prompt it hands vLLM (ids instead of text) and the result it builds
    (the sampled ids and cached-token count are kept aside). The request still goes through
    `agenerate`, the driver thread and vLLM's batching exactly as any decoder's would.
    """

    def __init__(self, engine):
        self.engine = engine
        self.prompts: dict[str, list[int]] = {}
        self.outputs: dict[str, tuple[list[int], int, int | None]] = {}
        self.issued: set[str] = set()  # the requests this bench sends itself (decoders' pass through untouched)
        self._count = 0
        if engine.kind == "vllm":
            self._hook_vllm(engine)
        elif engine.kind == "openai":
            self._hook_openai(engine)
        else:
            raise ValueError(f"fork_join needs the vllm or openai engine, not {engine.kind}")

    def _hook_vllm(self, engine) -> None:
        prompt_text, result = engine.prompt_text, engine._result

        def hooked_prompt(req):
            ids = self.prompts.get(req.id)
            return {"prompt_token_ids": ids} if ids is not None else prompt_text(req)

        def hooked_result(out, req, latency):
            res = result(out, req, latency)
            if req.id in self.issued:
                o = out.outputs[0]
                self.outputs[req.id] = (list(o.token_ids), len(out.prompt_token_ids or []), out.num_cached_tokens)
            return res

        engine.prompt_text, engine._result = hooked_prompt, hooked_result

    def _hook_openai(self, engine) -> None:
        body_of, post = engine._body, engine._post
        owners: dict[int, str] = {}

        def hooked_body(req, n, seed):
            path, body = body_of(req, n, seed)
            if req.id in self.issued:
                ids = self.prompts.get(req.id)
                if ids is not None:
                    body["prompt"] = ids  # vLLM's /v1/completions takes a token-id list as the prompt
                body["return_token_ids"] = True
                owners[id(body)] = req.id
            return path, body

        async def hooked_post(path, body):
            data, attempts, server = await post(path, body)
            rid = owners.pop(id(body), None)
            if rid is not None:
                choice = data["choices"][0]
                usage = data.get("usage") or {}
                cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                self.outputs[rid] = (list(choice.get("token_ids") or []), int(usage.get("prompt_tokens") or 0), cached)
            return data, attempts, server

        engine._body, engine._post = hooked_body, hooked_post

    async def run(self, prompt: list[int] | str, tokens: int, seed: int | None) -> Out:
        """One request of exactly `tokens` generated tokens."""
        self._count += 1
        rid = f"fj-{self._count}"
        params = SamplingParams(n=1, temperature=1.0, top_p=1.0, max_tokens=tokens, min_tokens=tokens,
                                ignore_eos=True, seed=seed)
        if isinstance(prompt, str):
            req = Request(prompt=prompt, params=params, id=rid)
        else:
            self.prompts[rid] = list(prompt)
            req = Request(prompt="<token ids>", params=params, id=rid)
        self.issued.add(rid)
        try:
            res = await self.engine.agenerate(req)
        finally:
            self.prompts.pop(rid, None)
            self.issued.discard(rid)
        ids, prompt_tokens, cached = self.outputs.pop(rid, ([], res.prompt_tokens, None))
        comp = res.completions[0]
        if comp.tokens != tokens or (ids and len(ids) != tokens):
            raise RuntimeError(f"request {rid} generated {comp.tokens} tokens ({len(ids)} ids), not {tokens}: "
                               "the comparison needs exact lengths (ignore_eos, min_tokens)")
        return Out(ids, comp.text, prompt_tokens or res.prompt_tokens, cached, res.latency_s)


# ---- noise and provenance ------------------------------------------------------------------------
class CpuMeter:
    """How much of the machine other processes used while a trace ran: the noise from neighbours.

    Busy CPU time of the whole machine minus that of this process and its children (vLLM's
    engine process, a --server), over the trace's wall time and the usable cores.
    """

    def __init__(self):
        try:
            import psutil
        except ImportError:  # vLLM depends on psutil; without it the figure is just left out
            psutil = None
        self.psutil = psutil
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def sample(self) -> tuple[float, float, float] | None:
        if self.psutil is None:
            return None
        t = self.psutil.cpu_times()
        busy = sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))
        me = self.psutil.Process()
        ours = 0.0
        for proc in [me, *me.children(recursive=True)]:
            try:
                c = proc.cpu_times()
                ours += c.user + c.system
            except self.psutil.Error:
                pass
        return time.perf_counter(), busy, ours

    def other_share(self, before, after) -> float | None:
        if before is None or after is None or after[0] <= before[0]:
            return None
        other = (after[1] - before[1]) - (after[2] - before[2])
        return max(0.0, other / ((after[0] - before[0]) * self.cores))


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__}
    try:
        import vllm

        info["vllm"] = vllm.__version__
    except Exception:  # noqa: BLE001 - provenance only
        pass
    if torch.cuda.is_available():
        info.update(kind="gpu", name=torch.cuda.get_device_name(0), count=torch.cuda.device_count())
    else:
        name = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        info.update(kind="cpu", name=name, cores=len(os.sched_getaffinity(0)),
                    env={k: v for k, v in os.environ.items() if k.startswith("VLLM_CPU_")})
    return info
