"""`SFTRecipe` and `GRPORecipe`: every setting of `parafuse train sft|grpo`, one block per concern, each field
with its help.

A YAML recipe (`rl/recipes/*.yaml`) fills these blocks; `--key value` flags override it. The
`training` block is what TRL's `SFTConfig` / `GRPOConfig` receives (its names are TRL's); everything parafuse
adds (the model to load, the data, the LoRA adapter, the attention structure) has its own block.
"""
from __future__ import annotations

from dataclasses import dataclass

from reasoning.settings import nested, setting
from reasoning.types import InputError
from rl.rewards import (
    REWARDS, AccuracyConfig, FormatConfig, ParallelR1AlternatingConfig, ParallelR1GSM8KConfig, ThreadWeaverConfig,
)

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
class RowSettings:
    """What the SFT examples and the RL prompts share: which rows, how many, and the arith task's sizes."""

    split: str = setting("train", "dataset split")
    subset: str | None = setting(None, "Hub dataset configuration name")
    limit: int | None = setting(None, "use at most this many rows (after shuffling)")
    shuffle: bool = setting(True, "shuffle the rows once before training (seeded by training.seed)")
    arith_level: int = setting(2, "arith: difficulty level 1-4")
    arith_count: int = setting(4000, "arith: how many training problems to generate")
    arith_template: str = setting("math/boxed", "arith: the prompt template of the user turn (the one `parafuse "
                                                "eval run` uses by default, so evaluation matches training)")


@dataclass
class DataSettings(RowSettings):
    """The training examples: chat `messages` whose last turn is the assistant's answer."""

    source: str = setting("", "a folder written by `parafuse synth ...` (read with datasets.load_dataset), a "
                              ".jsonl/.json/.parquet file, a Hub dataset name, or `arith:STYLE` for generated arith "
                              "traces (STYLE: plain, parallel_r1, threadweaver, parathinker)")
    messages_field: str = setting("messages", "column of chat messages (the last one is trained on)")
    prompt_field: str = setting("prompt", "column of the prompt, used when there is no messages column")
    completion_field: str = setting("completion", "column of the answer, used when there is no messages column")


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
class RunSettings:
    """The optimizer, schedule, checkpoints and limits of a run: TRL `SFTConfig` / `GRPOConfig` arguments (same
    names; `trainer_arguments` maps them)."""

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

    def trainer_arguments(self) -> dict:
        """The TRL config arguments of these fields (the shared part of SFTConfig and GRPOConfig)."""
        return dict(learning_rate=self.learning_rate, lr_scheduler_type=self.lr_scheduler_type,
                    warmup_steps=self.warmup_ratio, weight_decay=self.weight_decay, adam_beta1=self.adam_beta1,
                    adam_beta2=self.adam_beta2, max_grad_norm=self.max_grad_norm,
                    num_train_epochs=self.num_train_epochs, max_steps=self.max_steps,
                    per_device_train_batch_size=self.per_device_train_batch_size,
                    gradient_accumulation_steps=self.gradient_accumulation_steps, seed=self.seed, data_seed=self.seed,
                    logging_steps=self.logging_steps, save_strategy="steps", save_steps=self.save_steps,
                    save_total_limit=self.save_total_limit, bf16=self.bf16,
                    gradient_checkpointing=self.gradient_checkpointing, report_to=self.report_to,
                    use_cpu=self.use_cpu, dataloader_pin_memory=False)


@dataclass
class TrainingSettings(RunSettings):
    """TRL `SFTConfig` arguments (same names), plus the run's own limits."""


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


# ---------------------------------------------------------------------------- GRPO


@dataclass
class PromptDataSettings(RowSettings):
    """The RL prompts: each row a question for the policy and the gold `answer` the rewards grade against."""

    source: str = setting("", "a folder written by `parafuse synth ...`, a .jsonl/.json/.parquet/.csv file, a Hub "
                              "dataset name, or `arith:STYLE` for generated arith problems (STYLE as in SFT; "
                              "only the question and its answer are used)")
    prompt_field: str = setting("prompt", "column of the prompt: a string (sent as one user turn) or chat messages")
    messages_field: str = setting("messages", "used when there is no prompt column: chat messages whose turns "
                                              "before a trailing assistant answer are the prompt")
    answer_field: str = setting("answer", "column of the gold answer (handed to the rewards as their `answer` "
                                          "kwarg)")


@dataclass
class RewardSettings:
    """The GRPO rewards: which of rl.rewards are summed (with weights), and each one's settings."""

    use: tuple[str, ...] = setting(("accuracy",), f"the rewards, by name, summed into each completion's reward: "
                                                  f"{', '.join(REWARDS)}")
    weights: tuple[float, ...] = setting((), "one weight per reward in `use` (TRL reward_weights; empty: all 1.0)")
    accuracy: AccuracyConfig = nested(AccuracyConfig, "accuracy: +-1 for a right / wrong answer (Parallel-R1)")
    format: FormatConfig = nested(FormatConfig, "format: whether the trace format's checker accepts the completion")
    parallel_r1_alternating: ParallelR1AlternatingConfig = nested(
        ParallelR1AlternatingConfig, "parallel_r1_alternating: Parallel-R1's alternating accuracy/parallel reward",
        prefix="alternating-")
    parallel_r1_gsm8k: ParallelR1GSM8KConfig = nested(
        ParallelR1GSM8KConfig, "parallel_r1_gsm8k: Parallel-R1's GSM8K stage (correct * parallel * format)",
        prefix="gsm8k-")
    threadweaver: ThreadWeaverConfig = nested(ThreadWeaverConfig, "threadweaver: ThreadWeaver's correctness plus "
                                                                  "acceleration bonus (P-GRPO)")


@dataclass
class SamplingSettings:
    """How the policy samples its rollouts (TRL GRPOConfig names)."""

    num_generations: int = setting(8, "completions sampled per prompt (the group whose mean is the baseline)")
    temperature: float = setting(1.0, "sampling temperature")
    top_p: float = setting(1.0, "nucleus sampling mass")
    top_k: int = setting(0, "sample from the k likeliest tokens only (0: off)")
    max_completion_length: int = setting(512, "longest completion in tokens (a longer one is cut)")
    mask_truncated_completions: bool = setting(False, "leave completions that hit max_completion_length out of the "
                                                      "loss (DAPO's overlong filter)")


@dataclass
class RolloutSettings:
    """How each rollout is generated: TRL's own sampling of one sequence, or a parallel-thinking decoder on the
    policy (TRL rollout_func) whose stitched trace is trained."""

    decoder: str = setting("none", "none: TRL samples one sequence (model.generate); parallel_r1, threadweaver, "
                                   "parathinker: parafuse's decoder forks the blocks as separate requests",
                           choices=("none", "parallel_r1", "threadweaver", "parathinker"))
    options: tuple[str, ...] = setting((), "the decoder's own settings as KEY=VALUE (num_paths=2, max_blocks=1, "
                                           "max_path_tokens=256, ...; the keys of `parafuse reason decode "
                                           "--method M --help`); its sampling is the sampling block's")
    max_total_tokens: int | None = setting(None, "cap on a rollout's generated tokens (none: "
                                                 "sampling.max_completion_length)")
    force_open: bool = setting(False, "the decoder opens the first block itself (a model that never writes the "
                                      "tags still forks: smoke runs on an untrained model)")
    train_inserted: bool = setting(False, "also train the tokens the decoder inserts (tags, closes), as "
                                          "Parallel-R1's released RL code does; default: no loss on them")
    structure: str = setting("causal", "how the loss scores a rollout: causal (Seen; every token sees all before "
                                       "it) or parallel_r1_unseen (paths do not see each other, Parallel-R1 "
                                       "Unseen: policy, old and reference log-probs under its mask and positions)",
                             choices=("causal", "parallel_r1_unseen"))
    unseen_sampling: bool = setting(False, "parallel_r1_unseen: sample the summary and all after a block under the "
                                           "Unseen mask and positions too (exactly on-policy; hf, slower), instead "
                                           "of over the concatenated paths as the reference's rollout does")
    reference_positions: bool = setting(False, "parallel_r1_unseen: in-block text outside paths at position 0, as "
                                               "the reference's position builder leaves it")
    second_path_is_last: bool = setting(False, "parallel_r1_unseen: place </Parallel> after the second path, as "
                                               "the reference RL rollout does")
    policy_gap: bool = setting(False, "log policy_gap/SEGMENT: the largest |sampled - rescored| log-prob of each "
                                      "rollout segment before the update (at temperature 1; one extra forward pass)")
    concurrency: int = setting(64, "decodes in flight at once (their requests are batched on the policy)")


@dataclass
class VLLMSettings:
    """Generation through vLLM on GPUs (TRL's use_vllm): the rollouts of TRL's own sampling and of the decoders."""

    mode: str = setting("none", "none: the policy generates in-process (hf; CPU or GPU); colocate: a vLLM engine "
                                "in each training process (TRL syncs the weights before every rollout); server: "
                                "a `vllm serve ... --weight-transfer-config` server the main process talks to",
                        choices=("none", "colocate", "server"))
    server_base_url: str | None = setting(None, "server mode: the server's URL, e.g. http://10.0.0.5:8000")
    server_model: str | None = setting(None, "server mode, decoder rollouts: the model name the server serves "
                                             "(none: model.name)")
    server_timeout: float = setting(240.0, "server mode: seconds to wait for the server at start")
    gpu_memory_utilization: float = setting(0.3, "colocate: the share of GPU memory vLLM may take")
    tensor_parallel_size: int = setting(1, "colocate: GPUs each vLLM engine spans (1 with decoder rollouts)")
    enable_sleep_mode: bool = setting(False, "colocate: free vLLM's memory between rollouts")
    max_model_len: int | None = setting(None, "colocate: vLLM's context length (none: the model's)")
    importance_sampling_correction: bool = setting(True, "reweight each token by the trainer's over vLLM's "
                                                         "probability (TRL's truncated importance sampling)")


@dataclass
class GRPOTrainingSettings(RunSettings):
    """TRL `GRPOConfig` arguments (same names), plus the run's own limits."""

    learning_rate: float = setting(3e-5, "peak learning rate (GRPO needs far less than SFT: 2e-4 collapsed the toy "
                                         "arith model, 3e-5 with 64 rollouts per step improved it)")
    lr_scheduler_type: str = setting("constant", "schedule: constant, cosine, linear, constant_with_warmup")
    warmup_ratio: float = setting(0.0, "share of steps spent warming up (TRL: warmup_steps below 1)")
    num_train_epochs: float = setting(1.0, "passes over the prompts (max_steps wins when set)")
    per_device_train_batch_size: int = setting(8, "completions per device per micro-batch (a multiple of "
                                                  "num_generations over the devices' total)")
    seed: int = setting(42, "seed of initialisation, shuffling and sampling")
    logging_steps: int = setting(10, "log every this many steps (each reward's mean and std is logged)")
    steps_per_generation: int | None = setting(None, "micro-batches each generation round feeds (none: "
                                                     "gradient_accumulation_steps)")
    num_iterations: int = setting(1, "optimizer passes over each generation round (GRPO's mu; >1 makes the clip "
                                     "matter)")
    beta: float = setting(0.0, "KL penalty to the reference model (0: none and no reference model, as DAPO and "
                               "Parallel-R1 run)")
    epsilon: float = setting(0.2, "lower clip of the probability ratio")
    epsilon_high: float | None = setting(None, "upper clip (DAPO's clip-higher, e.g. 0.28; none: epsilon)")
    loss_type: str = setting("dapo", "how token losses are averaged: dapo (over every token of the batch; TRL's "
                                     "default), grpo (per sequence, DeepSeekMath), dr_grpo, bnpo",
                             choices=("dapo", "grpo", "dr_grpo", "bnpo"))
    scale_rewards: str = setting("group", "advantage scaling: group (divide by the group's std, DeepSeekMath "
                                          "GRPO), batch, or none (mean-centred only: ThreadWeaver's P-GRPO, "
                                          "Dr. GRPO)", choices=("group", "batch", "none"))
    log_completions: bool = setting(False, "print a table of sampled completions and their rewards at each log")


@dataclass
class GRPORecipe:
    """`parafuse train grpo`: reinforcement learning with group-relative advantages (DeepSeekMath GRPO,
    arXiv 2402.03300) on TRL's GRPOTrainer, with the papers' rewards (Parallel-R1, arXiv 2509.07980)."""

    output_dir: str = setting("", "where checkpoints and the final model go (final/: the adapter or weights, "
                                  "merged/: a plain model folder any engine loads)")
    model: ModelSettings = nested(ModelSettings, "the policy to train (e.g. an SFT run's OUTPUT/merged)")
    format: str | None = setting(None, "the trace format whose tags are added to the tokenizer (and their embedding "
                                       "rows trained under LoRA); none: no tags",
                                 choices=("parallel_r1", "threadweaver", "parathinker"))
    data: PromptDataSettings = nested(PromptDataSettings, "the prompts and their gold answers")
    rewards: RewardSettings = nested(RewardSettings, "the reward functions")
    sampling: SamplingSettings = nested(SamplingSettings, "how rollouts are sampled")
    rollout: RolloutSettings = nested(RolloutSettings, "how rollouts are generated (a parallel-thinking decoder)")
    vllm: VLLMSettings = nested(VLLMSettings, "generation through vLLM on GPUs (colocated or a server)")
    lora: LoraSettings = nested(LoraSettings, "the LoRA adapter")
    training: GRPOTrainingSettings = nested(GRPOTrainingSettings, "the optimizer and the GRPO loss (TRL GRPOConfig)",
                                            prefix="")
    save_merged: bool = setting(True, "also write merged/: the adapter folded into the weights, loadable by hf and "
                                      "vllm")

    def check(self) -> None:
        if not self.model.name:
            raise InputError("recipe: model.name is empty; name a model folder or Hub id (or `tiny` for a smoke run)")
        if not self.data.source:
            raise InputError("recipe: data.source is empty; name a prompt dataset folder, file, Hub name or "
                             "arith:STYLE")
        if not self.output_dir:
            raise InputError("recipe: output_dir is empty; say where the run writes (--output-dir DIR)")
        if not self.rewards.use:
            raise InputError(f"recipe: rewards.use is empty; name at least one of {', '.join(REWARDS)}")
        for name in self.rewards.use:
            if name not in REWARDS:
                raise InputError(f"recipe: rewards.use names an unknown reward {name!r}; known: {', '.join(REWARDS)}")
        if len(set(self.rewards.use)) != len(self.rewards.use):
            raise InputError(f"recipe: rewards.use names a reward twice: {', '.join(self.rewards.use)}")
        if self.rewards.weights and len(self.rewards.weights) != len(self.rewards.use):
            raise InputError(f"recipe: rewards.weights has {len(self.rewards.weights)} values for "
                             f"{len(self.rewards.use)} rewards ({', '.join(self.rewards.use)})")
        rollout = self.rollout
        if rollout.structure == "parallel_r1_unseen" and rollout.decoder != "parallel_r1":
            raise InputError("rollout.structure parallel_r1_unseen scores paths that were sampled apart: set "
                             "rollout.decoder parallel_r1 (TRL's own sampling writes path 2 after path 1, which "
                             "Unseen scoring would treat as unseen)")
        if rollout.structure != "causal" and self.model.attn_implementation == "flash_attention_2":
            raise InputError(f"rollout.structure {rollout.structure} needs a 4-D mask: flash_attention_2 cannot "
                             "take one; use model.attn_implementation sdpa or eager")
        if rollout.decoder != "none" and self.sampling.top_k:
            raise InputError("sampling.top_k: the decoder rollouts sample from the whole distribution (top_k 0); "
                             "a top_k would make TRL's loss score tokens another way than they were sampled")
        if rollout.policy_gap and rollout.decoder == "none":
            raise InputError("rollout.policy_gap measures decoder rollouts per segment: set rollout.decoder")
        if rollout.unseen_sampling and (rollout.structure != "parallel_r1_unseen" or rollout.decoder != "parallel_r1"):
            raise InputError("rollout.unseen_sampling needs rollout.decoder parallel_r1 and rollout.structure "
                             "parallel_r1_unseen")
        if rollout.decoder != "none" and self.format not in (None, rollout.decoder):
            raise InputError(f"rollout.decoder {rollout.decoder} writes {rollout.decoder} traces but format is "
                             f"{self.format}; set format to {rollout.decoder}")
        if rollout.decoder != "none":
            self.format = rollout.decoder  # the decoder's tags are the ones to add and train
        if self.vllm.mode == "server" and not self.vllm.server_base_url:
            raise InputError("vllm.mode server needs vllm.server_base_url (the `vllm serve` URL, "
                             "e.g. http://10.0.0.5:8000)")
        if rollout.unseen_sampling and self.vllm.mode != "none":
            raise InputError("rollout.unseen_sampling samples on the in-process hf policy; set vllm.mode none (or "
                             "turn unseen_sampling off: vLLM then samples the summary causally, as the reference)")
        if rollout.decoder != "none" and self.vllm.mode == "colocate" and self.vllm.tensor_parallel_size != 1:
            raise InputError("decoder rollouts drive a colocated vLLM engine per process: "
                             "vllm.tensor_parallel_size must be 1 (use vllm.mode server for larger models)")
        if "parallel_r1_alternating" in self.rewards.use:
            # The schedule counts rollout batches from optimizer steps; it must agree with how often TRL generates.
            t = self.training
            per_batch = (t.steps_per_generation or t.gradient_accumulation_steps) * t.num_iterations
            expected = per_batch / t.gradient_accumulation_steps
            given = self.rewards.parallel_r1_alternating.schedule.steps_per_batch
            if given != expected:
                raise InputError(f"rewards.parallel_r1_alternating.schedule.steps_per_batch is {given}, but this "
                                 f"recipe takes {expected:g} optimizer steps per rollout batch (steps_per_generation "
                                 f"x num_iterations / gradient_accumulation_steps); set it to {expected:g}")
        g = self.sampling.num_generations
        if g < 2:
            raise InputError("sampling.num_generations must be at least 2 (the group mean is the baseline)")
        batch = self.training.per_device_train_batch_size * (self.training.steps_per_generation
                                                              or self.training.gradient_accumulation_steps)
        if batch % g:
            raise InputError(f"per_device_train_batch_size x steps_per_generation ({batch}) must be a multiple of "
                             f"sampling.num_generations ({g}): each generation round holds whole groups")

    @property
    def reward_config(self):
        """name -> that reward's config block."""
        return {name: getattr(self.rewards, name) for name in REWARDS}
