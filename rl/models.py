"""Loading the model to train, adding the format's tags, the PEFT adapter, and saving what any engine loads.

New tags under LoRA on a tied-embedding model (measured on the tiny model, TRL 1.16 / PEFT 0.21):
PEFT's `trainable_token_indices` on exactly the tag rows trains only those rows and keeps the
input and output embeddings tied (the adapter stays ~100 KB). `modules_to_save=["embed_tokens"]`
would untie them and silently never train the output rows, so it is not used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reasoning.formats.tags import PARALLEL_R1, PARATHINKER, THREADWEAVER
from reasoning.thought_embeddings import (
    CONFIG_KEY, add_thought_embeddings, has_thought_embeddings, save_tables,
)
from reasoning.types import InputError
from rl.config import GRPORecipe, SFTRecipe

FORMAT_TAGS = {"parallel_r1": PARALLEL_R1, "threadweaver": THREADWEAVER, "parathinker": PARATHINKER}
TINY_PREFIX = "tiny"
TRAINING_FILE = "parafuse_training.json"


def resolve_model_name(name: str, output_dir: Path) -> str:
    """`tiny` / `tiny:PRESET` build parafuse's tiny model once under the output folder; others pass through."""
    if name != TINY_PREFIX and not name.startswith(TINY_PREFIX + ":"):
        return name
    from reasoning.tiny_model import PRESETS, build_tiny_model

    preset = name.partition(":")[2] or "default"
    if preset not in PRESETS:
        raise InputError(f"model.name {name}: unknown tiny preset; choose one of {', '.join(PRESETS)}")
    folder = output_dir / f"base-tiny-{preset}"
    if not (folder / "config.json").exists():
        build_tiny_model(folder, preset=preset)
    return str(folder.resolve())


def dtype_of(name: str):
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


def add_format_tags(model, tokenizer, tags: tuple[str, ...]) -> list[str]:
    """Add the tags the tokenizer splits as single non-special tokens; each new row starts at the mean
    of the embeddings of the pieces the tag used to be split into (ThreadWeaver's initialisation)."""
    import torch

    missing = [t for t in tags if len(tokenizer.encode(t, add_special_tokens=False)) != 1]
    if not missing:
        return []
    pieces = {t: tokenizer.encode(t, add_special_tokens=False) for t in missing}
    tokenizer.add_tokens(missing, special_tokens=False)
    model.resize_token_embeddings(len(tokenizer))
    embeddings = model.get_input_embeddings().weight
    with torch.no_grad():
        for tag in missing:
            row = tokenizer.convert_tokens_to_ids(tag)
            embeddings[row] = embeddings[pieces[tag]].mean(0)
    return missing


def tag_rows(tokenizer, tags: tuple[str, ...]) -> list[int]:
    rows = []
    for tag in tags:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        if len(ids) != 1:
            raise InputError(f"the tokenizer splits {tag!r} into {len(ids)} tokens; set model.add_tags: true")
        rows.append(ids[0])
    return sorted(set(rows))


def load_for_training(recipe: SFTRecipe | GRPORecipe, output_dir: Path) -> tuple[Any, Any, list[int]]:
    """(model, tokenizer, tag rows) ready for the trainer: tags added, thought embeddings added."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = resolve_model_name(recipe.model.name, output_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype_of(recipe.model.dtype),
                                                     attn_implementation=recipe.model.attn_implementation)
    except OSError as e:
        raise InputError(f"model.name {recipe.model.name!r}: cannot load it with transformers: {e}") from None
    if recipe.model.chat_template:
        tokenizer.chat_template = Path(recipe.model.chat_template).read_text()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tags = FORMAT_TAGS.get(recipe.format or "", ())
    if tags and recipe.model.add_tags:
        add_format_tags(model, tokenizer, tags)
    rows = tag_rows(tokenizer, tags) if tags else []
    structure = getattr(recipe, "structure", None)  # GRPO recipes have none: causal
    if structure is not None and structure.kind == "parathinker" and structure.thought_embeddings:
        add_thought_embeddings(model, recipe.structure.max_segments)
    return model, tokenizer, rows


def lora_config(recipe: SFTRecipe | GRPORecipe, model, rows: list[int]):
    from peft import LoraConfig

    lora = recipe.lora
    targets = lora.target_modules if lora.target_modules == "all-linear" else [
        t.strip() for t in lora.target_modules.split(",") if t.strip()]
    extra: dict[str, Any] = {}
    if lora.train_tag_rows and rows:
        token_rows: dict[str, list[int]] = {"embed_tokens": rows}
        if not model.config.get_text_config().tie_word_embeddings:  # untied: the output rows are their own
            token_rows["lm_head"] = rows
        extra["trainable_token_indices"] = token_rows
    if has_thought_embeddings(model):
        extra["modules_to_save"] = ["seg_embeddings"]
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                      task_type="CAUSAL_LM", **extra)


def allow_missing_head_bias(model) -> None:
    """TRL 1.16's fused LM head reads `lm_head.bias`; PEFT's tied `TrainableTokensWrapper` forwards only
    `.weight` and raises on `.bias`. A head without bias is what the wrapper stands for, so say so."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for module in [head] + [m for m in model.modules() if type(m).__name__ == "TrainableTokensWrapper"]:
        if module is None:
            continue
        try:
            module.bias  # noqa: B018 - probing the attribute
        except AttributeError:
            object.__setattr__(module, "bias", None)


def resume_checkpoint(output_dir: Path, resume: bool) -> str | None:
    """The last checkpoint in `output_dir` to resume from (None without `resume`; said when there is none)."""
    import sys

    from transformers.trainer_utils import get_last_checkpoint

    if not resume:
        return None
    checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if checkpoint is None:
        print(f"--resume: no checkpoint in {output_dir} yet; starting from the beginning", file=sys.stderr)
    return checkpoint


def save_model_folder(model, tokenizer, folder: Path) -> None:
    """A plain model folder hf and vllm load: the weights without the thought tables, which go to the
    side file `load_causal_lm` reads (with `parathinker_max_segments` in config.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if "seg_embeddings" not in k}
    model.save_pretrained(folder, state_dict=state)
    tokenizer.save_pretrained(folder)
    if has_thought_embeddings(model):
        save_tables(model, folder)


def write_training_record(folder: Path, recipe_dict: dict[str, Any], model, extra: dict[str, Any]) -> None:
    record = {"recipe": recipe_dict, **extra}
    if has_thought_embeddings(model):
        record[CONFIG_KEY] = getattr(model.config, CONFIG_KEY, None)
    (folder / TRAINING_FILE).write_text(json.dumps(record, indent=1, default=str))
