"""`parafuse train grpo` on the tiny model: what trains, what stays frozen, what is logged and saved.

TRL-style checks on the arith-grpo smoke variant (3 steps, TRL's own sampling on a CPU): every
trainable parameter must change and no frozen one may (with the format's tags, only their rows of
the tied embedding move); every logged step carries each reward's mean, and the total is their
weighted sum; full fine-tuning writes final/ and merged/ that load back. Bad recipes (an unknown
key, an unknown reward, weights that do not match) fail with an error naming what is wrong.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reasoning.settings import build, flatten
from reasoning.types import InputError
from rl.cli import recipe_values
from rl.config import GRPORecipe

ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}


def smoke(tiny_model: Path, out: Path, **training) -> GRPORecipe:
    """arith-grpo's smoke variant on the session's tiny model (no rebuild), writing under `out`."""
    data, where = recipe_values("arith-grpo", "smoke")
    found, _ = flatten(data, GRPORecipe, where)
    recipe = build(GRPORecipe, found)
    recipe.model.name = str(tiny_model)
    recipe.output_dir = str(out)
    for key, value in training.items():
        setattr(recipe.training, key, value)
    return recipe


@pytest.mark.parametrize("fmt", [None, "parallel_r1"])
def test_smoke_steps_change_every_trainable_parameter_and_log_every_reward(fmt, tiny_model, tmp_path):
    from rl.grpo import build_trainer, reward_log

    torch.set_num_threads(1)
    recipe = smoke(tiny_model, tmp_path, max_steps=3, learning_rate=1e-2)
    recipe.format = fmt  # parallel_r1: the tags' embedding rows train too (PEFT trainable_token_indices)
    trainer, rewards = build_trainer(recipe)
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and len(trainable) < len(before)
    try:
        trainer.train()
    finally:
        for reward in rewards:
            reward.close()
    for n, p in model.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        if n in trainable:
            assert moved, f"trainable {n} did not change"
        else:
            assert not moved, f"frozen {n} changed"
    assert any("trainable_tokens" in n for n in trainable) == (fmt is not None)
    logged = reward_log(trainer)
    assert len(logged) == 3  # logging_steps 1
    weights = dict(zip(recipe.rewards.use, recipe.rewards.weights))
    assert set(weights) == {"accuracy", "format"}
    for entry in logged:
        for name in weights:
            assert f"rewards/{name}/mean" in entry and f"rewards/{name}/std" in entry
        total = sum(w * entry[f"rewards/{name}/mean"] for name, w in weights.items())
        assert math.isclose(entry["reward"], total, abs_tol=1e-5)
    assert any(entry["reward_std"] > 0 for entry in logged)  # some group had an advantage to learn from


def test_full_fine_tuning_writes_final_and_merged(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from rl.grpo import run_grpo

    torch.set_num_threads(1)
    recipe = smoke(tiny_model, tmp_path / "run", max_steps=2, learning_rate=1e-3)
    recipe.lora.enabled = False
    recipe.rewards.use, recipe.rewards.weights = ("format",), ()
    summary = run_grpo(recipe)
    assert summary["steps"] == 2 and summary["lora"] is False and summary["format_last"] is not None
    for folder in ("final", "merged"):
        record = json.loads((tmp_path / "run" / folder / "parafuse_training.json").read_text())
        assert record["recipe"]["rewards"]["use"] == ["format"] and record["steps"] == 2
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "merged")
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    changed = [n for n, p in trained.named_parameters() if not torch.equal(p, base.get_parameter(n))]
    assert len(changed) == len(list(base.parameters()))  # full fine-tuning: every weight moved


def test_recipe_blocks_reach_grpo_config(tiny_model, tmp_path):
    from rl.grpo import grpo_config

    recipe = smoke(tiny_model, tmp_path, scale_rewards="none", loss_type="grpo", beta=0.04)
    recipe.sampling.temperature, recipe.sampling.top_p = 0.7, 0.9
    config = grpo_config(recipe, tmp_path)
    assert (config.scale_rewards, config.loss_type, config.beta) == ("none", "grpo", 0.04)
    assert (config.temperature, config.top_p, config.num_generations, config.max_completion_length) == (
        0.7, 0.9, 4, 32)
    assert config.reward_weights == [1.0, 0.5] and config.remove_unused_columns is False
    default = build(GRPORecipe, {})
    assert default.training.loss_type == "dapo" and default.training.beta == 0.0


def test_prompts_carry_their_answers(tmp_path):
    from rl.config import PromptDataSettings
    from rl.data import load_prompts

    rows = load_prompts(PromptDataSettings(source="arith:plain", arith_level=1, arith_count=5), seed=0)
    assert len(rows) == 5 and all(r["prompt"][-1]["role"] == "user" and r["answer"] for r in rows)
    table = tmp_path / "p.jsonl"
    table.write_text(json.dumps({"question": "2+2?", "gold": 4}) + "\n" + json.dumps(
        {"messages": [{"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}], "gold": 6})
                     + "\n")
    rows = load_prompts(PromptDataSettings(source=str(table), prompt_field="question", answer_field="gold",
                                           shuffle=False), seed=0)
    assert rows == [{"prompt": [{"role": "user", "content": "2+2?"}], "answer": "4"},
                    {"prompt": [{"role": "user", "content": "3+3?"}], "answer": "6"}]
    with pytest.raises(InputError, match="'answer'"):
        load_prompts(PromptDataSettings(source=str(table), prompt_field="question"), seed=0)


def test_bad_rewards_are_named(tiny_model, tmp_path):
    recipe = smoke(tiny_model, tmp_path)
    recipe.rewards.use = ("accuracy", "acuracy")
    with pytest.raises(InputError, match="'acuracy'.*known: accuracy, format"):
        recipe.check()
    recipe.rewards.use, recipe.rewards.weights = ("accuracy",), (1.0, 0.5)
    with pytest.raises(InputError, match="rewards.weights has 2 values for 1"):
        recipe.check()
    recipe.rewards.weights, recipe.training.per_device_train_batch_size = (), 6
    with pytest.raises(InputError, match="multiple of sampling.num_generations"):
        recipe.check()


def test_cli_errors_name_the_recipe_key_and_the_reward(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: x}\nrewards: {use: [accuracy], acuracy: {correct_reward: 2}}\n")
    run = subprocess.run([sys.executable, "-m", "parafuse", "train", "grpo", str(bad)], capture_output=True,
                         text=True, env=ENV, timeout=120)
    assert run.returncode == 2 and "acuracy" in run.stderr and "bad.yaml" in run.stderr
    reward = subprocess.run([sys.executable, "-m", "parafuse", "train", "grpo", "arith-grpo", "--variant", "smoke",
                             "--rewards-use", "accuracy,speed", "--print-recipe"],
                            capture_output=True, text=True, env=ENV, timeout=120)
    assert reward.returncode == 2 and "'speed'" in reward.stderr and "threadweaver" in reward.stderr
    shown = subprocess.run([sys.executable, "-m", "parafuse", "train", "grpo", "arith-grpo", "--variant", "smoke",
                            "--scale-rewards", "none", "--print-recipe"],
                           capture_output=True, text=True, env=ENV, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    resolved = json.loads(shown.stdout)
    assert resolved["training"]["scale_rewards"] == "none" and resolved["rewards"]["use"] == ["accuracy", "format"]


def test_cli_smoke_run_resumes_from_its_last_checkpoint(tiny_model, tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "parafuse", "train", "grpo", "arith-grpo", "--variant", "smoke",
            "--model-name", str(tiny_model), "--output-dir", str(out), "--save-steps", "2", "--no-save-merged"]
    first = subprocess.run(base + ["--max-steps", "2"], capture_output=True, text=True, env=ENV, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (out / "checkpoint-2").is_dir()
    second = subprocess.run(base + ["--max-steps", "3", "--resume"], capture_output=True, text=True, env=ENV,
                            timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 3
    assert summary["rewards"] == ["accuracy", "format"] and summary["format_last"] is not None
    assert (out / "final" / "adapter_model.safetensors").exists() and not (out / "merged").exists()


def test_same_named_synthesis_folders_give_their_own_rows(tmp_path):
    """Two `synth` output folders of one name (a demo rerun, runs/a/mathfusion then runs/b/mathfusion):
    each gives its own rows. `datasets.load_dataset(FOLDER)` caches by the folder's name and layout, so
    the second came back with the first one's rows."""
    import datasets

    from rl.config import DataSettings
    from rl.data import load_rows
    from synthesis.output import write_card, write_dataset

    features = datasets.Features({"messages": [{"role": datasets.Value("string"),
                                                "content": datasets.Value("string")}],
                                  "answer": datasets.Value("string")})
    got = {}
    for name, count in (("a", 3), ("b", 5)):
        folder = tmp_path / name / "mathfusion"
        rows = [{"messages": [{"role": "user", "content": f"{name} {i}?"},
                              {"role": "assistant", "content": str(i)}], "answer": str(i)} for i in range(count)]
        write_dataset(folder, rows, features)
        write_card(folder, "MathFusion data", "rows", ["synthetic"], {})
        got[name] = load_rows(DataSettings(source=str(folder), shuffle=False), seed=0)
    assert [r["messages"][0]["content"] for r in got["a"]] == ["a 0?", "a 1?", "a 2?"]
    assert [r["messages"][0]["content"] for r in got["b"]] == [f"b {i}?" for i in range(5)]
    with pytest.raises(InputError, match="no test data files"):
        load_rows(DataSettings(source=str(tmp_path / "a" / "mathfusion"), split="test"), seed=0)
