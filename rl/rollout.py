"""GRPO rollouts through parafuse's own parallel-thinking decoders (TRL 1.16's `rollout_func`).

TRL hands `rollout_func(prompts, trainer)` the prompts of one generation round (each already
repeated `num_generations` times) and trains what it returns. `DecoderRollout` decodes each prompt
with the recipe's decoder (`reasoning.decoders`: Parallel-R1, ThreadWeaver or ParaThinker) on the
policy being trained (an hf engine over the live weights, concurrent requests batched), and returns
for each one the *stitched* completion: the decoder's segments in order, each generated segment as
the token ids the model sampled (with their log-probs), each inserted segment (the tags and closes
the orchestrator writes) tokenized. What TRL receives:

  prompt_ids, completion_ids, logprobs   the rendered prompt's ids, the stitched ids, sampled
                                         log-probs (None at inserted tokens: NaN in TRL)
  env_mask                               1 on sampled tokens, 0 on inserted ones (no loss; with
                                         `train_inserted` 1 everywhere, as Parallel-R1's released
                                         RL code trains its inserted tags)
  rollout_text, critical_path_len,       reward kwargs: the response with its tags kept (TRL's own
  total_len, parallel_blocks,            decode drops special-token tags), L_crit and L_total of the
  rollout_failed                         whole response (inserted tokens included, ThreadWeaver's
                                         reward counts them so), the forked blocks, a failed decode

A decode that raises (an engine error) becomes one EOS token with no loss and no text; the rewards
give it no score (None), so TRL leaves it out of its group's baseline and gives it no advantage. A
round where every decode failed stops the run; otherwise the failures are counted and the first is
printed. (A ThreadWeaver outline that cannot be forked is not a failure: it is a finished decode.)

ThreadWeaver's released trainer makes each generation call of a rollout its own training row with
one shared advantage. Here one rollout is one row: TRL's advantages are per row and its groups are
fixed blocks of `num_generations` rows, so per-call rows would break the group baseline. The
stitched row gives every sampled token the rollout's advantage, as the per-call rows do; what
differs is that a later call's tokens are scored in the stitched context, which the Unseen
override (`rl.grpo_trainer`) makes exact for Parallel-R1's paths.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any

from reasoning.decoders import run_decodes
from reasoning.decoders.base import BRANCH_ROLES, GENERATED, DecodeResult, DecoderConfig
from reasoning.types import InputError
from rl.rewards import ROLLOUT_FAILED, ROLLOUT_TEXT

DECODERS = ("none", "parallel_r1", "threadweaver", "parathinker")


@dataclass
class Stitched:
    """One rollout as TRL trains it: ids, sampled log-probs (None: inserted), loss mask, and which request
    each token came from (its role: main/path/thread/summary/join, or "inserted")."""

    ids: list[int]
    logprobs: list[float | None]
    mask: list[int]
    roles: list[str]


def sampled_ids(segment, keeper) -> tuple[list[int], list[float | None]]:
    """A generated segment's sampled ids and log-probs, without a stop string the trace does not hold.

    A model that stopped on a tag the decoder then replaced (its `stop_string`) sampled tokens that
    are not in the text: the longest prefix of the ids whose text is the segment's is kept, so the
    trained sequence reads like the trace."""
    ids = list(segment.token_ids)
    logprobs: list[float | None] = list(segment.logprobs) if segment.logprobs is not None else [None] * len(ids)
    if segment.stop_string:
        keep = len(ids)
        while keep > 0 and keeper.decode(ids[:keep]) != segment.text:
            keep -= 1
        ids, logprobs = ids[:keep], logprobs[:keep]
    return ids, logprobs


def request_role(result: DecodeResult, request: int | None) -> str:
    """main, path1, path2, ..., thread1, ..., summary, join: the role of the request a segment came from."""
    if request is None:
        return "main"
    row = result.requests[request]
    return f"{row['role']}{row['index'] + 1}" if row["role"] in BRANCH_ROLES else row["role"]


def stitch(result: DecodeResult, tokenizer, keeper, train_inserted: bool = False) -> Stitched:
    """The trained completion of one decode (see the module docstring)."""
    ids: list[int] = []
    logprobs: list[float | None] = []
    mask: list[int] = []
    roles: list[str] = []
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    last_generated = max((i for i, seg in enumerate(result.segments) if seg.source == GENERATED), default=-1)
    for at, segment in enumerate(result.segments):
        if segment.source == GENERATED:
            if segment.token_ids is None:
                raise InputError("a rollout request came back without its sampled token ids, so it cannot be "
                                 "trained; use the hf or vllm engine, or a vLLM server (which returns them)")
            piece, piece_logprobs = sampled_ids(segment, keeper)
            if at != last_generated:
                # A path or thread that ended on EOS: the decoder wrote its close and went on, and every later
                # request read the text without that EOS, so the trained row must not hold it either.
                while piece and piece[-1] in eos:
                    piece, piece_logprobs = piece[:-1], piece_logprobs[:-1]
            role = request_role(result, segment.request)
            ids += piece
            logprobs += piece_logprobs
            mask += [1] * len(piece)
            roles += [role] * len(piece)
        else:  # inserted text: tokenized as the next request read it
            piece = tokenizer.encode(segment.text, add_special_tokens=False)
            ids += piece
            logprobs += [None] * len(piece)
            mask += [1 if train_inserted else 0] * len(piece)
            roles += ["inserted"] * len(piece)
    return Stitched(ids, logprobs, mask, roles)


def failed_rollout(tokenizer) -> Stitched:
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    return Stitched([eos], [None], [0], ["inserted"])


class UnseenSampler:
    """An engine front for Parallel-R1 Unseen rollouts that are exactly on-policy.

    A request that continues past a closed block (a summary, the text after it, a later block's
    paths) is sampled under the Unseen mask and positions of everything before it, the structure
    the trainer scores it with (`rl.structure.parallel_r1.unseen`): one forward pass over the prefix
    with that mask fills the key/value cache, then every new token, being after the block, sees all
    of it and takes the next position. Other requests (the first main text, the first block's
    paths, which the decoder already issues alone at the right positions) go to the batching engine.
    Requests are told apart by their decode key (`bases`: key -> the rendered prompt)."""

    def __init__(self, engine, bases: dict[str, str], tags: dict[str, int], reference_positions: bool = False,
                 second_path_is_last: bool = False):
        self.engine, self.bases, self.tags = engine, bases, tags
        self.options = {"reference_positions": reference_positions, "second_path_is_last": second_path_is_last}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    async def agenerate(self, request):
        import asyncio

        from reasoning.formats.tags import PARALLEL_R1

        base = self.bases.get(request.id.split("/")[0])
        rest = request.prompt[len(base):] if base is not None and request.prompt.startswith(base) else None
        if rest is None or PARALLEL_R1[1] not in rest:
            return await self.engine.agenerate(request)
        return await asyncio.to_thread(self.sample, request, base, rest)

    def sample(self, request, base: str, rest: str):
        from rl.structure import additive_mask
        from rl.structure.parallel_r1 import unseen

        from reasoning.types import Result

        inner = self.engine.engine  # the hf engine behind the batching front
        torch, lm, tokenizer, p = inner._torch, inner.lm, inner.tokenizer, request.params
        started = time.perf_counter()
        prompt = tokenizer.encode(base, add_special_tokens=False)
        example = unseen(prompt, tokenizer.encode(rest, add_special_tokens=False), self.tags, **self.options)
        device = inner.device
        dtype = next(lm.parameters()).dtype
        generator = torch.Generator(device=device)
        if p.seed is not None:
            generator.manual_seed(p.seed)
        new: list[int] = []
        logprobs: list[float] = []
        position = example.position_ids[-1] + 1
        with torch.inference_mode():
            out = lm(input_ids=torch.tensor([example.input_ids], device=device),
                     attention_mask=additive_mask(example.mask(), dtype)[None, None].to(device),
                     position_ids=torch.tensor([example.position_ids], device=device), use_cache=True)
            for _ in range(p.max_tokens):
                logits = out.logits[0, -1].float()
                token = pick(torch, logits, p.temperature, p.top_p, generator)
                new.append(token)
                logprobs.append(logits.log_softmax(-1)[token].item())  # the model's own, as the hf engine reports
                if token in inner.eos_ids or (p.stop and any(s in inner.tag_keeper.decode(new) for s in p.stop)):
                    break
                out = lm(input_ids=torch.tensor([[token]], device=device), past_key_values=out.past_key_values,
                         position_ids=torch.tensor([[position]], device=device), use_cache=True)
                position += 1
        completion = inner._completion(new, p)
        completion.logprobs = logprobs[:len(completion.token_ids)]
        return Result([completion], prompt_tokens=len(example.input_ids), latency_s=time.perf_counter() - started,
                      engine=inner.kind, model=inner.model, request_id=request.id)


def pick(torch, logits, temperature: float, top_p: float, generator) -> int:
    """One token from `logits`: greedy at temperature 0, else sampled at `temperature` within nucleus `top_p`."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = (logits / temperature).softmax(-1)
    if top_p < 1.0:
        ordered, order = probs.sort(descending=True)
        outside = ordered.cumsum(-1) - ordered >= top_p  # keep the smallest head whose mass reaches top_p
        ordered[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, ordered)
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))


class DecoderRollout:
    """TRL's `rollout_func`: every prompt decoded by `method` on the trainer's current policy.

    `config` is the decoder's config (its own phase caps and switches); the request sampling is
    replaced by the recipe's (temperature, top_p, seed), with log-probs asked for. Every rollout
    gets its own key (`round_keys`), so the `num_generations` copies of a prompt sample differently.
    The in-process engine seeds each batch from its requests' seeds, and which requests share a batch
    depends on timing, so a resumed run samples from the same distribution, not the same tokens."""

    def __init__(self, method: str, config: DecoderConfig, *, temperature: float, top_p: float, seed: int,
                 train_inserted: bool = False, concurrency: int = 64, batch_size: int = 64,
                 unseen_sampling: bool = False, structure_options: dict[str, bool] | None = None,
                 server_model: str = "policy"):
        if method not in DECODERS[1:]:
            raise InputError(f"rollout.decoder {method!r}: choose one of {', '.join(DECODERS)}")
        sampling = dataclasses.replace(config.sampling, temperature=temperature, top_p=top_p, seed=seed)
        self.config = dataclasses.replace(config, sampling=sampling, logprobs=True)
        self.config.check()
        self.method = method
        self.train_inserted = train_inserted
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.unseen_sampling = unseen_sampling
        if unseen_sampling and method != "parallel_r1":
            raise InputError("rollout.unseen_sampling is for the parallel_r1 decoder")
        self.structure_options = dict(structure_options or {})
        self.server_model = server_model
        self.last: list[Stitched] = []  # the latest round's rollouts (the trainer reads their roles)
        self._step: tuple[str, int] | None = None  # (mode, global step) of the latest round, and its number there
        self._round = 0
        self.__name__ = f"{method}_rollout"

    @staticmethod
    def vllm_mode(trainer) -> str:
        return getattr(trainer, "vllm_mode", "none") if getattr(trainer, "use_vllm", False) else "none"

    def engine(self, trainer, bases: dict[str, str], model=None):
        """Where the decoder's requests go: TRL's colocated vLLM, the vLLM server (through its OpenAI API),
        or the in-process policy (batched; under the Unseen sampler when asked)."""
        mode = self.vllm_mode(trainer)
        if mode == "colocate":
            from reasoning.engines.vllm_engine import VLLMEngine

            return VLLMEngine.from_llm(trainer.vllm_generation.llm, self.server_model)
        if mode == "server":
            from reasoning.engines.openai_engine import OpenAIEngine

            url = trainer.args.vllm_server_base_url or (f"http://{trainer.args.vllm_server_host}:"
                                                        f"{trainer.args.vllm_server_port}")
            engine = OpenAIEngine(self.server_model, base_url=url, max_concurrency=self.concurrency)
            engine._tokenizer = trainer.processing_class
            return engine
        from reasoning.engines.batching import BatchingEngine
        from reasoning.engines.hf import HFEngine
        from rl.structure import tag_ids
        from rl.structure.parallel_r1 import TAGS

        model = model if model is not None else trainer.accelerator.unwrap_model(trainer.model)
        engine = BatchingEngine(HFEngine.from_loaded(model, trainer.processing_class, batch_size=self.batch_size))
        if self.unseen_sampling:
            return UnseenSampler(engine, bases, tag_ids(trainer.processing_class, TAGS), **self.structure_options)
        return engine

    @staticmethod
    @contextlib.contextmanager
    def whole_policy(trainer):
        """The policy with all its weights on this process while it samples, as TRL's own generation holds it:
        ZeRO-3 parameters gathered once (no per-layer collectives that ranks decoding different lengths would
        never match), FSDP parameters summoned."""
        from trl.models.utils import unwrap_model_for_generation

        wrapped = getattr(trainer, "model_wrapped", trainer.model)
        summon = getattr(getattr(trainer, "_dist", None), "summon_full_params", None)
        with unwrap_model_for_generation(wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                         gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs
                                         ) as model, \
                (summon(wrapped, recurse=False) if summon is not None else contextlib.nullcontext()):
            yield model

    def decode(self, trainer, keys: list[str], texts: list[str]) -> list[DecodeResult | BaseException]:
        """Every prompt decoded on the engine of `engine()`."""
        jobs = [(key, text, self.config) for key, text in zip(keys, texts)]
        mode = self.vllm_mode(trainer)
        if mode == "none":
            with self.whole_policy(trainer) as model:
                engine = self.engine(trainer, dict(zip(keys, texts)), model)
                was_training = model.training
                model.eval()  # no dropout while sampling; the trainer's mode is restored below
                try:
                    return run_decodes(engine, self.method, jobs, concurrency=self.concurrency)
                finally:
                    model.train(was_training)
        engine = self.engine(trainer, dict(zip(keys, texts)))
        generation = getattr(trainer, "vllm_generation", None)
        sleeping = mode == "colocate" and getattr(generation, "enable_sleep_mode", False)
        if sleeping:
            # TRL syncs (and so wakes) the weights only when the step moved on; a second round at the same step
            # (accumulation, evaluation) finds them asleep and must sync them again, as TRL's own generate does.
            if getattr(generation, "_llm_weights_sleeping", False):
                generation.sync_weights()
            generation.llm.wake_up(tags=["kv_cache"])
        try:
            return run_decodes(engine, self.method, jobs, concurrency=self.concurrency)
        finally:
            engine.close()
            if sleeping:
                generation.llm.sleep(level=2)
                generation._llm_weights_sleeping = True

    def decode_on_main(self, trainer, keys: list[str], texts: list[str]) -> list[DecodeResult | BaseException]:
        """Server mode with several processes: only the main process talks to the server (as TRL's own
        server path): every rank's prompts are gathered there, decoded, and each rank gets its own back."""
        from accelerate.utils import broadcast_object_list, gather_object

        accelerator = trainer.accelerator
        all_keys = gather_object(keys)  # each key names its rank
        all_texts = gather_object(texts)
        box: list[Any] = [None]
        if accelerator.is_main_process:
            try:
                box[0] = self.decode(trainer, all_keys, all_texts)
            except Exception as e:  # noqa: BLE001 - every rank must learn of it, or the others wait forever
                box[0] = e
        broadcast_object_list(box, from_process=0)
        if isinstance(box[0], BaseException):
            raise box[0]
        start = accelerator.process_index * len(texts)
        return box[0][start:start + len(texts)]

    def round_keys(self, trainer, mode: str, n: int) -> list[str]:
        """Each rollout's decode key, which its requests' seeds derive from: the mode, the global step, the
        round within that step (accumulation and evaluation run several), the process and the row, so no two
        rollouts of a run share a random stream. Keys hold no "/": a request id is KEY/role/block/index and
        the Unseen sampler reads KEY back."""
        step = trainer.state.global_step
        if self._step != (mode, step):
            self._step, self._round = (mode, step), 0
        self._round += 1
        rank = getattr(trainer.accelerator, "process_index", 0)
        return [f"{mode}-step{step}-round{self._round}-rank{rank}-row{i}" for i in range(n)]

    def __call__(self, prompts: list[Any], trainer) -> dict[str, Any]:
        tokenizer = trainer.processing_class
        mode = "train" if trainer.model.training else "eval"
        keys = self.round_keys(trainer, mode, len(prompts))
        texts_in = [p if isinstance(p, str) else tokenizer.apply_chat_template(p, tokenize=False,
                                                                               add_generation_prompt=True)
                    for p in prompts]
        if self.vllm_mode(trainer) == "server" and trainer.accelerator.num_processes > 1:
            results = self.decode_on_main(trainer, keys, texts_in)
        else:
            results = self.decode(trainer, keys, texts_in)
        from reasoning.engines.special_tokens import TagKeeper

        keeper = TagKeeper(tokenizer)
        prompt_ids, rows, texts = [], [], []
        critical, total, blocks, failed = [], [], [], []
        errors: list[BaseException] = []
        for text, result in zip(texts_in, results):
            prompt_ids.append(tokenizer.encode(text, add_special_tokens=False))
            if isinstance(result, DecodeResult):
                rows.append(stitch(result, tokenizer, keeper, self.train_inserted))
                texts.append(result.text)
                critical.append(result.critical_path_tokens)
                total.append(result.response_tokens)
                blocks.append(result.blocks)
                failed.append(False)
            else:
                errors.append(result)
                rows.append(failed_rollout(tokenizer))
                texts.append("")
                critical.append(0)
                total.append(0)
                blocks.append(0)
                failed.append(True)
        if errors and len(errors) == len(rows):
            raise RuntimeError(f"every rollout of this round failed; the first: {type(errors[0]).__name__}: "
                               f"{errors[0]}") from errors[0]
        if errors:
            print(f"{len(errors)} of {len(rows)} rollouts failed (left out of the group baselines); the first: "
                  f"{type(errors[0]).__name__}: {errors[0]}", file=sys.stderr)
        self.last = rows
        log_round(trainer, rows, blocks, failed, texts)
        return {"prompt_ids": prompt_ids, "completion_ids": [r.ids for r in rows],
                "logprobs": [r.logprobs for r in rows], "env_mask": [r.mask for r in rows],
                ROLLOUT_TEXT: texts, "critical_path_len": critical, "total_len": total,
                "parallel_blocks": blocks, ROLLOUT_FAILED: failed}


def log_round(trainer, rows: list[Stitched], blocks: list[int], failed: list[bool], texts: list[str]) -> None:
    """Per-round rollout figures in TRL's log (averaged over a logging window).

    `rollout/retokenized`: the share of rollouts whose sampled ids are not what their text encodes to.
    Each request reads the trace so far as text, so such a rollout was sampled over slightly other ids
    than the stitched row the trainer scores (a trained model writes canonical tokens; a random one
    often does not)."""
    log = getattr(trainer, "_log_metric", None)
    if log is None or not rows:
        return
    n = len(rows)
    tokenizer = trainer.processing_class
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id}

    def body(ids: list[int]) -> list[int]:  # the row without the EOS that ends it
        return ids[:-1] if ids and ids[-1] in eos else ids

    drift = sum(text != "" and body(r.ids) != tokenizer.encode(text, add_special_tokens=False)
                for r, text in zip(rows, texts))
    log("rollout/retokenized", drift / n)
    log("rollout/inserted_tokens", sum(role == "inserted" for r in rows for role in r.roles) / n)
    log("rollout/failed", sum(failed) / n)
    log("rollout/blocks", sum(blocks) / n)


__all__ = ["DECODERS", "DecoderRollout", "Stitched", "failed_rollout", "sampled_ids", "stitch"]
