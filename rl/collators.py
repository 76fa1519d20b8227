"""The SFT collator: chat rows -> token ids -> the recipe's structure -> padded model inputs.

It tokenizes on the fly (so the structure builders see exact tag ids) the way TRL's own
conversational SFT does: the prompt is the chat template up to the assistant's turn with the
generation prompt, the completion is the rest of the templated conversation (the assistant text,
its end-of-turn token and what the template writes after it), and only the completion is trained.
It also counts real and trained tokens itself: TRL's `num_tokens` sums the attention mask, which
is NaN with a float 4-D mask.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from reasoning.types import InputError
from rl.config import StructureSettings
from rl.structure import Structured, causal, collate, tag_ids
from rl.structure import parallel_r1 as parallel_r1_structure
from rl.structure import parathinker as parathinker_structure
from rl.structure import threadweaver as threadweaver_structure


def encode_chat(tokenizer, messages: Sequence[Mapping[str, str]]) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) of a conversation whose last turn is the assistant's."""
    if getattr(tokenizer, "chat_template", None):
        full = list(tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=False))
        prompt = list(tokenizer.apply_chat_template(list(messages[:-1]), tokenize=True, add_generation_prompt=True,
                                                    return_dict=False))
        if full[:len(prompt)] != prompt:
            raise InputError("the chat template renders the prompt differently inside the full conversation; "
                             "training needs the prompt to be a prefix (set model.chat_template)")
        return prompt, full[len(prompt):]
    # No template (a base model): the turns back to back, the answer closed by eos.
    prompt_text = "".join(m["content"] for m in messages[:-1])
    prompt = tokenizer.encode(prompt_text, add_special_tokens=False)
    completion = tokenizer.encode(messages[-1]["content"], add_special_tokens=False)
    return prompt, completion + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


class SFTCollator:
    """Callable collator for `SFTTrainer(data_collator=...)` over rows with `messages`."""

    def __init__(self, tokenizer, structure: StructureSettings, dtype: torch.dtype = torch.float32, seed: int = 0):
        self.tokenizer = tokenizer
        self.settings = structure
        self.dtype = dtype
        self.rng = random.Random(seed)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        kind = structure.kind
        wanted = {"parallel_r1_unseen": parallel_r1_structure.TAGS, "threadweaver_trie": threadweaver_structure.TAGS,
                  "parathinker": parathinker_structure.tag_names()}.get(kind, ())
        self.tags = tag_ids(tokenizer, wanted)
        self.tokens = 0  # real tokens collated so far (for the log)
        self.trained_tokens = 0

    def example(self, messages: Sequence[Mapping[str, str]]) -> Structured:
        prompt, completion = encode_chat(self.tokenizer, messages)
        kind, s = self.settings.kind, self.settings
        if kind == "parallel_r1_unseen":
            return parallel_r1_structure.unseen(prompt, completion, self.tags, s.reference_positions,
                                                s.second_path_is_last)
        if kind == "threadweaver_trie":
            return threadweaver_structure.pack(prompt, completion, self.tags, s.train_inner_threads)
        if kind == "parathinker":
            if s.relabel_probability > 0:
                completion = parathinker_structure.relabel(completion, self.tags, self.rng, s.relabel_probability)
            example = parathinker_structure.structure(prompt, completion, self.tags)
            if not s.thought_embeddings:
                example.seg_ids = None
            return example
        return causal(prompt, completion)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        examples = [self.example(row["messages"]) for row in rows]
        self.tokens += sum(len(e) for e in examples)
        self.trained_tokens += sum(e.trained_tokens for e in examples)
        return collate(examples, self.pad_id, self.dtype)
