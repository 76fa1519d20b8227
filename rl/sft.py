"""Supervised fine-tuning on TRL's `SFTTrainer`, with parafuse's structured collators and PEFT adapters.

    run_sft(recipe)   # or: parafuse train sft RECIPE.yaml [--key value ...]

What the run does, in order: load the model and tokenizer (adding the format's tags, and
ParaThinker's thought embeddings), read the rows, build the collator of the recipe's structure,
hand everything to `SFTTrainer` (TRL prepares nothing: the collator tokenizes, labels and masks),
train (resuming from the last checkpoint with `resume`), and write

    OUTPUT/checkpoint-N/       Trainer checkpoints (--resume starts from the last one)
    OUTPUT/final/              the adapter (LoRA) or the full weights, the tokenizer, parafuse_training.json
    OUTPUT/merged/             a plain model folder (adapter folded in) that hf and vllm load
    OUTPUT/train_log.jsonl     every logged step (loss, learning rate, grad norm, ...), one JSON line each

Every structured collator emits a float 4-D mask, so TRL's `packing` / `padding_free` stay off
(TRL refuses a custom collator there, and its packing reads position resets the structures use)
and the logged `num_tokens` is counted by the collator (TRL's sums the mask, NaN here).
Context parallelism cannot express these masks and is refused.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from reasoning.settings import to_dict
from reasoning.types import InputError
from rl.collators import SFTCollator
from rl.config import SFTRecipe
from rl.data import load_rows
from rl.models import (
    allow_missing_head_bias, load_for_training, lora_config, resume_checkpoint, save_model_folder,
    write_training_record,
)


def sft_config(recipe: SFTRecipe, output_dir: Path):
    """TRL's `SFTConfig` for the recipe: its training block, and what a custom collator needs."""
    from trl import SFTConfig

    t = recipe.training
    return SFTConfig(
        output_dir=str(output_dir), **t.trainer_arguments(),
        # the collator does all preparation: TRL must neither tokenize, truncate nor drop the raw columns
        max_length=None, remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
        packing=False, padding_free=False)


def build_trainer(recipe: SFTRecipe, output_dir: Path | None = None):
    """(trainer, collator) ready to `train()`; used by `run_sft` and by tests that step it by hand."""
    import datasets
    import torch
    from trl import SFTTrainer

    from rl.callbacks import run_callbacks

    recipe.check()
    output_dir = Path(output_dir or recipe.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer, rows = load_for_training(recipe, output_dir)
    dtype = next(model.parameters()).dtype
    collator = SFTCollator(tokenizer, recipe.structure, dtype=dtype if dtype.is_floating_point else torch.float32,
                           seed=recipe.training.seed)
    examples = load_rows(recipe.data, recipe.training.seed)
    if recipe.structure.max_length:  # the reference refuses over-long examples; here they are dropped, counted
        kept = [r for r in examples if len(collator.example(r["messages"])) <= recipe.structure.max_length]
        if not kept:
            raise InputError(f"structure.max_length {recipe.structure.max_length}: every example is longer")
        if len(kept) < len(examples):
            print(f"dropped {len(examples) - len(kept)} of {len(examples)} examples longer than "
                  f"{recipe.structure.max_length} tokens", file=sys.stderr)
        examples = kept
    dataset = datasets.Dataset.from_list(examples)

    class Trainer(SFTTrainer):
        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            metrics = self._metrics["train"]
            metrics["num_tokens"] = [float(collator.tokens)]
            metrics["num_trained_tokens"] = [float(collator.trained_tokens)]
            super().log(logs, start_time)

    callbacks = run_callbacks(output_dir, recipe.training.time_budget_s)
    trainer = Trainer(model=model, processing_class=tokenizer, args=sft_config(recipe, output_dir),
                      train_dataset=dataset, data_collator=collator, callbacks=callbacks,
                      peft_config=lora_config(recipe, model, rows) if recipe.lora.enabled else None)
    allow_missing_head_bias(trainer.model)
    parallelism = getattr(trainer.accelerator, "parallelism_config", None)
    if recipe.structure.kind != "causal" and getattr(parallelism, "cp_enabled", False):
        raise InputError(f"structure {recipe.structure.kind}: context parallelism cannot carry a 4-D attention mask "
                         "(accelerate swaps it for a causal one); set cp_size to 1 and use data parallelism")
    return trainer, collator


def run_sft(recipe: SFTRecipe, resume: bool = False) -> dict[str, Any]:
    """Train, then write final/ and merged/; returns the run's summary (also in final/parafuse_training.json)."""
    output_dir = Path(recipe.output_dir)
    checkpoint = resume_checkpoint(output_dir, resume)
    trainer, collator = build_trainer(recipe)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    elapsed = time.perf_counter() - started
    final = output_dir / "final"
    trainer.save_model(str(final))
    model = trainer.model
    summary = {"steps": trainer.state.global_step, "train_loss": result.training_loss, "seconds": round(elapsed, 2),
               "tokens": collator.tokens, "trained_tokens": collator.trained_tokens,
               "resumed_from": checkpoint, "structure": recipe.structure.kind, "format": recipe.format,
               "lora": recipe.lora.enabled}
    if not recipe.lora.enabled:  # full weights: keep the thought tables out of the weight file
        save_model_folder(model, trainer.processing_class, final)
    write_training_record(final, to_dict(recipe), model, summary)
    if recipe.save_merged:
        merged = model.merge_and_unload() if recipe.lora.enabled else model
        save_model_folder(merged, trainer.processing_class, output_dir / "merged")
        write_training_record(output_dir / "merged", to_dict(recipe), merged, summary)
    return summary


__all__ = ["build_trainer", "run_sft", "sft_config"]
