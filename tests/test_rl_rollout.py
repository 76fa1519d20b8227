"""GRPO rollouts through parafuse's decoders (rl.rollout, rl.grpo_trainer) on the tiny model.

- A stitched rollout reads back as the decoder's trace; only the decoder's inserted tokens carry
  no loss (or all do with `train_inserted`, Parallel-R1's released RL code), and they are exactly
  the tokens of the inserted segments; a stop string the trace replaced is not trained.
- Smoke GRPO steps with each decoder move every trainable parameter and no frozen one, the
  loss mask TRL builds is 0 on the inserted tokens, and each step's line in train_log.jsonl has
  the trace figures.
- The Unseen override scores the paths exactly as they were sampled (on-policy gap ~1e-6) where
  the causal (Seen) trainer does not (path 2 scored as if it had seen path 1); the Unseen sampler
  samples a summary with exactly the log-probs the Unseen trainer gives it.
"""
from __future__ import annotations

import asyncio
import json

import pytest
import torch

from reasoning.decoders import ParallelR1Config, run_decodes
from reasoning.decoders.base import GENERATED, INSERTED, DecodeResult, Segment
from reasoning.engines.batching import BatchingEngine
from reasoning.engines.hf import HFEngine
from reasoning.formats.tags import PARALLEL_R1
from reasoning.settings import build, flatten
from reasoning.types import InputError, Request, Result, SamplingParams
from rl.cli import recipe_values
from rl.config import GRPORecipe
from rl.rollout import sampled_ids, stitch
from rl.callbacks import STEP_LOG, StepLog, read_step_log

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def engine(tiny_model):
    torch.set_num_threads(1)
    return HFEngine(str(tiny_model))


def decode(engine, **options) -> DecodeResult:
    cfg = ParallelR1Config.from_dict({"force_open": True, "logprobs": True, "num_paths": 2, "max_blocks": 1,
                                      "max_path_tokens": 10, "max_summary_tokens": 6, "max_tokens": 8, **options})
    [result] = run_decodes(engine, "parallel_r1", [("q", MESSAGES, cfg)])
    assert isinstance(result, DecodeResult), result
    return result


def test_stitched_rollout_is_the_trace_with_loss_only_on_sampled_tokens(engine):
    result = decode(engine)
    tokenizer = engine.tokenizer
    row = stitch(result, tokenizer, engine.tag_keeper)
    assert len(row.ids) == len(row.logprobs) == len(row.mask) == len(row.roles)
    # It reads back as the trace (eos and chat markers are not text).
    assert engine.tag_keeper.decode(row.ids) == result.text
    # Inserted tokens: no loss, no sampled log-prob, and exactly the inserted segments' text in order.
    inserted = [i for i, role in enumerate(row.roles) if role == "inserted"]
    assert inserted and all(row.mask[i] == 0 and row.logprobs[i] is None for i in inserted)
    inserted_text = "".join(s.text for s in result.segments if s.source == INSERTED)
    assert tokenizer.decode([row.ids[i] for i in inserted]) == inserted_text
    assert PARALLEL_R1[2] in inserted_text and PARALLEL_R1[1] in inserted_text  # <Path>, </Parallel>
    # Sampled tokens: trained, with a log-prob, and as many as the generated segments hold.
    sampled = [i for i, m in enumerate(row.mask) if m]
    assert all(row.logprobs[i] is not None and row.logprobs[i] <= 0 for i in sampled)
    generated = [s for s in result.segments if s.source == GENERATED]
    assert len(sampled) == sum(len(sampled_ids(s, engine.tag_keeper)[0]) for s in generated)
    assert {"path1", "path2", "summary"} <= set(row.roles)
    # Parallel-R1's released RL code trains the inserted tags too.
    assert all(stitch(result, tokenizer, engine.tag_keeper, train_inserted=True).mask)


def test_a_stop_string_the_trace_replaced_is_not_trained(engine):
    tokenizer = engine.tokenizer
    ids = tokenizer.encode("12 apples</Summary>", add_special_tokens=False)
    kept, logprobs = sampled_ids(Segment("12 apples", GENERATED, 0, ids, [-0.5] * len(ids), stop_string="</Summary>"),
                                 engine.tag_keeper)
    assert kept == tokenizer.encode("12 apples", add_special_tokens=False)
    assert logprobs == [-0.5] * len(kept)
    # A stop string the decoder then wrote itself is the model's own: claimed, kept whole.
    claimed, _ = sampled_ids(Segment("12 apples</Summary>", GENERATED, 0, ids, None), engine.tag_keeper)
    assert claimed == ids


def test_an_eos_that_ended_a_path_is_not_in_the_middle_of_the_trained_row(engine):
    """The decoder closed the path itself and every later request read the text without that EOS."""
    tokenizer = engine.tokenizer
    eos = tokenizer.eos_token_id
    ids = tokenizer.encode("2 + 3 = 5", add_special_tokens=False)
    summary = tokenizer.encode("5", add_special_tokens=False)
    requests = [{"role": "path", "index": 0}, {"role": "summary", "index": 0}]
    result = DecodeResult(text="<Parallel><Path>2 + 3 = 5</Path></Parallel>\n<Summary>5", format="parallel_r1",
                          requests=requests, segments=[
                              Segment("<Parallel><Path>", INSERTED), Segment("2 + 3 = 5", GENERATED, 0, ids + [eos]),
                              Segment("</Path></Parallel>\n<Summary>", INSERTED),
                              Segment("5", GENERATED, 1, summary + [eos])])
    row = stitch(result, tokenizer, engine.tag_keeper)
    assert row.ids.count(eos) == 1 and row.ids[-1] == eos  # only the response's own end
    assert engine.tag_keeper.decode(row.ids) == result.text
    # a generated piece without its sampled ids cannot be trained: said, not silently masked
    result.segments[1] = Segment("2 + 3 = 5", GENERATED, 0, None)
    with pytest.raises(InputError, match="token ids"):
        stitch(result, tokenizer, engine.tag_keeper)


def test_every_rollout_of_a_run_has_its_own_key(engine):
    from types import SimpleNamespace

    from rl.rollout import DecoderRollout

    rollout = DecoderRollout("parallel_r1", ParallelR1Config(), temperature=1.0, top_p=1.0, seed=0)

    def trainer(step, rank):
        return SimpleNamespace(state=SimpleNamespace(global_step=step), accelerator=SimpleNamespace(process_index=rank))

    keys = [rollout.round_keys(trainer(step, rank), "train", 3) for step in (0, 0, 1) for rank in (0, 1)]
    flat = [k for ks in keys for k in ks]
    assert len(set(flat)) == len(flat)  # two rounds at step 0, two ranks, three rows: all distinct
    assert all("/" not in k for k in flat)


def test_a_failed_rollout_has_no_score():
    from rl.rewards import FormatReward

    reward = FormatReward()
    scores = reward(completions=["", "<Parallel><Path>a</Path></Parallel>"], rollout_text=["", "plain text"],
                    rollout_failed=[True, False])
    assert scores[0] is None and scores[1] is not None


def test_the_unseen_mask_is_built_where_the_batch_lives():
    from rl.structure import additive_mask

    allowed = torch.ones(3, 3, dtype=torch.bool, device="meta").tril()
    assert additive_mask(allowed).device.type == "meta"  # a CUDA batch gets a CUDA mask, no host round trip


def test_batching_engine_answers_concurrent_requests_in_few_generate_calls(engine):
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def generate(self, requests):
            calls.append(len(requests))
            return self.inner.generate(requests)

    front = BatchingEngine(Counting(engine))
    params = SamplingParams(max_tokens=3, temperature=0.0)
    requests = [Request(prompt=f"{i} + {i} =", params=params, id=f"r{i}") for i in range(6)]

    async def main():
        return await asyncio.gather(*(front.agenerate(r) for r in requests))

    results = asyncio.run(main())
    assert sum(calls) == 6 and len(calls) < 6
    assert [r.request_id for r in results] == [r.id for r in requests]
    alone = engine.generate([requests[4]])[0]
    assert isinstance(alone, Result) and results[4].completions[0].text == alone.completions[0].text


# ---------------------------------------------------------------------------- training steps

def recipe_for(tiny_model, out, decoder: str, **rollout) -> GRPORecipe:
    data, where = recipe_values("arith-grpo", "smoke")
    found, _ = flatten(data, GRPORecipe, where)
    recipe = build(GRPORecipe, found)
    recipe.model.name = str(tiny_model)
    recipe.output_dir = str(out)
    recipe.training.learning_rate = 1e-2
    recipe.training.max_steps = 2
    recipe.rewards.use = ("accuracy", "format")
    recipe.rewards.format.check.format = decoder
    recipe.rollout.decoder = decoder
    recipe.rollout.force_open = True
    recipe.rollout.options = {"parallel_r1": ("num_paths=2", "max_blocks=1", "max_path_tokens=8",
                                              "max_summary_tokens=6", "max_tokens=6"),
                              "threadweaver": ("max_thread_tokens=8", "max_iterations=4", "max_tokens=8"),
                              "parathinker": ("num_paths=2", "max_path_tokens=8", "max_summary_tokens=6"),
                              }[decoder]
    for key, value in rollout.items():
        setattr(recipe.rollout, key, value)
    return recipe


def spread_reward(completions, rollout_text=None, **kwargs):
    """A test reward that always differs within a group (the untrained model's answers are all wrong, so the
    papers' rewards can tie and leave no gradient): the response's length modulo 7."""
    return [float(len(text) % 7) for text in rollout_text]


spread_reward.close = lambda: None


def train_recording_masks(recipe, monkeypatch=None):
    """Train the recipe; returns (trainer, parameters before, trainable names, [(tool_mask, rollout rows)])."""
    import rl.grpo
    from rl.grpo import build_trainer

    torch.set_num_threads(1)
    if monkeypatch is not None:
        build = rl.grpo.build_rewards
        monkeypatch.setattr(rl.grpo, "build_rewards", lambda r, tok: build(r, tok) + [spread_reward])
    trainer, rewards = build_trainer(recipe)
    seen = []
    original = trainer._generate_and_score_completions

    def recording(inputs):
        output = original(inputs)
        seen.append((output.get("tool_mask"), output["completion_mask"], list(trainer.rollout_func.last)))
        return output

    trainer._generate_and_score_completions = recording
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    try:
        trainer.train()
    finally:
        for reward in rewards:
            reward.close()
    return trainer, before, trainable, seen


@pytest.mark.parametrize("decoder", ["parallel_r1", "threadweaver", "parathinker"])
def test_decoder_rollout_steps_train_the_sampled_tokens_only(decoder, tiny_model, tmp_path, monkeypatch):
    recipe = recipe_for(tiny_model, tmp_path, decoder)
    recipe.rewards.weights = ()
    trainer, before, trainable, seen = train_recording_masks(recipe, monkeypatch)
    for name, param in trainer.model.named_parameters():
        moved = not torch.equal(before[name], param.detach())
        if name not in trainable:
            assert not moved, f"frozen {name} changed"
        else:
            assert moved, f"trainable {name} did not change"
    assert seen
    for tool_mask, completion_mask, rows in seen:
        assert tool_mask is not None  # TRL multiplies its completion mask by this env_mask
        loss_mask = (completion_mask * tool_mask).tolist()
        for r, row in enumerate(rows):
            for t, role in enumerate(row.roles):
                if role == "inserted":
                    assert loss_mask[r][t] == 0
                elif completion_mask[r, t]:
                    assert loss_mask[r][t] == 1
    log = read_step_log(tmp_path)
    steps = [entry for entry in log if "loss" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    for entry in steps:
        assert entry["trace/parallel_share"] == 1.0  # force_open: every rollout forks
        assert 0 < entry["trace/critical_tokens"] <= entry["trace/total_tokens"]
        assert entry["rollout/inserted_tokens"] > 0 and entry["rollout/failed"] == 0
        assert "rewards/format/mean" in entry and "rewards/accuracy/mean" in entry


@pytest.mark.parametrize("structure", ["causal", "parallel_r1_unseen"])
def test_unseen_scores_the_paths_as_they_were_sampled(structure, tiny_model, tmp_path):
    recipe = recipe_for(tiny_model, tmp_path, "parallel_r1", structure=structure, policy_gap=True)
    recipe.training.max_steps = 1
    recipe.training.learning_rate = 1e-6
    train_recording_masks(recipe)
    [entry] = [e for e in read_step_log(tmp_path) if "loss" in e]
    assert entry["policy_gap/path1"] < 1e-4  # path 1 sees what it saw when sampled either way
    if structure == "causal":
        assert entry["policy_gap/path2"] > 1e-2  # Seen: scored as if it had read path 1
    else:
        assert entry["policy_gap/path2"] < 1e-4


def test_unseen_sampler_samples_with_the_log_probs_the_unseen_trainer_scores(tiny_model, tmp_path):
    from rl.grpo import build_trainer
    from rl.rollout import UnseenSampler

    recipe = recipe_for(tiny_model, tmp_path, "parallel_r1", structure="parallel_r1_unseen", unseen_sampling=True)
    trainer, rewards = build_trainer(recipe)
    for reward in rewards:
        reward.close()
    tokenizer = trainer.processing_class
    base = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    rest = "Let me think.<Parallel><Path>2 + 3 = 5</Path><Path>3 + 2 = 5</Path></Parallel>\n<Summary>"
    model = trainer.accelerator.unwrap_model(trainer.model)
    front = BatchingEngine(HFEngine.from_loaded(model, tokenizer))
    sampler = UnseenSampler(front, {"k": base}, trainer.unseen.tags)
    request = Request(prompt=base + rest, params=SamplingParams(max_tokens=6, temperature=1.0, seed=3, logprobs=True),
                      id="k/summary/0/0")
    completion = sampler.sample(request, base, rest).completions[0]
    assert completion.token_ids and len(completion.logprobs) == len(completion.token_ids)

    prompt_ids = tokenizer.encode(base, add_special_tokens=False)
    completion_ids = tokenizer.encode(rest, add_special_tokens=False) + completion.token_ids
    ids = torch.tensor([prompt_ids + completion_ids])
    mask = torch.ones_like(ids)
    keep = len(completion_ids)
    sampled = torch.tensor(completion.logprobs)
    with torch.no_grad():
        unseen_scores = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep)[0][0, -len(sampled):]
        structure, trainer.unseen = trainer.unseen, None
        causal_scores = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep)[0][0, -len(sampled):]
        trainer.unseen = structure
    assert (unseen_scores - sampled).abs().max() < 1e-4
    assert (causal_scores - sampled).abs().max() > 1e-3  # the summary is off-policy for a causal scorer


# ---------------------------------------------------------------------------- settings and the step log

@pytest.mark.parametrize("change, message", [
    ({"structure": "parallel_r1_unseen", "decoder": "threadweaver"}, "parallel_r1"),
    ({"unseen_sampling": True, "decoder": "parallel_r1"}, "unseen_sampling"),
    ({"decoder": "parallel_r1", "options": ("num_paths",)}, "KEY=VALUE"),
    ({"decoder": "parallel_r1", "options": ("num_pathz=2",)}, "num_pathz"),
    ({"structure": "parallel_r1_unseen", "decoder": "none"}, "sampled apart"),
    ({"policy_gap": True, "decoder": "none"}, "policy_gap"),
    ({"decoder": "parallel_r1", "structure": "parallel_r1_unseen", "model.attn_implementation": "flash_attention_2"},
     "4-D mask"),
    ({"decoder": "parallel_r1", "sampling.top_k": 20}, "top_k"),
    ({"decoder": "parallel_r1", "rewards.use": ("parallel_r1_alternating",), "rewards.weights": (),
      "training.steps_per_generation": 2},
     "steps_per_batch is 1.*set it to 2"),
])
def test_bad_rollout_settings_say_what_to_change(change, message, tiny_model, tmp_path):
    from rl.grpo import make_rollout

    recipe = recipe_for(tiny_model, tmp_path, "parallel_r1")
    recipe.rollout.force_open = False
    for key, value in change.items():
        block, _, name = key.rpartition(".")
        target = recipe
        for part in ("rollout." + key if not block else key).split(".")[:-1]:
            target = getattr(target, part)
        setattr(target, name, value)
    recipe.rewards.format.check.format = "parallel_r1" if recipe.rollout.decoder == "none" else recipe.rollout.decoder
    with pytest.raises(InputError, match=message):
        recipe.check()
        make_rollout(recipe)


def test_step_log_keeps_each_step_once_across_a_resume(tmp_path):
    class State:
        is_world_process_zero = True
        global_step = 0

    state = State()
    log = StepLog(tmp_path / STEP_LOG)
    for step in (1, 2, 3):
        state.global_step = step
        log.on_log(None, state, None, logs={"loss": 0.1 * step, "reward": float("nan")})
    state.global_step = 2  # resumed from checkpoint-2: step 3 is trained again
    log.on_train_begin(None, state, None)
    state.global_step = 3
    log.on_log(None, state, None, logs={"loss": 0.5})
    entries = read_step_log(tmp_path)
    assert [e["step"] for e in entries] == [1, 2, 3]
    assert entries[-1]["loss"] == 0.5 and entries[0]["reward"] is None
    assert json.loads((tmp_path / STEP_LOG).read_text().splitlines()[0])["loss"] == pytest.approx(0.1)


# ---------------------------------------------------------------------------- the bundled recipes

ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}


@pytest.mark.parametrize("recipe", ["parallel-r1-seen", "parallel-r1-unseen", "threadweaver-pgrpo"])
def test_paper_recipes_run_their_smoke_variant_from_the_cli(recipe, tiny_model, tmp_path):
    import subprocess
    import sys

    out = tmp_path / recipe
    run = subprocess.run([sys.executable, "-m", "parafuse", "train", "grpo", recipe, "--variant", "smoke",
                          "--model-name", str(tiny_model), "--output-dir", str(out)],
                         capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["format"] == recipe.split("-pgrpo")[0].replace("-seen", "").replace(
        "-unseen", "").replace("-", "_")
    assert (out / "final").is_dir() and (out / "merged" / "config.json").is_file()
    steps = [e for e in read_step_log(out) if "loss" in e]
    assert len(steps) == 3
    assert all(e["trace/parallel_share"] == 1.0 and e["rollout/inserted_tokens"] > 0 for e in steps)
    if recipe.startswith("parallel-r1"):
        # the smoke schedule alternates every batch: accuracy-only, parallel, accuracy-only
        assert [e["parallel_phase"] for e in steps] == [0.0, 1.0, 0.0]
    if recipe == "parallel-r1-unseen":
        # Unseen log-probs, summary sampled under the Unseen mask: the paths are scored as sampled
        assert all(e["policy_gap/path1"] < 1e-4 and e["policy_gap/path2"] < 1e-4 for e in steps)
    if recipe == "parallel-r1-seen":
        assert all(e["policy_gap/path2"] > 1e-2 for e in steps)  # Seen: path 2 scored as if it had read path 1


# ---------------------------------------------------------------------------- vLLM: colocated and server

def fake_trainer(tokenizer, mode: str, **fields):
    """What DecoderRollout reads from a GRPOTrainer whose generation is on vLLM (TRL syncs the weights first)."""
    from types import SimpleNamespace

    logged = []
    return SimpleNamespace(use_vllm=True, vllm_mode=mode, processing_class=tokenizer,
                           state=SimpleNamespace(global_step=0), model=SimpleNamespace(training=True),
                           accelerator=SimpleNamespace(num_processes=1),
                           _log_metric=lambda name, value: logged.append((name, value)), logged=logged, **fields)


def check_vllm_rollout(trainer, server_model: str):
    from rl.rollout import DecoderRollout

    cfg = ParallelR1Config.from_dict({"force_open": True, "num_paths": 2, "max_blocks": 1, "max_path_tokens": 8,
                                      "max_summary_tokens": 6, "max_tokens": 6, "max_total_tokens": 40})
    rollout = DecoderRollout("parallel_r1", cfg, temperature=1.0, top_p=1.0, seed=0, server_model=server_model)
    out = rollout([MESSAGES, MESSAGES], trainer)
    keeper_decode = rollout.last  # the stitched rows
    assert len(out["completion_ids"]) == 2 and not any(out["rollout_failed"])
    for row, text, mask in zip(keeper_decode, out["rollout_text"], out["env_mask"]):
        assert PARALLEL_R1[0] in text and PARALLEL_R1[3] in text
        inserted = [i for i, role in enumerate(row.roles) if role == "inserted"]
        assert inserted and all(mask[i] == 0 for i in inserted)
        assert all(row.logprobs[i] is not None for i, m in enumerate(mask) if m)  # vLLM's sampled log-probs
    assert ("rollout/blocks", 1.0) in trainer.logged


def test_decoder_rollout_on_a_vllm_server(vllm_server, tiny_model):
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    trainer = fake_trainer(AutoTokenizer.from_pretrained(tiny_model), "server",
                           args=SimpleNamespace(vllm_server_base_url=vllm_server.url))
    check_vllm_rollout(trainer, "tiny")


def test_decoder_rollout_on_a_colocated_vllm_engine(tiny_model):
    from types import SimpleNamespace

    from conftest import get_engine

    engine = get_engine("vllm")  # the session's in-process vLLM: the rollout borrows its LLM and leaves it running
    trainer = fake_trainer(engine.tokenizer, "colocate",
                           vllm_generation=SimpleNamespace(llm=engine.llm, enable_sleep_mode=False))
    check_vllm_rollout(trainer, str(tiny_model))
    assert engine.llm is not None
    again = engine.generate([Request(prompt="1 + 1 =", params=SamplingParams(max_tokens=2, temperature=0.0))])[0]
    assert isinstance(again, Result)
