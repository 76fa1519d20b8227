"""Examples per second of a structured-attention SFT recipe vs plain TRL SFT, same data, same model.

Both trainers are TRL's `SFTTrainer` on the tiny model with LoRA, on the same Parallel-R1-format
arith traces and the same batch size:

  plain       TRL's own path: a conversational prompt/completion dataset that TRL tokenizes and
              collates itself (causal attention, loss on the completion);
  structured  parafuse's `parallel-r1-coldstart-unseen` collator: tokenizing per batch, the Unseen
              float 4-D mask, restarted positions, our own token count.

Each repetition trains both for the same number of steps (interleaved, one after the other);
`ratio` = structured examples/s / plain examples/s (median over repetitions, spread reported).
TRL's dataset preparation runs before its timer starts, and so is not counted for the plain side.
Both sides train without gradient checkpointing (TRL's `SFTConfig` turns it on by default, which
alone makes a step ~5x slower on this model).

    OMP_NUM_THREADS=1 .venv/bin/python benches/sft_overhead.py
"""
from __future__ import annotations

import statistics
import tempfile
import time

from benchlib.common import emit, log, parser


def main() -> None:
    p = parser("Structured-mask SFT vs plain TRL SFT throughput on the tiny model. Ends with one JSON line.")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per timed run")
    p.add_argument("--batch-size", type=int, default=8, help="examples per step")
    p.add_argument("--repetitions", type=int, default=3, help="paired (plain, structured) runs")
    p.add_argument("--target", type=float, default=0.8, help="the ratio the structured recipe should reach")
    args = p.parse_args()

    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from reasoning.tiny_model import build_tiny_model
    from rl.config import SFTRecipe
    from rl.data import arith_rows
    from rl.sft import build_trainer

    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="parafuse-bench-")
    folder = str(build_tiny_model(f"{work}/tiny"))
    rows = arith_rows("parallel_r1", 2, args.steps * args.batch_size, 0)
    examples = args.steps * args.batch_size

    def plain_run() -> float:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        table = datasets.Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}
                                            for r in rows])
        trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=table,
                             peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                    task_type="CAUSAL_LM"),
                             args=SFTConfig(output_dir=f"{work}/plain", max_steps=args.steps,
                                            per_device_train_batch_size=args.batch_size, use_cpu=True,
                                            report_to="none", save_strategy="no", disable_tqdm=True,
                                            logging_steps=10_000, dataloader_pin_memory=False, seed=0,
                                            gradient_checkpointing=False, bf16=False))
        start = time.perf_counter()
        trainer.train()
        return examples / (time.perf_counter() - start)

    def structured_run() -> float:
        recipe = SFTRecipe(output_dir=f"{work}/structured", save_merged=False)
        recipe.model.name, recipe.model.dtype = folder, "float32"
        recipe.data.source = "arith:parallel_r1"
        recipe.structure.kind = "parallel_r1_unseen"
        recipe.lora.r, recipe.lora.alpha, recipe.lora.train_tag_rows = 8, 16, False  # the same adapter as plain
        t = recipe.training
        t.max_steps, t.per_device_train_batch_size, t.use_cpu, t.save_steps = args.steps, args.batch_size, True, 10**6
        t.logging_steps, t.seed = 10_000, 0
        trainer, _ = build_trainer(recipe)
        trainer.train_dataset = datasets.Dataset.from_list(rows)
        trainer.args.disable_tqdm = True
        start = time.perf_counter()
        trainer.train()
        return examples / (time.perf_counter() - start)

    plain, structured = [], []
    for rep in range(args.repetitions):
        plain.append(plain_run())
        structured.append(structured_run())
        log(f"repetition {rep + 1}: plain {plain[-1]:.1f} ex/s, structured {structured[-1]:.1f} ex/s")
    ratios = [s / q for s, q in zip(structured, plain)]
    emit({"bench": "sft_overhead", "ratio": round(statistics.median(ratios), 3), "target": args.target,
          "spread": [round(min(ratios), 3), round(max(ratios), 3)],
          "plain_examples_per_s": [round(x, 2) for x in plain],
          "structured_examples_per_s": [round(x, 2) for x in structured],
          "steps": args.steps, "batch_size": args.batch_size, "repetitions": args.repetitions})


if __name__ == "__main__":
    main()
