"""SFT recipes on the tiny model: what trains, what stays frozen, what is saved and what loads back.

TRL-style checks: every recipe's smoke variant trains 2 steps; every trainable parameter must
change and no frozen one may (under `trainable_token_indices`, only the tag rows of the tied
embedding move). Then the outputs: adapter and merged folders load in the hf engine with the
same logits as the trained model; ParaThinker's thought tables survive both; a base without them
is refused; `--resume` continues from the last checkpoint.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reasoning.settings import build, flatten
from rl.cli import recipe_values
from rl.config import SFTRecipe

RECIPES = ("mathfusion-sft", "parallel-r1-coldstart-seen", "parallel-r1-coldstart-unseen", "threadweaver-sft",
           "parathinker-sft")


def smoke(name: str, tiny_model: Path, out: Path, **training) -> SFTRecipe:
    """The recipe's smoke variant on the session's tiny model (no rebuild), writing under `out`."""
    data, where = recipe_values(name, "smoke")
    found, _ = flatten(data, SFTRecipe, where)
    recipe = build(SFTRecipe, found)
    recipe.model.name = str(tiny_model)
    recipe.output_dir = str(out)
    recipe.training.save_steps = 10_000
    for key, value in training.items():
        setattr(recipe.training, key, value)
    return recipe


def tagged_rows(tokenizer, fmt: str | None) -> list[int]:
    from rl.models import FORMAT_TAGS

    return sorted({tokenizer.convert_tokens_to_ids(t) for t in FORMAT_TAGS.get(fmt or "", ())})


@pytest.mark.parametrize("name", RECIPES)
def test_two_steps_change_every_trainable_parameter_and_no_frozen_one(name, tiny_model, tmp_path):
    from rl.sft import build_trainer

    torch.set_num_threads(1)
    recipe = smoke(name, tiny_model, tmp_path, max_steps=2, learning_rate=1e-2)
    trainer, _ = build_trainer(recipe)
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and len(trainable) < len(before)
    trainer.train()
    for n, p in model.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        if n in trainable:
            assert moved, f"trainable {n} did not change"
        else:
            assert not moved, f"frozen {n} changed"
    rows = tagged_rows(trainer.processing_class, recipe.format)
    tuned = [n for n in trainable if "trainable_tokens" in n]
    assert bool(tuned) == bool(rows)  # the tag rows are trained exactly when the recipe has tags
    if rows:
        # merged: only the tag rows of the (still tied) embedding differ from the base model
        merged = model.merge_and_unload()
        base = before[next(n for n in before if n.endswith("embed_tokens.base_layer.weight") or
                           n.endswith("embed_tokens.token_adapter.base_layer.weight") or
                           n.endswith("embed_tokens.weight"))]
        changed = (merged.get_input_embeddings().weight.detach() != base).any(-1).nonzero().flatten().tolist()
        assert changed == rows
        assert merged.get_output_embeddings().weight.data_ptr() == merged.get_input_embeddings().weight.data_ptr()
    if recipe.structure.kind == "parathinker":
        assert any("seg_embeddings" in n for n in trainable)


def test_trained_outputs_load_in_the_hf_engine_with_the_trained_logits(tiny_model, tmp_path):
    from reasoning.engines import make_engine
    from reasoning.thought_embeddings import load_causal_lm
    from rl.sft import run_sft

    torch.set_num_threads(1)
    recipe = smoke("parathinker-sft", tiny_model, tmp_path / "run", max_steps=3, learning_rate=1e-2)
    summary = run_sft(recipe)
    assert summary["steps"] == 3 and summary["tokens"] > 0
    probe = torch.tensor([[5, 17, 42, 99, 7, 3]])
    seg = torch.tensor([[0, 0, 1, 1, 2, 2]])
    merged = load_causal_lm(str(tmp_path / "run" / "merged")).eval()
    adapter = load_causal_lm(str(tmp_path / "run" / "final")).eval()
    with torch.no_grad():
        a = merged(input_ids=probe, seg_ids=seg).logits
        b = adapter(input_ids=probe, seg_ids=seg).logits
        trained_tables = merged.model.layers[0].self_attn.seg_embeddings.weight
    assert trained_tables.abs().sum() > 0  # the zero-initialised tables trained and came back
    assert (a - b).abs().max() < 1e-4
    engine = make_engine("hf", str(tmp_path / "run" / "merged"))
    try:
        assert (engine.lm.model.layers[0].self_attn.seg_embeddings.weight - trained_tables).abs().max() == 0
    finally:
        engine.close()
    record = json.loads((tmp_path / "run" / "final" / "parafuse_training.json").read_text())
    assert record["parathinker_max_segments"] == 32 and record["steps"] == 3


def test_an_adapter_with_tables_is_refused_on_a_base_without_them(tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from reasoning.thought_embeddings import check_tables_loaded, has_thought_embeddings
    from rl.sft import run_sft

    torch.set_num_threads(1)
    recipe = smoke("parathinker-sft", tiny_model, tmp_path / "run", max_steps=1)
    recipe.save_merged = False
    run_sft(recipe)
    final = tmp_path / "run" / "final"
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(final))
    assert not has_thought_embeddings(plain)  # PEFT dropped the tables without a word...
    with pytest.raises(ValueError, match="not loaded"):
        check_tables_loaded(plain, final)  # ...and parafuse refuses that model


def test_cli_smoke_run_resumes_from_its_last_checkpoint(tiny_model, tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "parafuse", "train", "sft", "threadweaver-sft", "--variant", "smoke",
            "--model-name", str(tiny_model), "--output-dir", str(out), "--save-steps", "2", "--no-save-merged"]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    first = subprocess.run(base + ["--max-steps", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (out / "checkpoint-2").is_dir()
    second = subprocess.run(base + ["--max-steps", "4", "--resume"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 4
    assert (out / "final" / "adapter_model.safetensors").exists()


def test_cli_errors_name_the_recipe_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: x}\ntraining: {learnin_rate: 1}\n")
    run = subprocess.run([sys.executable, "-m", "parafuse", "train", "sft", str(bad)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "learnin_rate" in run.stderr and "bad.yaml" in run.stderr
    missing = subprocess.run([sys.executable, "-m", "parafuse", "train", "sft", "no-such-recipe"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "threadweaver-sft" in missing.stderr  # it lists the bundled ones


@pytest.mark.slow
def test_a_merged_output_loads_in_vllm_and_serves_the_trained_weights(tiny_model, tmp_path):
    """vLLM loads merged/ (the ParaThinker side tables beside it are not weight files) and decodes what
    transformers decodes from the same merged weights: the trained LoRA update and tag rows included."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl.sft import run_sft

    torch.set_num_threads(1)
    recipe = smoke("parathinker-sft", tiny_model, tmp_path / "run", max_steps=3, learning_rate=2e-2)
    run_sft(recipe)
    merged = tmp_path / "run" / "merged"
    assert (merged / "thought_embeddings" / "tables.safetensors").exists()
    prompt = "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n<think1>"
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "q", "raw": prompt}) + "\n")
    run = subprocess.run([sys.executable, "-m", "parafuse", "reason", "generate", "--engine", "vllm", "--model",
                          str(merged), "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"),
                          "--temperature", "0", "--max-tokens", "12", "--max-model-len", "1024", "--enforce-eager",
                          "--logprobs", "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    completion = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["result"]["completions"][0]
    served, served_logprobs = completion["token_ids"], completion["logprobs"]
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def logprobs(model_dir) -> list[float]:
        """Teacher-forced log-probs of the served tokens under transformers (no thought tables: as vLLM)."""
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids + served])).logits[0, len(ids) - 1:-1]
        return logits.log_softmax(-1).gather(-1, torch.tensor(served)[:, None]).squeeze(-1).tolist()

    # vLLM's CPU kernels differ from transformers' by a few 1e-2 in log-prob; the base model by far more
    trained = max(abs(a - b) for a, b in zip(logprobs(merged), served_logprobs))
    untrained = max(abs(a - b) for a, b in zip(logprobs(tiny_model), served_logprobs))
    assert trained < 0.1 and untrained > 4 * trained, (trained, untrained)


def test_trains_from_a_synth_traces_folder(tiny_model, tmp_path):
    """The synthesis output is training data as it stands: `datasets.load_dataset(DIR)` of its folder."""
    from reasoning.engines import make_engine
    from reasoning.settings import from_dict
    from reasoning.tasks.arith import generate
    from rl.sft import build_trainer
    from synthesis.traces import TracesConfig, synthesize_traces

    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p.to_record()) + "\n" for p in generate(3, 12, "train")))
    folder = tmp_path / "traces"
    cfg = from_dict(TracesConfig, {"input": str(problems), "method": "threadweaver"})
    stats = synthesize_traces(cfg, make_engine("symbolic", "arith-teacher"), folder, progress=False,
                              log=lambda _: None)
    assert stats["kept"] > 0
    torch.set_num_threads(1)
    recipe = smoke("threadweaver-sft", tiny_model, tmp_path / "run", max_steps=2)
    recipe.data.source = str(folder)
    trainer, collator = build_trainer(recipe)
    assert len(trainer.train_dataset) == stats["kept"]
    trainer.train()
    assert collator.trained_tokens > 0 and trainer.state.global_step == 2
