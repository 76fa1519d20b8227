"""`hf` engine: transformers in-process (the default; CPU or GPU, no server)."""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from reasoning.engines.base import Engine, check_model
from reasoning.engines.stops import apply_stop
from reasoning.types import Completion, Failure, InputError, Request, Result


class HFEngine(Engine):
    """Generate with `model.generate`, one request at a time.

    Requests run one by one so that a seeded request gives the same text whatever else is
    in the run (batching would change padding and the order the RNG is drawn in).
    """

    kind = "hf"

    def __init__(self, model: str, tokenizer: str | None = None, device: str | None = None,
                 dtype: str = "auto", **_: Any):
        import torch

        from reasoning.thought_embeddings import load_causal_lm

        model = check_model(model)
        super().__init__(model, tokenizer)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            # a training output's thought embeddings or a PEFT adapter folder load too
            self.lm = load_causal_lm(model, dtype=dtype).to(self.device).eval()
        except OSError as e:
            raise InputError(f"cannot load model {model!r} with transformers: {e}") from None
        self._torch = torch
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> set[int]:
        ids = self.lm.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def describe(self) -> dict[str, Any]:
        return {"engine": self.kind, "model": self.model, "device": self.device}

    def iter_results(self, requests: Sequence[Request]) -> Iterator[tuple[int, Result | Failure]]:
        return self.one_at_a_time(requests, self._one)

    def _one(self, req: Request) -> Result:
        torch, p = self._torch, req.params
        t0 = time.perf_counter()
        ids = self.tokenizer(self.prompt_text(req), return_tensors="pt", add_special_tokens=False)
        ids = {k: v.to(self.device) for k, v in ids.items()}
        prompt_len = ids["input_ids"].shape[1]
        if p.seed is not None:
            torch.manual_seed(p.seed)
        gen: dict[str, Any] = dict(max_new_tokens=p.max_tokens, num_return_sequences=p.n,
                                   pad_token_id=self.tokenizer.pad_token_id or next(iter(self.eos_ids), 0))
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
        with torch.inference_mode():
            out = self.lm.generate(**ids, **gen)
        sequences = out.sequences if p.logprobs else out
        picked = None
        if p.logprobs:  # step by step: never an (n, steps, vocab) tensor in memory
            generated = sequences[:, prompt_len:]
            picked = torch.stack([step.float().log_softmax(-1).gather(-1, generated[:, t:t + 1]).squeeze(-1)
                                  for t, step in enumerate(out.logits)], dim=1)  # (n, steps)
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
        text = self.tokenizer.decode(new_ids[: n_tok - hit_eos], skip_special_tokens=True)
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
