"""GRPO on TRL's `GRPOTrainer` with the papers' rewards, LoRA (PEFT) or full weights.

    run_grpo(recipe)   # or: parafuse train grpo RECIPE.yaml [--key value ...]

GRPO (DeepSeekMath, arXiv 2402.03300) samples `num_generations` completions per prompt, scores
each with the recipe's rewards (`rl.rewards`, summed with `rewards.weights`), and uses each
reward's distance from its group's mean as the advantage of every token of that completion:
divided by the group's std with `scale_rewards: group` (DeepSeekMath), only mean-centred with
`none` (ThreadWeaver's P-GRPO). The loss defaults to TRL's `dapo` token-level average with no KL
term (`beta: 0`), as Parallel-R1 (arXiv 2509.07980) trains its RL stages.

What the run does, in order: load the policy and tokenizer (adding the format's tags), read the
prompts with their gold answers, build the rewards and the rollout, hand them to
`rl.grpo_trainer.ParafuseGRPOTrainer` (TRL's GRPOTrainer), train (resuming from the last checkpoint
with `resume`), and write

    OUTPUT/checkpoint-N/       Trainer checkpoints (--resume starts from the last one)
    OUTPUT/train_log.jsonl     every logged step, one JSON line each (rl.callbacks.StepLog)
    OUTPUT/final/              the adapter (LoRA) or the full weights, the tokenizer, parafuse_training.json
    OUTPUT/merged/             a plain model folder (adapter folded in) that hf and vllm load

Rollouts: with `rollout.decoder none` TRL samples one sequence with the model's own `generate`;
with a decoder (parallel_r1, threadweaver, parathinker) `rl.rollout.DecoderRollout` is TRL's
`rollout_func`: parafuse's decoder forks each block into separate requests on the live policy and
the stitched trace is trained, the decoder's inserted tokens out of the loss.

Every logged step has `reward`, `reward_std` and, per reward, `rewards/NAME/mean` and
`rewards/NAME/std` (TRL names them after each reward's `__name__`); with a format, `trace/...`
(parallel share, critical-path and total tokens); with a decoder, `rollout/...`; with
`rollout.policy_gap`, `policy_gap/SEGMENT`; with the alternating reward, `parallel_phase`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from reasoning.settings import to_dict
from reasoning.types import InputError
from rl.config import GRPORecipe
from rl.data import load_prompts
from rl.models import (
    allow_missing_head_bias, load_for_training, lora_config, resume_checkpoint, save_model_folder,
    write_training_record,
)
from rl.callbacks import run_callbacks
from rl.rewards import make_reward


def grpo_config(recipe: GRPORecipe, output_dir: Path):
    """TRL's `GRPOConfig` for the recipe: its training and sampling blocks, and the reward weights."""
    from trl import GRPOConfig

    t, s = recipe.training, recipe.sampling
    return GRPOConfig(
        output_dir=str(output_dir), **t.trainer_arguments(), steps_per_generation=t.steps_per_generation,
        num_iterations=t.num_iterations, beta=t.beta, epsilon=t.epsilon, epsilon_high=t.epsilon_high,
        loss_type=t.loss_type, scale_rewards=t.scale_rewards, log_completions=t.log_completions,
        num_generations=s.num_generations, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
        max_completion_length=s.max_completion_length, mask_truncated_completions=s.mask_truncated_completions,
        reward_weights=list(recipe.rewards.weights) or None,
        # the rewards read the `answer` column: TRL must hand it over
        remove_unused_columns=False, **vllm_arguments(recipe))


def vllm_arguments(recipe: GRPORecipe) -> dict[str, Any]:
    """GRPOConfig's vLLM arguments for the recipe's `vllm` block (none: generation in-process)."""
    v = recipe.vllm
    if v.mode == "none":
        return {"use_vllm": False}
    out: dict[str, Any] = {"use_vllm": True, "vllm_mode": v.mode,
                           "vllm_importance_sampling_correction": v.importance_sampling_correction}
    if v.mode == "server":
        out.update(vllm_server_base_url=v.server_base_url, vllm_server_timeout=v.server_timeout)
    else:
        out.update(vllm_gpu_memory_utilization=v.gpu_memory_utilization,
                   vllm_tensor_parallel_size=v.tensor_parallel_size, vllm_enable_sleep_mode=v.enable_sleep_mode)
        if v.max_model_len:
            out["vllm_max_model_length"] = v.max_model_len
    return out


def build_rewards(recipe: GRPORecipe, tokenizer) -> list[Any]:
    """The recipe's reward functions, in `rewards.use` order, each with its config block."""
    configs = recipe.reward_config
    return [make_reward(name, configs[name], tokenizer=tokenizer) for name in recipe.rewards.use]


def decoder_config(recipe: GRPORecipe):
    """The rollout decoder's config: its defaults, `rollout.options`, and the recipe's caps."""
    import yaml

    from reasoning.decoders import get_decoder

    rollout = recipe.rollout
    _, config_class = get_decoder(rollout.decoder)
    options: dict[str, Any] = {}
    for item in rollout.options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"rollout.options: {item!r} is not KEY=VALUE (e.g. num_paths=2)")
        options[key.strip()] = yaml.safe_load(value)
    options.setdefault("max_total_tokens", rollout.max_total_tokens or recipe.sampling.max_completion_length)
    options.setdefault("force_open", rollout.force_open)
    if rollout.decoder == "parallel_r1":
        # paths at the run's temperature (TRL's loss divides by it); the reference's forced 1.0 is an option
        options.setdefault("path_temperature", None)
    try:
        return config_class.from_dict(options)
    except InputError as e:
        raise InputError(f"rollout.options ({rollout.decoder}): {e}") from None


def make_rollout(recipe: GRPORecipe):
    """The recipe's `rollout_func` (None: TRL samples itself)."""
    from rl.rollout import DecoderRollout

    rollout = recipe.rollout
    if rollout.decoder == "none":
        return None
    return DecoderRollout(rollout.decoder, decoder_config(recipe), temperature=recipe.sampling.temperature,
                          top_p=recipe.sampling.top_p, seed=recipe.training.seed,
                          train_inserted=rollout.train_inserted, concurrency=rollout.concurrency,
                          unseen_sampling=rollout.unseen_sampling,
                          server_model=recipe.vllm.server_model or recipe.model.name,
                          structure_options={"reference_positions": rollout.reference_positions,
                                             "second_path_is_last": rollout.second_path_is_last})


def build_trainer(recipe: GRPORecipe, output_dir: Path | None = None):
    """(trainer, rewards) ready to `train()`; used by `run_grpo` and by tests that step it by hand.
    Call `close()` on each reward afterwards (it stops the grader's workers)."""
    import datasets

    from rl.grpo_trainer import ParafuseGRPOTrainer, UnseenStructure

    recipe.check()
    output_dir = Path(output_dir or recipe.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer, rows = load_for_training(recipe, output_dir)
    prompts = load_prompts(recipe.data, recipe.training.seed)
    if tokenizer.chat_template is None:
        raise InputError(f"model.name {recipe.model.name!r}: the tokenizer has no chat template and the prompts are "
                         "chat messages; set model.chat_template to a Jinja file")
    rollout = make_rollout(recipe)
    rewards = build_rewards(recipe, tokenizer)
    callbacks = run_callbacks(output_dir, recipe.training.time_budget_s)
    unseen = None
    if recipe.rollout.structure == "parallel_r1_unseen":
        unseen = UnseenStructure(tokenizer, recipe.rollout.reference_positions, recipe.rollout.second_path_is_last)
    try:
        trainer = ParafuseGRPOTrainer(
            model=model, processing_class=tokenizer, reward_funcs=rewards, args=grpo_config(recipe, output_dir),
            train_dataset=datasets.Dataset.from_list(prompts), callbacks=callbacks, rollout_func=rollout,
            peft_config=lora_config(recipe, model, rows) if recipe.lora.enabled else None,
            trace_format=recipe.format, unseen=unseen, policy_gap=recipe.rollout.policy_gap)
    except Exception:
        for reward in rewards:
            reward.close()
        raise
    allow_missing_head_bias(trainer.model)
    return trainer, rewards


def reward_log(trainer) -> list[dict[str, float]]:
    """The logged training steps (those with a `reward`), as TRL wrote them."""
    return [entry for entry in trainer.state.log_history if "reward" in entry]


def run_grpo(recipe: GRPORecipe, resume: bool = False) -> dict[str, Any]:
    """Train, then write final/ and merged/; returns the run's summary (also in final/parafuse_training.json)."""
    output_dir = Path(recipe.output_dir)
    checkpoint = resume_checkpoint(output_dir, resume)
    trainer, rewards = build_trainer(recipe)
    try:
        started = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=checkpoint)
        elapsed = time.perf_counter() - started
    finally:
        for reward in rewards:
            reward.close()
    logged = reward_log(trainer)
    first, last = (logged[0], logged[-1]) if logged else ({}, {})
    summary = {"steps": trainer.state.global_step, "train_loss": result.training_loss, "seconds": round(elapsed, 2),
               "rewards": list(recipe.rewards.use), "reward_first": first.get("reward"),
               "reward_last": last.get("reward"),
               **{f"{name}_last": last.get(f"rewards/{name}/mean") for name in recipe.rewards.use},
               "resumed_from": checkpoint, "format": recipe.format, "lora": recipe.lora.enabled}
    final = output_dir / "final"
    trainer.save_model(str(final))
    model = trainer.model
    if not recipe.lora.enabled:
        save_model_folder(model, trainer.processing_class, final)
    write_training_record(final, to_dict(recipe), model, summary)
    if recipe.save_merged:
        merged = model.merge_and_unload() if recipe.lora.enabled else model
        save_model_folder(merged, trainer.processing_class, output_dir / "merged")
        write_training_record(output_dir / "merged", to_dict(recipe), merged, summary)
    return summary


__all__ = ["build_rewards", "build_trainer", "decoder_config", "grpo_config", "make_rollout", "reward_log", "run_grpo"]
