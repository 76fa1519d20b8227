"""`SFTRecipe`: every setting of `parafuse train sft`, one block per concern, each field with its help.

A YAML recipe (`rl/recipes/*.yaml`) fills these blocks; `--key value` flags override it. The
`training` block is what TRL's `SFTConfig` receives (its names are TRL's); everything parafuse
adds (the model to load, the data, the LoRA adapter, the attention structure) has its own block.
"""
from __future__ import annotations

from dataclasses import dataclass

from reasoning.settings import nested, setting
from reasoning.types import InputError

STRUCTURES = ("causal", "parallel_r1_unseen", "threadweaver_trie", "parathinker")
FORMAT_OF = {"parallel_r1_unseen": "parallel_r1", "threadweaver_trie": "threadweaver", "parathinker": "parathinker"}


@dataclass
class ModelSettings:
    """The model to fine-tune."""

    name: str = setting("", "model folder or Hub name; `tiny` / `tiny:arith` build parafuse's tiny CPU model into "
                            "the output folder (smoke runs)")
    dtype: str = setting("auto", "weights dtype: auto (the checkpoint's), float32, bfloat16, float16",
                         choices=("auto", "float32", "bfloat16", "float16"))
    attn_implementation: str = setting("sdpa", "attention kernel: sdpa or eager (both take the 4-D masks; "
                                               "flash_attention_2 cannot and is refused for structured recipes)",
                                       choices=("sdpa", "eager", "flash_attention_2"))
    add_tags: bool = setting(True, "add the format's tags the tokenizer lacks as single non-special tokens (their "
                                   "rows start at the mean embedding of the tag's old pieces, as ThreadWeaver does)")
    chat_template: str | None = setting(None, "a Jinja chat template file to use instead of the tokenizer's (base "
                                              "models often have none)")


@dataclass
class DataSettings:
    """The training examples: chat `messages` whose last turn is the assistant's answer."""

    source: str = setting("", "a folder written by `parafuse synth ...` (read with datasets.load_dataset), a "
                              ".jsonl/.json/.parquet file, a Hub dataset name, or `arith:STYLE` for generated arith "
                              "traces (STYLE: plain, parallel_r1, threadweaver, parathinker)")
    split: str = setting("train", "dataset split")
    subset: str | None = setting(None, "Hub dataset configuration name")
    messages_field: str = setting("messages", "column of chat messages (the last one is trained on)")
    prompt_field: str = setting("prompt", "column of the prompt, used when there is no messages column")
    completion_field: str = setting("completion", "column of the answer, used when there is no messages column")
    limit: int | None = setting(None, "use at most this many examples (after shuffling)")
    shuffle: bool = setting(True, "shuffle the examples once before training (seeded by training.seed)")
    arith_level: int = setting(2, "arith: difficulty level 1-4")
    arith_count: int = setting(4000, "arith: how many training problems to generate")
    arith_template: str = setting("math/boxed", "arith: the prompt template of the user turn (the one `parafuse "
                                                "eval run` uses by default, so evaluation matches training)")


@dataclass
class LoraSettings:
    """The LoRA adapter (PEFT). Off: full fine-tuning."""

    enabled: bool = setting(True, "train a LoRA adapter (off: update every weight)")
    r: int = setting(16, "LoRA rank")
    alpha: int = setting(32, "LoRA alpha (the update is scaled by alpha / r)")
    dropout: float = setting(0.0, "dropout on the LoRA input")
    target_modules: str = setting("all-linear", "modules to adapt: all-linear or a comma list (q_proj,v_proj)")
    train_tag_rows: bool = setting(True, "train the embedding rows of the format's tags (PEFT "
                                         "trainable_token_indices: only those rows, the embeddings stay tied)")


@dataclass
class StructureSettings:
    """How a trajectory is laid out for the model: its attention mask, positions and labels."""

    kind: str = setting("causal", "causal (plain SFT; Parallel-R1 Seen), parallel_r1_unseen (paths cannot see each "
                                  "other), threadweaver_trie (every branch packed in one trie), parathinker (shared "
                                  "path positions, two-phase mask, thought embeddings)", choices=STRUCTURES)
    format: str | None = setting(None, "the trace format whose tags are added and trained (none: the structure's "
                                       "own; causal: no tags; e.g. parallel_r1 for Seen training)",
                                 choices=("parallel_r1", "threadweaver", "parathinker"))
    reference_positions: bool = setting(False, "parallel_r1_unseen: in-block text outside paths at position 0, as the "
                                               "reference's position builder leaves it (default: continue the count)")
    second_path_is_last: bool = setting(False, "parallel_r1_unseen: place </Parallel> after the second path, as the "
                                               "reference RL rollout does (right only for 2 paths)")
    train_inner_threads: bool = setting(False, "threadweaver_trie: also train threads 2..k inside the whole "
                                               "response, after thread 1, as the reference does (default: only "
                                               "their own copies)")
    relabel_probability: float = setting(0.3, "parathinker: chance per example of renaming two paths to "
                                              "<think7>/<think8> (the paper's extensible tokens; 0 = off)")
    thought_embeddings: bool = setting(True, "parathinker: add and train the per-path key/value embeddings")
    max_segments: int = setting(32, "parathinker: rows of each thought-embedding table (the reference's 32)")
    max_length: int | None = setting(None, "drop examples longer than this many tokens (after packing), counted "
                                           "in the log; none = keep all")


@dataclass
class TrainingSettings:
    """TRL `SFTConfig` arguments (same names), plus the run's own limits."""

    learning_rate: float = setting(2e-4, "peak learning rate")
    lr_scheduler_type: str = setting("cosine", "schedule: cosine, linear, constant, constant_with_warmup")
    warmup_ratio: float = setting(0.03, "share of steps spent warming up (TRL: warmup_steps below 1)")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    adam_beta1: float = setting(0.9, "AdamW beta1")
    adam_beta2: float = setting(0.999, "AdamW beta2")
    max_grad_norm: float = setting(1.0, "gradient clipping norm")
    num_train_epochs: float = setting(1.0, "passes over the data (max_steps wins when set)")
    max_steps: int = setting(-1, "stop after this many optimizer steps (-1: run the epochs)")
    per_device_train_batch_size: int = setting(8, "examples per device per step")
    gradient_accumulation_steps: int = setting(1, "micro-batches per optimizer step")
    seed: int = setting(42, "seed of initialisation, shuffling and dropout")
    logging_steps: int = setting(10, "log every this many steps")
    save_steps: int = setting(500, "save a checkpoint every this many steps (--resume starts from the last one)")
    save_total_limit: int | None = setting(2, "checkpoints kept")
    bf16: bool = setting(False, "train in bfloat16 mixed precision (GPU)")
    gradient_checkpointing: bool = setting(False, "recompute activations to save memory")
    report_to: str = setting("none", "where to log: none, tensorboard, wandb, ...")
    time_budget_s: float | None = setting(None, "stop cleanly after this many seconds (a checkpoint is saved)")
    use_cpu: bool = setting(False, "train on the CPU even when a GPU is present")


@dataclass
class SFTRecipe:
    """`parafuse train sft`: supervised fine-tuning on TRL's SFTTrainer."""

    output_dir: str = setting("", "where checkpoints and the final model go (final/: the adapter or weights, "
                                  "merged/: a plain model folder any engine loads)")
    model: ModelSettings = nested(ModelSettings, "the model to fine-tune")
    data: DataSettings = nested(DataSettings, "the training data")
    lora: LoraSettings = nested(LoraSettings, "the LoRA adapter")
    structure: StructureSettings = nested(StructureSettings, "the attention structure of each example")
    training: TrainingSettings = nested(TrainingSettings, "the optimizer and schedule (TRL SFTConfig)", prefix="")
    save_merged: bool = setting(True, "also write merged/: the adapter folded into the weights, loadable by hf and "
                                      "vllm (the thought embeddings ride in a side file only hf reads)")

    def check(self) -> None:
        if not self.model.name:
            raise InputError("recipe: model.name is empty; name a model folder or Hub id (or `tiny` for a smoke run)")
        if not self.data.source:
            raise InputError("recipe: data.source is empty; name a dataset folder, file, Hub name or arith:STYLE")
        if not self.output_dir:
            raise InputError("recipe: output_dir is empty; say where the run writes (--output-dir DIR)")
        if self.structure.kind != "causal" and self.model.attn_implementation == "flash_attention_2":
            raise InputError(f"structure {self.structure.kind} needs a 4-D mask: flash_attention_2 cannot take one; "
                             "use model.attn_implementation sdpa or eager")
        if not 0 <= self.structure.relabel_probability <= 1:
            raise InputError("structure.relabel_probability must lie in [0, 1]")

    @property
    def format(self) -> str | None:
        return self.structure.format or FORMAT_OF.get(self.structure.kind)
