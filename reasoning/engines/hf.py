"""`hf` engine: transformers in-process (the default; CPU or GPU, no server)."""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from reasoning.engines.base import Engine, check_model
from reasoning.engines.special_tokens import TagKeeper
from reasoning.engines.stops import apply_stop
from reasoning.types import Completion, Failure, InputError, Request, Result


DEFAULT_BATCH_SIZE = 16


def cancel_criteria(engine: Engine, torch):
    """A stopping rule that ends every row of a running `generate` once the awaiting call was cancelled
    (`Engine.cancel_event`, e.g. on Ctrl-C), so an interrupt waits for one decoding step, not a whole call."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            event = engine.cancel_event
            return torch.full((input_ids.shape[0],), bool(event is not None and event.is_set()), dtype=torch.bool,
                              device=input_ids.device)

    return StoppingCriteriaList([Cancelled()])


class HFEngine(Engine):
    """Generate with `model.generate`, compatible requests batched together.

    Batching: `iter_results` groups the requests whose generation settings match (temperature,
    top_p, stop strings, min_tokens, ignore_eos, logprobs; `n`, `seed` and `max_tokens` may
    differ: the batch runs to the largest cap and each row is cut at its own)
    into batches of up to `batch_size` prompts, in input order, each prompt repeated
    `n` times and left-padded, and decodes each batch with one `generate` call. Every row
    stops on its own (EOS or a stop string); text, token ids, counts, finish reasons and
    log-probs are per row, as when run alone. Each request of a batch reports the batch's
    wall time as its `latency_s`. When a batch fails (an empty prompt, out of memory), its
    requests are run again one at a time, so a bad request is its own Failure alone.

    Seeds: a batch of one request runs exactly as with `exact_seeds` (seeded with its own
    seed). A batch of several is seeded once, from a hash of its requests' seeds in order
    (unseeded if none has one): the same requests in the same batches give the same text,
    but a seeded request's text depends on which requests share its batch (padding and the
    order the RNG is drawn in change), and so on the whole request list and `batch_size`.
    Greedy requests (temperature 0) give the same text either way, up to float rounding.
    With `exact_seeds=True` every request runs alone, so a seeded request gives the same
    text whatever else is in the run (slower: one `generate` call per request).

    Text: the format tags are kept, special tokens or not; the other special tokens (eos,
    pad, chat markers) are dropped (`TagKeeper`). Stop strings on tags fire either way:
    `generate`'s stop-string criterion matches an added token's text, special or not.
    """

    kind = "hf"

    def __init__(self, model: str, tokenizer: str | None = None, device: str | None = None,
                 dtype: str = "auto", batch_size: int | None = DEFAULT_BATCH_SIZE,
                 exact_seeds: bool | None = False, **_: Any):
        model = check_model(model)  # before the imports: a model that cannot load fails in a second
        import torch

        from reasoning.thought_embeddings import load_causal_lm

        super().__init__(model, tokenizer)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            # a training output's thought embeddings or a PEFT adapter folder load too
            self.lm = load_causal_lm(model, dtype=dtype).to(self.device).eval()
        except OSError as e:
            raise InputError(f"cannot load model {model!r} with transformers: {e}") from None
        self._setup(batch_size, exact_seeds)

    def _setup(self, batch_size: int | None, exact_seeds: bool | None) -> None:
        """What every engine over a loaded `self.lm` holds: eos ids, the tag keeper, the batching settings."""
        import torch

        self._torch = torch
        self.eos_ids = self._eos_ids()
        # Tags stay in the text even where the tokenizer holds them as special tokens (the released
        # checkpoints do): decoded with skip_special_tokens=True they would vanish and stops on them never match.
        self.tag_keeper = TagKeeper(self.tokenizer)
        self.batch_size = DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        self.exact_seeds = bool(exact_seeds)
        self._on_cancel = cancel_criteria(self, torch)

    @classmethod
    def from_loaded(cls, lm, tokenizer, name: str = "policy", batch_size: int | None = DEFAULT_BATCH_SIZE,
                    exact_seeds: bool = False) -> HFEngine:
        """An engine over a model already in memory (a trainer's policy: GRPO rollouts sample from the
        weights being trained). The caller owns the model: its train/eval mode and device are left as they are."""
        engine = cls.__new__(cls)
        Engine.__init__(engine, name)
        engine._tokenizer = tokenizer
        engine.lm = lm
        engine.device = next(lm.parameters()).device
        engine._setup(batch_size, exact_seeds)
        return engine

    def _eos_ids(self) -> set[int]:
        ids = self.lm.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def describe(self) -> dict[str, Any]:
        return {"engine": self.kind, "model": self.model, "device": self.device, "batch_size": self.batch_size,
                "exact_seeds": self.exact_seeds}

    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        if self.exact_seeds or self.batch_size == 1:
            yield from self.one_at_a_time(requests, self._one)
            return
        for batch in self._batches(requests):
            reqs = [requests[i] for i in batch]
            results = None
            if len(batch) > 1:
                try:
                    results = self._batch(reqs)
                except InputError:
                    raise
                except Exception:  # noqa: BLE001 - retried one at a time below, where each failure is its own
                    results = None
            if results is None:  # one request, or a failed batch: each request alone, as with exact_seeds
                for j, res in self.one_at_a_time(reqs, self._one):
                    yield batch[j], res
            else:
                yield from zip(batch, results)

    @staticmethod
    def _batch_key(p) -> tuple:
        """What requests of one batch must share: everything `generate` is told, except `n`, `seed` and
        `max_tokens` (the batch runs to the largest cap and each row is cut at its own: a row's first k tokens
        do not depend on the others, so the cut row is what the request alone would sample)."""
        sampling = (p.temperature, p.top_p) if p.temperature > 0 else (0.0,)
        return (sampling, p.stop, p.min_tokens, p.ignore_eos, p.logprobs)

    def _batches(self, requests: Sequence[Request]) -> list[list[int]]:
        """Indices of `requests`, grouped by `_batch_key` and cut into runs of `batch_size`, in input order."""
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(self._batch_key(r.params), []).append(i)
        return [ids[k:k + self.batch_size] for ids in groups.values() for k in range(0, len(ids), self.batch_size)]

    @staticmethod
    def _batch_seed(reqs: Sequence[Request]) -> int | None:
        """The one seed of a batch: a hash of its requests' seeds in order (None when none is seeded)."""
        seeds = [r.params.seed for r in reqs]
        if all(s is None for s in seeds):
            return None
        digest = hashlib.sha256(json.dumps(seeds).encode()).digest()
        return int.from_bytes(digest[:8], "big") & (2**63 - 1)

    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id or next(iter(self.eos_ids), 0)

    def _gen_kwargs(self, p) -> dict[str, Any]:
        gen: dict[str, Any] = dict(max_new_tokens=p.max_tokens, pad_token_id=self._pad_id())
        if p.temperature > 0:
            gen.update(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=0)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if p.stop:
            gen.update(stop_strings=list(p.stop), tokenizer=self.tokenizer)
        if p.min_tokens:
            gen["min_new_tokens"] = p.min_tokens
        if p.ignore_eos:
            gen["eos_token_id"] = None
        if p.logprobs:  # raw logits per step: log-probs under the model, before temperature and top_p
            gen.update(return_dict_in_generate=True, output_logits=True)
        gen["stopping_criteria"] = self._on_cancel
        return gen

    def _picked_logprobs(self, out, generated):
        """(rows, steps) log-probs of the generated ids; step by step: never a (rows, steps, vocab) tensor."""
        torch = self._torch
        return torch.stack([step.float().log_softmax(-1).gather(-1, generated[:, t:t + 1]).squeeze(-1)
                            for t, step in enumerate(out.logits)], dim=1)

    def _batch(self, reqs: Sequence[Request]) -> list[Result]:
        """Several compatible requests in one left-padded `generate` call; one Result per request."""
        torch, p = self._torch, reqs[0].params
        t0 = time.perf_counter()
        prompts = [self.tokenizer(self.prompt_text(r), add_special_tokens=False)["input_ids"] for r in reqs]
        if any(not ids for ids in prompts):
            raise ValueError("an empty prompt cannot share a batch")  # run alone, it fails as it always did
        rows = [ids for ids, r in zip(prompts, reqs) for _ in range(r.params.n)]
        width, pad = max(len(ids) for ids in rows), self._pad_id()
        # Left padding, masked out: every row's prompt ends where generation starts.
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows], device=self.device)
        seed = self._batch_seed(reqs)
        if seed is not None:
            torch.manual_seed(seed)
        longest = max(r.params.max_tokens for r in reqs)
        with torch.inference_mode():
            out = self.lm.generate(input_ids=input_ids, attention_mask=mask,
                                   **{**self._gen_kwargs(p), "max_new_tokens": longest})
        generated = (out.sequences if p.logprobs else out)[:, width:]
        picked = self._picked_logprobs(out, generated) if p.logprobs else None
        latency = time.perf_counter() - t0  # the batch's wall time, for each of its requests
        results, row = [], 0
        for r, ids in zip(reqs, prompts):
            completions = []
            for _ in range(r.params.n):
                c = self._completion(generated[row, :r.params.max_tokens].tolist(), r.params)
                if picked is not None:
                    c.logprobs = picked[row, :len(c.token_ids)].tolist()
                completions.append(c)
                row += 1
            results.append(Result(completions, prompt_tokens=len(ids), latency_s=latency, engine=self.kind,
                                  model=self.model, request_id=r.id))
        return results

    def _one(self, req: Request) -> Result:
        """One request alone (the exact-seed path): seeded with its own seed, its n samples in one call."""
        torch, p = self._torch, req.params
        t0 = time.perf_counter()
        ids = self.tokenizer(self.prompt_text(req), return_tensors="pt", add_special_tokens=False)
        ids = {k: v.to(self.device) for k, v in ids.items()}
        prompt_len = ids["input_ids"].shape[1]
        if p.seed is not None:
            torch.manual_seed(p.seed)
        gen = self._gen_kwargs(p)
        if p.temperature > 0:
            gen["num_return_sequences"] = p.n
        elif p.n > 1:  # greedy generate() refuses num_return_sequences > 1: n copies of the prompt instead
            ids = {k: v.repeat_interleave(p.n, dim=0) for k, v in ids.items()}
        with torch.inference_mode():
            out = self.lm.generate(**ids, **gen)
        sequences = out.sequences if p.logprobs else out
        picked = self._picked_logprobs(out, sequences[:, prompt_len:]) if p.logprobs else None
        completions = []
        for row, seq in enumerate(sequences):
            c = self._completion(seq[prompt_len:].tolist(), p)
            if picked is not None:
                c.logprobs = picked[row, :len(c.token_ids)].tolist()
            completions.append(c)
        return Result(completions, prompt_tokens=prompt_len, latency_s=time.perf_counter() - t0,
                      engine=self.kind, model=self.model, request_id=req.id)

    def _completion(self, new_ids: list[int], p) -> Completion:
        pad = self.tokenizer.pad_token_id
        if pad is not None and pad not in self.eos_ids:
            # Sequences that finished early (EOS or a stop string) are padded to the batch's length.
            while new_ids and new_ids[-1] == pad:
                new_ids = new_ids[:-1]
        n_tok, hit_eos = len(new_ids), False
        for j, t in enumerate([] if p.ignore_eos else new_ids):
            if t in self.eos_ids:
                n_tok, hit_eos = j + 1, True
                break
        text = self.tag_keeper.decode(new_ids[: n_tok - hit_eos])
        text, stop = apply_stop(text, p.stop, p.include_stop_str_in_output)
        if stop is not None and hit_eos:
            # generate() ended this sequence at its stop string; the EOS after it is batch padding (pad == eos).
            n_tok, hit_eos = n_tok - 1, False
        if stop is not None:
            finish = "stop"
        elif hit_eos:
            finish = "stop"
        else:
            finish = "length"
        return Completion(text=text, tokens=n_tok, finish_reason=finish, stop_string=stop, token_ids=new_ids[:n_tok])
